# %preun of the storegw rpm ($1: 0 erase, 1 upgrade). On erase: stop and
# disable the service. The journal in /var/lib/storegw is not part of the
# package and is never removed by rpm.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl stop storegw.service >/dev/null 2>&1 || :
    fi
    systemctl disable storegw.service >/dev/null 2>&1 || :
fi
exit 0
