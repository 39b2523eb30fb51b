#!/usr/bin/env bash
# Installs the Debian packages Glint drives (QEMU, qemu-img, OVMF, swtpm,
# genisoimage) and the ones its tests use (a Debian kernel, busybox, tmux,
# shellcheck, dash, mkfs.ext4, cloud-init for `cloud-init schema`), and those
# of offline re-identification (qemu-storage-daemon, fuse3, gdisk, mtools,
# xfsprogs, cryptsetup; fdisk and dosfstools build and check the test
# images), the registry's (python3, make and g++ build better-sqlite3's
# native module at `npm ci`; postgresql runs the shared-registry tests),
# mmdebstrap and GRUB's EFI modules for the Debian guest images of
# test/e2e/debian, qemu-ga for the guest agent client tests, and libvirt
# (the daemon, virsh and virt-xml-validate, and virtinst's virt-clone and
# virt-xml) for `glint libvirt` and its tests, only those that are missing.
# The libvirt tests start their own libvirtd; no service needs to run.
set -euo pipefail
PACKAGES=(
  qemu-system-x86 qemu-utils ovmf swtpm swtpm-tools genisoimage
  linux-image-amd64 busybox-static cpio xz-utils e2fsprogs
  shellcheck dash bash tmux openssh-client cloud-init
  qemu-system-common fuse3 gdisk fdisk dosfstools mtools xfsprogs cryptsetup-bin
  python3 make g++ postgresql
  mmdebstrap grub-efi-amd64-bin qemu-guest-agent
  libvirt-daemon-system libvirt-clients virtinst
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "host packages: all present"
  exit 0
fi
echo "host packages: installing ${missing[*]}"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
"${SUDO[@]}" apt-get update
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y "${missing[@]}"
