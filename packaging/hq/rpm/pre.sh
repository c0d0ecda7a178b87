# %pre of the storegw-hq rpm ($1: 1 install, 2 upgrade). The user must exist
# before the files are unpacked: /etc/storegw-hq/storegw-hq.toml is
# root:storegw-hq. Same user as /usr/lib/sysusers.d/storegw-hq.conf.
getent group storegw-hq >/dev/null || groupadd -r storegw-hq
getent passwd storegw-hq >/dev/null || \
    useradd -r -g storegw-hq -d /nonexistent -M -s /sbin/nologin \
        -c "storegw-hq head-office receiver" storegw-hq
exit 0
