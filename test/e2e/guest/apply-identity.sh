#!/bin/sh
# Hook of the tiny guest (glint.hook=/apply-identity.sh): mounts the VM's own
# disk (vda, an ext4 root cloned from a shared base), runs Glint's
# set_identifiers.sh against it, taken from the cloud-init seed
# (glint.route=cidata: user-data's write_files entry) or the 9p share
# (glint.route=9p), then prints what the disk now holds.
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

case "$route" in
  9p) script=/mnt/glint/set_identifiers.sh ;;
  cidata)
    # The script is user-data's only b64 write_files content.
    sed -n "s/^ *content: '\\(.*\\)'\$/\\1/p" /mnt/cidata/user-data | base64 -d >/tmp/set_identifiers.sh
    script=/tmp/set_identifiers.sh
    ;;
  *) echo "GLINT:hook_error=unknown route $route"; exit 1 ;;
esac
[ -s "$script" ] || { echo "GLINT:hook_error=no script via $route"; exit 1; }
echo "GLINT:route=$route"

sh "$script" --root /mnt/root >/tmp/first.log 2>&1
echo "GLINT:first_rc=$?"
sed 's/^/GLINT:first_out=/' /tmp/first.log
sh "$script" --root /mnt/root >/tmp/second.log 2>&1
echo "GLINT:second_rc=$?"
sed 's/^/GLINT:second_out=/' /tmp/second.log

echo "GLINT:guest_machine_id=$(cat /mnt/root/etc/machine-id)"
echo "GLINT:guest_dbus_machine_id=$(cat /mnt/root/var/lib/dbus/machine-id)"
echo "GLINT:guest_hostname=$(cat /mnt/root/etc/hostname)"
echo "GLINT:guest_hosts=$(grep '^127.0.1.1' /mnt/root/etc/hosts)"
for k in ed25519 rsa; do
  echo "GLINT:guest_ssh_$k=$(ssh-keygen -lf /mnt/root/etc/ssh/ssh_host_${k}_key.pub | cut -d' ' -f2)"
done
[ -e /mnt/root/var/lib/dhcp/dhclient.eth0.leases ] && echo "GLINT:guest_lease=kept" || echo "GLINT:guest_lease=gone"
umount /mnt/root
