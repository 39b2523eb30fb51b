#!/usr/bin/env bash
# Runs a privileged libvirtd whose every directory is under ROOT: started by
# test/support/libvirtd.ts inside `unshare --mount`, it bind-mounts ROOT's
# etc/, lib/, run/, cache/ and log/ over /etc/libvirt, /var/lib/libvirt,
# /run/libvirt, /var/cache/libvirt and /var/log/{libvirt,swtpm} in its own
# mount namespace, so nothing of the host's libvirt is seen or touched. The
# socket is ROOT/run/libvirt-sock (URI qemu+unix:///system?socket=…).
set -euo pipefail
root=$1
mount --make-rprivate /
for pair in etc:/etc/libvirt lib:/var/lib/libvirt run:/run/libvirt cache:/var/cache/libvirt \
  log:/var/log/libvirt swtpmlog:/var/log/swtpm; do
  src="$root/${pair%%:*}"
  dst="${pair#*:}"
  mkdir -p "$src" "$dst"
  mount --bind "$src" "$dst"
done
exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file "$root/libvirtd.pid"
