# %preun of the storegw-hq rpm ($1: 0 erase, 1 upgrade). On erase: stop and
# disable the service. The database is not the package's and is left alone.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl stop storegw-hq.service >/dev/null 2>&1 || :
    fi
    systemctl disable storegw-hq.service >/dev/null 2>&1 || :
fi
exit 0
