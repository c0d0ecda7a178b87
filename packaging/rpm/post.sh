# %post of the storegw rpm ($1: 1 install, 2 upgrade). Enables the service
# and starts it on a first install; systemctl is skipped when systemd is not
# running (container, image build), enabling still works offline.
if [ ! -d /var/lib/storegw ]; then
    install -d -o storegw -g storegw -m 0750 /var/lib/storegw
fi
if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
    fi
    if [ "$1" -eq 1 ]; then
        systemctl enable storegw.service >/dev/null 2>&1 || :
        if [ -d /run/systemd/system ]; then
            systemctl start storegw.service >/dev/null 2>&1 || :
        fi
    fi
fi
exit 0
