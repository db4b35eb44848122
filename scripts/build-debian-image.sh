#!/usr/bin/env bash
# Builds (once) a genuine Debian 12 (bookworm) cloud image for skiff from Debian packages
# only, and prints its absolute path as the LAST line on stdout (everything else goes to
# stderr).
#
# What the image is:
# - debootstrap (minbase) + apt from bookworm, bookworm-updates and bookworm-security:
#   linux-image-cloud-amd64, systemd, cloud-init 22.4 (NoCloud only), openssh-server,
#   qemu-guest-agent, sudo, ifupdown + resolvconf (cloud-init's "eni" renderer: it
#   writes /etc/network/interfaces.d/50-cloud-init from skiff's netplan-v2 seed).
# - A 2 GiB MBR disk: partition 1 is a 128 MiB FAT16 with syslinux, vmlinuz and
#   initrd.img (no GRUB, no menu, no timeout); partition 2 is the ext4 root, last on the
#   disk so cloud-init's growpart/resizefs grow it to whatever size skiff gives the
#   overlay. The FAT partition is automounted at /boot/firmware in the guest, and kernel
#   and initramfs hooks copy a new kernel there, so `apt upgrade` keeps the disk bootable.
# - SSH host keys: ecdsa and ed25519 only (an RSA key costs 20-40 s of boot under TCG).
# - Console on ttyS0 (kernel, systemd, a getty, cloud-init's "Cloud-init v. ... finished
#   at ..." line). No SSH host keys and an empty /etc/machine-id: every VM makes its own.
# - cloud-init's default user is Debian's ("debian", locked, sudo); skiff's user-data
#   lists only root in `users:`, so that default user is not created on skiff VMs.
#
# No loop devices and no mounts of the disk image: the root file system is made with
# `mkfs.ext4 -d`, the boot partition with mtools. The only mounts are /proc and /sys in
# the build chroot, undone on exit.
#
# Needs root and Debian's package mirror (SKIFF_DEBIAN_MIRROR, default
# http://deb.debian.org/debian; SKIFF_DEBIAN_SECURITY_MIRROR, default
# http://deb.debian.org/debian-security). The image depends only on this file (packages
# are whatever the mirror has at build time); it is cached as
# ${SKIFF_TEMPLATE_CACHE:-/var/cache/skiff-test}/debian-12-skiff-<hash>.qcow2.
set -euo pipefail

# Everything but the final path goes to stderr.
exec 3>&1 1>&2

SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=lib.sh
source "$(dirname "$SELF")/lib.sh"

MIRROR=${SKIFF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SKIFF_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# Disk layout (MiB): MBR gap, FAT boot partition, ext4 root to the end of the disk.
DISK_MIB=2048
BOOT_START_MIB=1
BOOT_MIB=128
ROOT_START_MIB=$((BOOT_START_MIB + BOOT_MIB))
ROOT_MIB=$((DISK_MIB - ROOT_START_MIB))

# Packages on top of debootstrap's minbase (installed without Recommends).
PACKAGES="linux-image-cloud-amd64 initramfs-tools zstd systemd-sysv udev dbus libpam-systemd
kmod cloud-init cloud-guest-utils e2fsprogs openssh-server qemu-guest-agent sudo ifupdown
isc-dhcp-client resolvconf iproute2 netbase ca-certificates procps iputils-ping"

# Timers and jobs that cost boot time under TCG and do nothing useful in a fresh VM.
# Masked, not disabled, so that no preset run (first boot with an empty machine-id) or
# package upgrade turns them back on.
MASK_UNITS="apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer
e2scrub_reap.service fstrim.timer man-db.timer"

CACHE_DIR=${SKIFF_TEMPLATE_CACHE:-/var/cache/skiff-test}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)

HASH=$(sha256sum <"$SELF" | cut -c1-12)
IMAGE="$CACHE_DIR/debian-12-skiff-$HASH.qcow2"

if [ ! -f "$IMAGE" ]; then
    # One builder per image; the others wait here and then find it done.
    exec 9>"$IMAGE.lock"
    flock 9
fi
if [ -f "$IMAGE" ]; then
    echo "$IMAGE" >&3
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "building $IMAGE needs root" >&2; exit 1; }
say "building Debian 12 cloud image $IMAGE"
START=$(date +%s)
need_pkgs debootstrap debian-archive-keyring e2fsprogs dosfstools mtools syslinux \
    syslinux-common parted qemu-utils

# Same filesystem as the cache, so the final mv is atomic.
WORK=$(mktemp -d "$CACHE_DIR/.build-debian-$HASH.XXXXXX")
R="$WORK/root"

# Unmounts whatever is still mounted below $WORK (an interrupted debootstrap leaves
# /proc and /sys), deepest first, then deletes $WORK, but never through a mount.
cleanup() {
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    if findmnt -rn -o TARGET | grep -qF "$WORK/"; then
        echo "not removing $WORK: something is still mounted there" >&2
        return
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- root file system -------------------------------------------------------------------
say "debootstrap bookworm (minbase)"
debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    exit 1
}

in_root() {
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# No daemon may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"

cat >"$R/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF

# Written before the packages that read them are installed.
mkdir -p "$R/etc/initramfs-tools/conf.d" "$R/etc/cloud/cloud.cfg.d" "$R/boot/firmware" \
    "$R/etc/kernel/postinst.d" "$R/etc/initramfs/post-update.d" "$R/etc/network"
# MODULES=most: the image must boot on any disk controller, not the build host's.
cat >"$R/etc/initramfs-tools/conf.d/skiff.conf" <<'EOF'
MODULES=most
COMPRESS=zstd
EOF
# Never look for a resume device (the build host's swap would be found).
echo "RESUME=none" >"$R/etc/initramfs-tools/conf.d/resume"
cat >>"$R/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
virtio_scsi
ext4
EOF
# C.UTF-8 needs no locale-gen: cloud-init's locale module then has nothing to generate.
echo "LANG=C.UTF-8" >"$R/etc/default/locale"
echo "localhost" >"$R/etc/hostname"
cat >"$R/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
# Interfaces come from cloud-init only (interfaces.d/50-cloud-init, loopback included).
cat >"$R/etc/network/interfaces" <<'EOF'
# Network interfaces are configured by cloud-init: see /etc/network/interfaces.d/.
source /etc/network/interfaces.d/*
EOF

# The NoCloud seed (a disk labelled CIDATA or cidata) is the only data source: no
# waiting for metadata servers.
cat >"$R/etc/cloud/cloud.cfg.d/99_skiff.cfg" <<'EOF'
# skiff: the NoCloud seed (vfat disk labelled CIDATA) is the only data source.
datasource_list: [ NoCloud, None ]
# /etc/hosts names the instance's hostname (sudo and friends resolve it).
manage_etc_hosts: true
# No GRUB on this disk (syslinux on the FAT partition).
grub_dpkg:
  enabled: false
# No RSA (nor DSA) host key: generating an RSA key takes 20-40 s under TCG, and every
# OpenSSH client since 6.5 speaks ed25519.
ssh_genkeytypes: [ ecdsa, ed25519 ]
EOF

# The disk boots through syslinux on the FAT partition: keep its copy of the kernel and
# initramfs in step with /vmlinuz and /initrd.img after every kernel or initramfs update.
for hook in "$R/etc/kernel/postinst.d/zz-skiff-bootpart" "$R/etc/initramfs/post-update.d/zz-skiff-bootpart"; do
    cat >"$hook" <<'EOF'
#!/bin/sh
# skiff image: syslinux boots /boot/firmware/vmlinuz and /boot/firmware/initrd.img (the
# FAT partition); copy the current kernel and initramfs there.
set -e
B=/boot/firmware
mountpoint -q "$B" || exit 0
for f in vmlinuz initrd.img; do
    src=$(readlink -f "/$f") || continue
    [ -f "$src" ] || continue
    cp "$src" "$B/$f.new"
    mv "$B/$f.new" "$B/$f"
done
sync
EOF
    chmod 0755 "$hook"
done

ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
BOOT_ID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F')
BOOT_UUID="${BOOT_ID:0:4}-${BOOT_ID:4:4}"
cat >"$R/etc/fstab" <<EOF
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
UUID=$ROOT_UUID	/	ext4	errors=remount-ro	0	1
UUID=$BOOT_UUID	/boot/firmware	vfat	umask=0077,nofail,x-systemd.automount	0	0
EOF

say "installing packages"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
APT="apt-get -q -y -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
# shellcheck disable=SC2086 # word splitting of $APT and $PACKAGES is intended
{
    in_root $APT update
    in_root $APT dist-upgrade
    in_root $APT install $PACKAGES
} >"$WORK/apt.log" 2>&1 || {
    tail -n 40 "$WORK/apt.log" >&2
    exit 1
}

say "configuring the guest"
for u in $MASK_UNITS; do
    if [ -e "$R/lib/systemd/system/$u" ]; then in_root systemctl mask -q "$u"; fi
done
in_root systemctl enable -q serial-getty@ttyS0.service
# qemu-guest-agent has no [Install] section: udev starts it when the virtio port
# org.qemu.guest_agent.0 appears (60-qemu-guest-agent.rules). Check that it still does.
grep -rqs 'qemu-guest-agent.service' "$R/lib/udev/rules.d/" || {
    echo "qemu-guest-agent: no udev rule starts it" >&2
    exit 1
}

# Exactly one kernel and initramfs.
KVERS=$(cd "$R/boot" && find . -maxdepth 1 -name 'vmlinuz-*' | sed 's|^\./vmlinuz-||')
if [ -z "$KVERS" ] || [ "$(echo "$KVERS" | wc -l)" -ne 1 ] || [ ! -f "$R/boot/initrd.img-$KVERS" ]; then
    echo "expected one kernel and initramfs in /boot, found: $KVERS" >&2
    exit 1
fi
say "kernel $KVERS, initramfs $(du -h "$R/boot/initrd.img-$KVERS" | cut -f1)"

# Per-instance state goes; every VM makes its own.
umount "$R/sys" "$R/proc"
in_root apt-get clean
rm -f "$R/usr/sbin/policy-rc.d" "$R"/etc/ssh/ssh_host_*
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/lib/cloud \
    "$R"/tmp/* "$R"/var/tmp/* "$R"/root/.bash_history
: >"$R/etc/machine-id"
if [ -f "$R/var/lib/dbus/machine-id" ] && [ ! -L "$R/var/lib/dbus/machine-id" ]; then
    ln -sf /etc/machine-id "$R/var/lib/dbus/machine-id"
fi
rm -f "$R"/var/cache/debconf/*-old "$R"/var/lib/dpkg/*-old
find "$R/var/log" -type f -exec truncate -s 0 {} +
# The final sources.list names Debian's public mirrors, not the build's.
cat >"$R/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
# DNS comes from the seed's nameservers through ifupdown and resolvconf, never from
# the build host.
ln -sf ../run/resolvconf/resolv.conf "$R/etc/resolv.conf"

# --- disk: MBR, FAT16 boot partition with syslinux, ext4 root -------------------------
say "making the disk"
export MTOOLS_SKIP_CHECK=1
cat >"$WORK/syslinux.cfg" <<EOF
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200n8
EOF
mkfs.vfat -F 16 -n BOOT -i "$BOOT_ID" -C "$WORK/boot.img" $((BOOT_MIB * 1024)) >/dev/null
syslinux --install "$WORK/boot.img"
mcopy -i "$WORK/boot.img" "$R/boot/vmlinuz-$KVERS" ::vmlinuz
mcopy -i "$WORK/boot.img" "$R/boot/initrd.img-$KVERS" ::initrd.img
mcopy -i "$WORK/boot.img" "$WORK/syslinux.cfg" ::syslinux.cfg

truncate -s "${ROOT_MIB}M" "$WORK/root.img"
mkfs.ext4 -q -F -L root -U "$ROOT_UUID" -d "$R" "$WORK/root.img"
e2fsck -fn "$WORK/root.img" >"$WORK/e2fsck.log" 2>&1 || { cat "$WORK/e2fsck.log" >&2; exit 1; }

truncate -s "${DISK_MIB}M" "$WORK/disk.raw"
# parted calls udevadm (absent without udev) only to settle device nodes: harmless noise.
parted -s "$WORK/disk.raw" unit MiB mklabel msdos \
    mkpart primary fat16 "$BOOT_START_MIB" "$ROOT_START_MIB" \
    mkpart primary ext4 "$ROOT_START_MIB" 100% \
    set 1 boot on 2> >(grep -v udevadm >&2)
dd if="$WORK/boot.img" of="$WORK/disk.raw" bs=1M seek="$BOOT_START_MIB" conv=notrunc,sparse status=none
dd if="$WORK/root.img" of="$WORK/disk.raw" bs=1M seek="$ROOT_START_MIB" conv=notrunc,sparse status=none
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$WORK/disk.raw" bs=440 count=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/image.qcow2"
chmod 0644 "$WORK/image.qcow2"
mv "$WORK/image.qcow2" "$IMAGE"
say "built $IMAGE ($(du -h "$IMAGE" | cut -f1) on disk, ${DISK_MIB} MiB virtual) in $(($(date +%s) - START)) s"
echo "$IMAGE" >&3
