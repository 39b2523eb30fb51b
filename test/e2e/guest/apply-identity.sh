#!/bin/sh
# Hook of the tiny guest (glint.hook=/apply-identity.sh): mounts the VM's own
# disk (vda, an ext4 root cloned from a shared base), runs Glint's
# set_identifiers.sh with its identity.env against it, both taken from the
# cloud-init seed (glint.route=cidata: user-data's write_files entries, run
# with --env as user-data's runcmd does) or the 9p share (glint.route=9p:
# identity.env found next to the script), then prints what the disk now holds.
set -u
route=cidata
for w in $(cat /proc/cmdline); do
  case "$w" in glint.route=*) route=${w#glint.route=} ;; esac
done

mkdir -p /mnt/root
if ! mount -t ext4 /dev/vda /mnt/root; then
  echo "GLINT:hook_error=cannot mount /dev/vda"
  exit 1
fi

# write_file PATH: the base64 content of user-data's write_files entry for PATH, decoded.
write_file() {
  awk -v p="$1" '
    $0 == "  - path: " p { found = 1; next }
    found && /^  - / { exit }
    found && $1 == "content:" { print $2; exit }' /mnt/cidata/user-data | base64 -d
}

case "$route" in
  9p)
    script=/mnt/glint/set_identifiers.sh
    set --
    [ -s /mnt/glint/identity.env ] || { echo "GLINT:hook_error=no identity.env via 9p"; exit 1; }
    ;;
  cidata)
    write_file /usr/local/sbin/glint-set-identifiers >/tmp/set_identifiers.sh
    write_file /etc/glint/identity.env >/tmp/identity.env
    [ -s /tmp/identity.env ] || { echo "GLINT:hook_error=no identity.env via cidata"; exit 1; }
    script=/tmp/set_identifiers.sh
    # Not next to a script of that name: the seed's runcmd passes --env too.
    mv /tmp/identity.env /tmp/seed-identity.env
    set -- --env /tmp/seed-identity.env
    ;;
  *) echo "GLINT:hook_error=unknown route $route"; exit 1 ;;
esac
[ -s "$script" ] || { echo "GLINT:hook_error=no script via $route"; exit 1; }
echo "GLINT:route=$route"

sh "$script" "$@" --root /mnt/root >/tmp/first.log 2>&1
echo "GLINT:first_rc=$?"
sed 's/^/GLINT:first_out=/' /tmp/first.log
sh "$script" "$@" --root /mnt/root >/tmp/second.log 2>&1
echo "GLINT:second_rc=$?"
sed 's/^/GLINT:second_out=/' /tmp/second.log

echo "GLINT:guest_machine_id=$(cat /mnt/root/etc/machine-id)"
echo "GLINT:guest_dbus_machine_id=$(cat /mnt/root/var/lib/dbus/machine-id)"
echo "GLINT:guest_hostname=$(cat /mnt/root/etc/hostname)"
echo "GLINT:guest_record_vm_name=$(sed -n 's/^vm_name=//p' /mnt/root/etc/glint/applied)"
echo "GLINT:guest_script_sha=$(sha256sum "$script" | cut -d' ' -f1)"
echo "GLINT:guest_hosts=$(grep '^127.0.1.1' /mnt/root/etc/hosts)"
for k in ed25519 rsa; do
  echo "GLINT:guest_ssh_$k=$(ssh-keygen -lf /mnt/root/etc/ssh/ssh_host_${k}_key.pub | cut -d' ' -f2)"
done
[ -e /mnt/root/var/lib/dhcp/dhclient.eth0.leases ] && echo "GLINT:guest_lease=kept" || echo "GLINT:guest_lease=gone"
umount /mnt/root
