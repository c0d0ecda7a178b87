# %postun of the storegw rpm ($1: 0 erase, 1 upgrade). After an upgrade the
# running service is restarted on the new binary. /var/lib/storegw (the
# journal) is kept; a changed /etc/storegw/storegw.toml stays as .rpmsave.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart storegw.service >/dev/null 2>&1 || :
    fi
fi
exit 0
