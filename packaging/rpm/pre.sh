# %pre of the storegw rpm ($1: 1 install, 2 upgrade). The user must exist
# before the files are unpacked: /etc/storegw/storegw.toml is root:storegw.
# Same user as /usr/lib/sysusers.d/storegw.conf (Fedora's sysusers "compat").
getent group storegw >/dev/null || groupadd -r storegw
getent passwd storegw >/dev/null || \
    useradd -r -g storegw -d /var/lib/storegw -M -s /sbin/nologin \
        -c "storegw store-and-forward gateway" storegw
exit 0
