#!/bin/sh
# mmdebstrap's customize hook for the systemd VM's root file system: $1 is
# the root directory it built. It makes the root boot from /dev/vda without
# a first-boot setup or a login prompt, and run the control disk's script
# (LABEL=e2ectl, vm/run) once multi-user.target is reached, then power off.
# The cached root is keyed by this file's bytes, so any change rebuilds it.
set -eu
root=$1
echo olimage-e2e > "$root/etc/hostname"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$root/etc/fstab"
# A fixed machine-id: no first-boot presets or generated id.
echo 6f6c696d616765653265766d30303031 > "$root/etc/machine-id"
cat > "$root/etc/systemd/system/olimage-e2e.service" <<'UNIT'
[Unit]
Description=olimage e2e: run the control disk's script, then power off
After=multi-user.target

[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStart=/bin/sh -c 'udevadm settle; mkdir -p /run/e2e && mount LABEL=e2ectl /run/e2e && /bin/sh /run/e2e/run || echo "OLIMAGE-E2E-FAIL: the control disk script (/run/e2e/run) failed or is missing"; systemctl poweroff --no-block'

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../olimage-e2e.service "$root/etc/systemd/system/multi-user.target.wants/olimage-e2e.service"
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
