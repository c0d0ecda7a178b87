# %post of the storegw-hq rpm ($1: 1 install, 2 upgrade). Enables the
# service on a first install but does not start it: storegw-hq needs its
# database first ([hq] database in /etc/storegw-hq/storegw-hq.toml), then
# `systemctl start storegw-hq`. systemctl is skipped when systemd is not
# running (container, image build); enabling still works offline.
if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
    fi
    if [ "$1" -eq 1 ]; then
        systemctl enable storegw-hq.service >/dev/null 2>&1 || :
    fi
fi
exit 0
