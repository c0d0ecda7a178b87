# %postun of the storegw-hq rpm ($1: 0 erase, 1 upgrade). After an upgrade
# a running service is restarted on the new binary. A changed
# /etc/storegw-hq/storegw-hq.toml stays as .rpmsave on erase.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart storegw-hq.service >/dev/null 2>&1 || :
    fi
fi
exit 0
