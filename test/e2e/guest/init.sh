#!/bin/sh
# glint tiny test guest: /init (PID 1), run by busybox sh.
#
# Prints what the guest sees of its identity as marker lines on the console:
#   GLINT:<key>=<value>     (a key may repeat, e.g. oem, mac:<if>)
#   GLINT:<key>             (flag without value, e.g. done)
# then optionally mounts cidata / 9p / efivarfs, runs the EFI variable test and
# a hook, prints GLINT:done and powers off (QEMU must run with -no-reboot).
#
# Kernel command line switches (all optional):
#   glint.debug=1            keep kernel messages on the console
#   glint.cidata=wait        wait up to glint.waitsec (default 30) s for the
#                            cidata volume (AHCI/SCSI disks are probed async)
#   glint.efitest=write|read write GlintTest-<GUID> (value glint.efivalue,
#                            default glint-efi-ok) or print GLINT:efivar=
#   glint.hook=<path>        run <path> (sh) after everything is mounted

export PATH=/bin:/sbin
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

CMDLINE=$(cat /proc/cmdline)

# arg NAME: value of NAME=value on the kernel command line ("" if absent).
arg() {
  for w in $CMDLINE; do
    case "$w" in
      "$1"=*) echo "${w#*=}"; return 0 ;;
      "$1") echo 1; return 0 ;;
    esac
  done
  return 1
}

m() {
  if [ $# -ge 2 ]; then echo "GLINT:$1=$2"; else echo "GLINT:$1"; fi
}

# mf KEY FILE: print FILE's content as marker KEY if FILE exists.
mf() {
  [ -e "$2" ] || return 0
  m "$1" "$(cat "$2" 2>/dev/null | tr -d '\000')"
}

finish() {
  m done
  sync
  poweroff -f
  echo o >/proc/sysrq-trigger
  sleep 30
}

[ -n "$(arg glint.debug)" ] || echo 1 >/proc/sys/kernel/printk

# --- kernel modules, in dependency order (written by the host builder) -----
if [ -r /etc/glint/modules ]; then
  while read -r mod; do
    [ -n "$mod" ] || continue
    # efivarfs refuses to load without EFI runtime services (BIOS boots).
    case "$mod" in */efivarfs.ko) [ -d /sys/firmware/efi ] || continue ;; esac
    insmod "/lib/modules/$mod" 2>/dev/null || m modfail "$mod"
  done </etc/glint/modules
fi

m kernel "$(uname -r)"
# ACPI tables readable? (they are not when something overwrote them, e.g. a
# PVH-booted initrd overlapping SeaBIOS' TPM area; poweroff then halts.)
if [ -e /sys/firmware/acpi/tables/DSDT ]; then m acpi yes; else m acpi no; fi

# --- SMBIOS / DMI ------------------------------------------------------------
for k in product_uuid product_serial product_name product_version product_family \
  sys_vendor board_vendor board_serial board_asset_tag chassis_vendor chassis_serial \
  chassis_asset_tag; do
  mf "$k" "/sys/class/dmi/id/$k"
done

# u8 FILE OFFSET: unsigned byte at OFFSET of FILE.
u8() {
  od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' \n'
}

# smbios_str FILE INDEX: string number INDEX (1-based) of a raw SMBIOS table.
smbios_str() {
  [ -n "$2" ] && [ "$2" -gt 0 ] || return 0
  len=$(u8 "$1" 1)
  tail -c "+$((len + 1))" "$1" | tr '\000' '\n' | sed -n "${2}p"
}

hexdump_file() {
  od -An -v -tx1 "$1" | tr -d ' \n'
}

for t in /sys/firmware/dmi/entries/4-*/raw; do
  [ -r "$t" ] || continue
  m smbios4_raw "$(hexdump_file "$t")"
  if [ "$(u8 "$t" 1)" -gt 32 ]; then
    m processor_serial "$(smbios_str "$t" "$(u8 "$t" 32)")"
  fi
done

for t in /sys/firmware/dmi/entries/11-*/raw; do
  [ -r "$t" ] || continue
  n=$(u8 "$t" 4)
  i=1
  while [ "$i" -le "$n" ]; do
    m oem "$(smbios_str "$t" "$i")"
    i=$((i + 1))
  done
done

# --- NICs and disks ----------------------------------------------------------
for n in /sys/class/net/*; do
  i=${n##*/}
  [ "$i" = lo ] && continue
  mf "mac:$i" "$n/address"
done

mf vda_serial /sys/block/vda/serial
for b in /sys/block/vd*; do
  [ -e "$b/serial" ] || continue
  mf "blk_serial:${b##*/}" "$b/serial"
done

# --- vmgenid (ACPI device QEMUVGID; GUID from the fw_cfg blob at offset 40) ---
vmgenid=no
for h in /sys/bus/acpi/devices/*/hid; do
  [ "$(cat "$h" 2>/dev/null)" = QEMUVGID ] && vmgenid=yes
done
m vmgenid "$vmgenid"
g=/sys/firmware/qemu_fw_cfg/by_name/etc/vmgenid_guid/raw
if [ -r "$g" ]; then
  # shellcheck disable=SC2046
  set -- $(od -An -v -tx1 -j 40 -N 16 "$g")
  if [ $# -eq 16 ]; then
    m vmgenid_guid "$4$3$2$1-$6$5-$8$7-$9${10}-${11}${12}${13}${14}${15}${16}"
  fi
fi

# fw_cfg opt/ entries (e.g. -fw_cfg name=opt/glint/x,string=y); one marker per line.
if [ -d /sys/firmware/qemu_fw_cfg/by_name/opt ]; then
  # by_name/ holds symlinks into by_key/: follow them.
  for raw in $(find -L /sys/firmware/qemu_fw_cfg/by_name/opt -name raw); do
    name=${raw#/sys/firmware/qemu_fw_cfg/by_name/}
    name=${name%/raw}
    tr -d '\000' <"$raw" | while IFS= read -r line || [ -n "$line" ]; do
      m "fwcfg:$name" "$line"
    done
  done
fi

# --- TPM / EFI -----------------------------------------------------------------
if [ -e /sys/class/tpm/tpm0 ]; then
  m tpm yes
  mf tpm_version /sys/class/tpm/tpm0/tpm_version_major
else
  m tpm no
fi

if [ -d /sys/firmware/efi ]; then m efi yes; else m efi no; fi

# --- mounts --------------------------------------------------------------------
find_cidata() {
  for l in cidata CIDATA; do
    d=$(findfs "LABEL=$l" 2>/dev/null) && [ -n "$d" ] && echo "$d" && return 0
  done
  return 1
}

mkdir -p /mnt/cidata /mnt/glint
dev=$(find_cidata)
if [ -z "$dev" ] && [ -n "$(arg glint.cidata)" ]; then
  wait=$(arg glint.waitsec) || wait=30
  i=0
  while [ -z "$dev" ] && [ "$i" -lt $((wait * 5)) ]; do
    usleep 200000
    dev=$(find_cidata)
    i=$((i + 1))
  done
fi
if [ -n "$dev" ] && mount -o ro "$dev" /mnt/cidata; then
  m cidata "$dev"
else
  m cidata no
fi

# An OpenStack config drive (label config-2): its metadata, one JSON line each.
mkdir -p /mnt/config2
c2=$(findfs LABEL=config-2 2>/dev/null)
if [ -n "$c2" ] && mount -o ro "$c2" /mnt/config2; then
  m config2 "$c2"
  for f in meta_data.json network_data.json; do
    mf "config2:latest/$f" "/mnt/config2/openstack/latest/$f"
  done
  for v in /mnt/config2/openstack/*; do m config2_version "${v##*/}"; done
  mf config2:user_data_head "/mnt/config2/openstack/latest/user_data" | head -n 1
else
  m config2 no
fi

ninep=no
for t in /sys/bus/virtio/devices/*/mount_tag; do
  [ -e "$t" ] || continue
  [ "$(tr -d '\000\n' <"$t" 2>/dev/null)" = glint ] || continue
  mount -t 9p -o trans=virtio,version=9p2000.L glint /mnt/glint && ninep=yes
done
m 9p "$ninep"

if [ -d /sys/firmware/efi ]; then
  if mount -t efivarfs efivarfs /sys/firmware/efi/efivars; then
    m efivarfs yes
  else
    m efivarfs no
  fi
fi

EFIVAR=/sys/firmware/efi/efivars/GlintTest-3f1c1b9e-5a4d-4c2b-9e8f-6a7b8c9d0e1f
case "$(arg glint.efitest)" in
  write)
    val=$(arg glint.efivalue) || val=glint-efi-ok
    # efivarfs wants attributes (u32 LE; 7 = NV|BS|RT) + data in one write().
    printf '\007\000\000\000%s' "$val" >/tmp/efivar
    if cat /tmp/efivar >"$EFIVAR"; then m efivar_written "$val"; else m efivar_written fail; fi
    ;;
  read)
    if [ -e "$EFIVAR" ]; then m efivar "$(tail -c +5 "$EFIVAR")"; else m efivar none; fi
    ;;
esac

hook=$(arg glint.hook)
if [ -n "$hook" ]; then
  if [ -x "$hook" ]; then "$hook"; else sh "$hook"; fi
  m hook_rc "$?"
fi

finish
