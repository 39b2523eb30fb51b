#!/usr/bin/env bash
# Builds a used Debian guest disk image for Glint's real-guest tests, without
# mounts or loop devices:
#   1. mmdebstrap: a SUITE root tree with systemd, cloud-init, sshd, ifupdown +
#      isc-dhcp-client, qemu-guest-agent and linux-image-cloud-amd64;
#   2. a sparse GPT disk (sgdisk): an ESP (mkfs.vfat + mtools) holding a
#      removable-path GRUB (grub-mkstandalone) that chains to
#      /EFI/debian/grub.cfg, which finds the root by its filesystem UUID, as
#      Debian's own grub-install does; an ext4 root made by `mkfs.ext4 -d`;
#      fstab by UUID; converted to qcow2;
#   3. one boot under QEMU (TCG, OVMF) with a NoCloud seed, so the image is in
#      the state of an installed and booted system: machine-id, SSH host keys,
#      a DHCP lease, a random seed, cloud-init instance state. The guest's
#      report of that boot (GLINT:key=value lines) is kept beside the image.
# Usage: build-image.sh SUITE OUT.qcow2
# Writes OUT.qcow2 and OUT.qcow2.report atomically (temp files + rename).
set -euo pipefail
if (($# != 2)); then
  echo "usage: $0 SUITE OUT.qcow2" >&2
  exit 2
fi
suite=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
mirror=${GLINT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=(
  systemd-sysv udev dbus linux-image-cloud-amd64 initramfs-tools
  cloud-init openssh-server ifupdown isc-dhcp-client qemu-guest-agent
  e2fsprogs dosfstools iproute2 netbase python3
)
disk_mib=4096
esp_mib=100

work=$(mktemp -d "${out}.build.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

root_uuid=$(cat /proc/sys/kernel/random/uuid)
esp_serial=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
esp_id="${esp_serial:0:4}-${esp_serial:4:4}"
machine_id=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

echo "== mmdebstrap $suite" >&2
rootdir="$work/root"
mmdebstrap --variant=apt --mode=root \
  --include="$(IFS=,; echo "${packages[*]}")" \
  "$suite" "$rootdir" "deb $mirror $suite main" >&2

echo "== configure the root tree" >&2
install -m 0755 "$here/guest/glint-report" "$rootdir/usr/local/sbin/glint-report"
install -m 0644 "$here/guest/glint-report.service" "$rootdir/etc/systemd/system/glint-report.service"
install -m 0644 "$here/guest/90-glint-test.cfg" "$rootdir/etc/cloud/cloud.cfg.d/90-glint-test.cfg"
install -m 0644 "$here/guest/glint-test.interfaces" "$rootdir/etc/network/interfaces.d/glint-test"
printf '%s\n' 'source /etc/network/interfaces.d/*' '' 'auto lo' 'iface lo inet loopback' >"$rootdir/etc/network/interfaces"
mkdir -p "$rootdir/etc/systemd/system/cloud-init.target.wants"
ln -sf /etc/systemd/system/glint-report.service "$rootdir/etc/systemd/system/cloud-init.target.wants/glint-report.service"
# Under TCG on a busy host, udev's coldplug can outlast ifupdown-pre's
# `udevadm settle` (120 s) and dhclient can outlast networking's start limit:
# both would end as failed units that have nothing to do with identity.
mkdir -p "$rootdir/etc/systemd/system/ifupdown-pre.service.d" "$rootdir/etc/systemd/system/networking.service.d"
printf '%s\n' '[Service]' 'ExecStart=' 'ExecStart=/bin/udevadm settle --timeout=1200' 'TimeoutStartSec=infinity' \
  >"$rootdir/etc/systemd/system/ifupdown-pre.service.d/glint-test.conf"
printf '%s\n' '[Service]' 'TimeoutStartSec=30min' >"$rootdir/etc/systemd/system/networking.service.d/glint-test.conf"
printf '%s\n' "$machine_id" >"$rootdir/etc/machine-id"
echo debian-base >"$rootdir/etc/hostname"
mkdir -p "$rootdir/boot/efi" "$rootdir/boot/grub"
# Under TCG on a busy host, udev may take longer than systemd's default 90 s
# to announce the ESP, which would end the boot in emergency mode.
cat >"$rootdir/etc/fstab" <<FSTAB
# <file system> <mount point> <type> <options> <dump> <pass>
UUID=$root_uuid / ext4 errors=remount-ro 0 1
UUID=$esp_id /boot/efi vfat umask=0077,x-systemd.device-timeout=10min 0 1
FSTAB
kernel=$(find "$rootdir/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n1)
initrd="initrd.img-${kernel#vmlinuz-}"
[[ -f "$rootdir/boot/$initrd" ]] || { echo "no $initrd in the root tree" >&2; exit 1; }
cat >"$rootdir/boot/grub/grub.cfg" <<GRUB
set timeout=0
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root $root_uuid
linux /boot/$kernel root=UUID=$root_uuid ro net.ifnames=0 console=ttyS0,115200n8
initrd /boot/$initrd
boot
GRUB
rm -f "$rootdir"/etc/ssh/ssh_host_*
chroot "$rootdir" ssh-keygen -A >&2
rm -rf "$rootdir"/var/cache/apt/archives/*.deb "$rootdir"/var/lib/apt/lists/*

echo "== GPT disk" >&2
disk="$work/disk.raw"
truncate -s "${disk_mib}M" "$disk"
sgdisk --clear \
  -n "1:1MiB:+${esp_mib}MiB" -t 1:ef00 -c 1:ESP \
  -n 2:0:0 -t 2:8304 -c 2:root "$disk" >&2
part_start() { sgdisk -i "$1" "$disk" | sed -n 's/^First sector: \([0-9]*\).*/\1/p'; }
part_end() { sgdisk -i "$1" "$disk" | sed -n 's/^Last sector: \([0-9]*\).*/\1/p'; }
esp_start=$(part_start 1)
root_start=$(part_start 2)
root_sectors=$(($(part_end 2) - root_start + 1))

echo "== ESP" >&2
esp="$work/esp.img"
mkfs.vfat -C -F 32 -n ESP -i "${esp_serial}" "$esp" $((esp_mib * 1024)) >&2
cat >"$work/embedded.cfg" <<'CFG'
search --no-floppy --set=esp --file /EFI/debian/grub.cfg
set prefix=($esp)/EFI/debian
configfile ($esp)/EFI/debian/grub.cfg
CFG
cat >"$work/esp-grub.cfg" <<CFG
search.fs_uuid $root_uuid root
set prefix=(\$root)'/boot/grub'
configfile \$prefix/grub.cfg
CFG
grub-mkstandalone -O x86_64-efi -o "$work/BOOTX64.EFI" \
  --modules="part_gpt fat ext2 search search_fs_uuid search_fs_file configfile linux normal" \
  --locales= --fonts= --themes= \
  "boot/grub/grub.cfg=$work/embedded.cfg"
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -i "$esp" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$work/esp-grub.cfg" ::/EFI/debian/grub.cfg

echo "== ext4 root" >&2
rootfs="$work/root.img"
truncate -s $((root_sectors * 512)) "$rootfs"
mkfs.ext4 -q -F -U "$root_uuid" -L root -d "$rootdir" "$rootfs"
rm -rf "$rootdir"

dd if="$esp" of="$disk" bs=1M oflag=seek_bytes seek=$((esp_start * 512)) conv=notrunc,sparse status=none
dd if="$rootfs" of="$disk" bs=1M oflag=seek_bytes seek=$((root_start * 512)) conv=notrunc,sparse status=none
rm -f "$esp" "$rootfs"
qemu-img convert -f raw -O qcow2 "$disk" "$work/image.qcow2"
rm -f "$disk"

echo "== first boot (TCG)" >&2
mkdir -p "$work/seed"
printf 'instance-id: iid-glint-test-base\nlocal-hostname: debian-base\n' >"$work/seed/meta-data"
printf '#cloud-config\n{}\n' >"$work/seed/user-data"
genisoimage -quiet -output "$work/seed.iso" -volid cidata -joliet -rock "$work/seed/meta-data" "$work/seed/user-data"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
start=$(date +%s)
timeout 1200 qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -smp 2 \
  -display none -no-reboot -serial "file:$work/serial.log" \
  -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd" \
  -drive "if=none,id=disk0,file=$work/image.qcow2,format=qcow2" -device virtio-blk-pci,drive=disk0 \
  -drive "file=$work/seed.iso,if=virtio,format=raw,readonly=on" \
  -nic user,model=virtio-net-pci >&2
echo "first boot: $(($(date +%s) - start)) s" >&2
tr -d '\r' <"$work/serial.log" | grep -a '^GLINT:' >"$work/report" || true
if ! grep -q '^GLINT:end=' "$work/report"; then
  echo "the first boot did not report; serial log tail:" >&2
  tail -n 60 "$work/serial.log" >&2
  exit 1
fi
mv "$work/report" "$out.report"
mv "$work/image.qcow2" "$out"
