#!/bin/sh
# shellcheck shell=sh
#
# glint set_identifiers: give this Linux guest the identity Glint issued.
#
# The same file for every VM (Glint copies it byte for byte into each
# <vm>/shared/). The values come from identity.env, which Glint writes next
# to it: one KEY=value line per key (lines starting with # are comments),
# printable ASCII only. The file is parsed, never sourced or evaluated: every
# key must be known and appear exactly once, and every value must have the
# exact format Glint issues (see "identity.env" below), or the script stops
# before it changes anything. Runs under any POSIX sh (dash, bash, busybox
# ash); needs POSIX tools plus cmp and mktemp (coreutils or busybox),
# ssh-keygen for host keys, and blkid, tune2fs and swaplabel/mkswap only for
# a live --disk-ids run.
#
# On the VM, from the 9p share (read-only is fine):
#   mount -t 9p -o trans=virtio,version=9p2000.L,ro glint /mnt/glint
#   sh /mnt/glint/set_identifiers.sh --dry-run     # look first
#   sh /mnt/glint/set_identifiers.sh               # then apply, as root
# From the host, on a guest root mounted at /mnt/guest:
#   sh <vm>/shared/set_identifiers.sh --root /mnt/guest
#
# Usage: set_identifiers.sh [--env FILE] [--dry-run] [--root DIR]
#                           [--hostname-from name|machine-id]
#                           [--disk-ids] [--no-ssh-keys]
#
#   --env FILE         the identity to apply (default: identity.env in the
#                      directory of this script)
#   --dry-run          print every change, make none (no log, no record)
#   --root DIR         work on a guest root mounted at DIR instead of /
#                      (offline: no hostnamectl, no device changes)
#   --hostname-from X  override identity.env's HOSTNAME. name: the hostname
#                      is the VM name; machine-id: it is glint-<first 8 hex
#                      digits of the machine-id>
#   --disk-ids         also switch filesystem UUID references (see below)
#   --no-ssh-keys      leave SSH host keys alone (cloud-init's ssh_deletekeys
#                      already regenerated them)
#
# identity.env: the keys and their formats are ENV_FORMATS below (the list
# src/guest/identity-env.ts writes). name: 1-63 of a-z, 0-9 and -, not
# starting with -; uuid: lowercase RFC 9562 version-4 UUID; machine-id: 32
# lowercase hex digits, version nibble 4, variant nibble 8-b; mac:
# locally administered unicast, lowercase (x2:, x6:, xa: or xe:, e.g.
# 52:54:00:xx:xx:xx or 02:xx:xx:xx:xx:xx); cpu-serial / mb-serial: CPU / MB and 4-32 of
# 0-9 A-Z; generation: a decimal number 1-9999999999. HOSTNAME is the VM name
# or glint-<first 8 hex digits of MACHINE_ID> (Glint resolves its
# hostname_from setting when it writes the file).
#
# What it does, each step only when something differs:
#   1. <root>/etc/machine-id = MACHINE_ID (32 hex + newline, machine-id(5));
#      <root>/var/lib/dbus/machine-id agrees: a symlink to /etc/machine-id is
#      left alone, a plain file gets the same value.
#   2. Hostname: <root>/etc/hostname, the 127.0.1.1 line of <root>/etc/hosts
#      (replaced, or added after 127.0.0.1). Live (root is /): also the running
#      hostname, with hostnamectl when systemd runs, else hostname(1).
#   3. Only when the identity changed (no record in <root>/etc/glint/applied,
#      or any identity value in it differs; the hostname does not count):
#      - SSH host keys: if keys exist or sshd is installed, delete every
#        <root>/etc/ssh/ssh_host_* file and run ssh-keygen -A (-f <root>);
#      - cached network state: dhclient, NetworkManager and systemd-networkd
#        leases, 70-persistent-net.rules, and NetworkManager profiles bound to
#        a MAC address other than MAC_ADDRESS.
#   4. Disk identifiers. The old UUIDs are the UUID= sources of the /, /boot
#      and swap entries of <root>/etc/fstab. Without --disk-ids the script only
#      prints which references (fstab, crypttab, GRUB, kernel cmdline, BLS
#      entries, initramfs resume) would change. With --disk-ids:
#      - live: the device is found with blkid -U <old>; ext2/3/4 get
#        tune2fs -U <new>, swap gets swaplabel -U (or mkswap -U) after
#        swapoff. Only when that succeeded are the references rewritten, in
#        the same run, so fstab never names a UUID that no device has. Root
#        filesystems with metadata_csum may refuse tune2fs -U while mounted;
#        the script then leaves that UUID and its references alone.
#      - offline (--root): the references are rewritten and the script prints
#        the tune2fs/swaplabel commands the caller must run on the unmounted
#        devices before the guest boots.
#      PARTUUID and the GPT disk GUID are never changed here.
#   5. <root>/etc/glint/applied records what was applied: one key=value line
#      per identity.env key (the key in lowercase; hostname is the one
#      applied), then disk_ids=applied|pending and applied_at=<UTC time>.
#
# A second run finds nothing to do, says so and writes nothing (not even the
# log). Changes are appended, timestamped, to <root>/var/log/glint-identifiers.log.
#
# Symlinks with --root: a symlink inside the guest root may point anywhere on
# the host (an absolute target means the host's path, not the guest's), so
# before changing anything the script checks every path it would write,
# create or delete: no component below <root> may be a symlink (walked one
# component at a time with [ -L ], no external tool), and a file it would
# write must not be a symlink itself. If any path fails, it names each one
# and exits 1 with nothing changed (--dry-run too). A symlink that is only
# deleted (old SSH key, lease, udev rule) is unlinked, never followed; the
# /var/lib/dbus/machine-id symlink is handled as in step 1. Live (root /),
# the guest's own symlinks are trusted.
#
# Exit status: 0 done (or nothing to do), 1 failure, refusal or a bad
# identity.env, 2 bad usage.

set -eu
LC_ALL=C
export LC_ALL
umask 022

# The keys of identity.env, in order, each with its format (see above).
# src/guest/identity-env.ts has the same list; a unit test compares them.
ENV_FORMATS='VM_NAME:name HOSTNAME:name VM_UUID:uuid MACHINE_ID:machine-id
MAC_ADDRESS:mac DISK_UUID:uuid PARTITION_UUID:uuid FILESYSTEM_UUID:uuid
BOOT_UUID:uuid SWAP_UUID:uuid DMI_UUID:uuid SMBIOS_UUID:uuid
CPU_SERIAL:cpu-serial MOTHERBOARD_SERIAL:mb-serial BIOS_UUID:uuid
VM_GENERATION_ID:uuid GENERATION:generation'

PROG=glint-set-identifiers
# 1 during the silent first pass that only checks the paths (see "run the steps").
CHECKING=0

say() {
  [ "$CHECKING" -eq 0 ] || return 0
  printf '%s: %s\n' "$PROG" "$*"
}

warn() {
  [ "$CHECKING" -eq 0 ] || return 0
  printf '%s: warning: %s\n' "$PROG" "$*" >&2
}

die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: set_identifiers.sh [--env FILE] [--dry-run] [--root DIR]
                          [--hostname-from name|machine-id] [--disk-ids] [--no-ssh-keys]
Applies the identity Glint issued for this VM, read from identity.env next to
this script (or --env FILE). See the header of this script.
EOF
}

usage_error() {
  printf '%s: %s\n' "$PROG" "$*" >&2
  usage >&2
  exit 2
}

# --- options ----------------------------------------------------------------
DRY_RUN=0
ROOT_ARG=/
DISK_IDS=0
SSH_KEYS=1
HOSTNAME_FROM=
case $0 in
  */*) ENV_FILE=${0%/*}/identity.env ;;
  *) ENV_FILE=./identity.env ;;
esac
while [ $# -gt 0 ]; do
  case $1 in
    -n | --dry-run) DRY_RUN=1 ;;
    --root)
      [ $# -ge 2 ] || usage_error "--root needs a directory"
      ROOT_ARG=$2
      shift
      ;;
    --root=*) ROOT_ARG=${1#--root=} ;;
    --env)
      [ $# -ge 2 ] || usage_error "--env needs a file"
      ENV_FILE=$2
      shift
      ;;
    --env=*) ENV_FILE=${1#--env=} ;;
    --hostname-from)
      [ $# -ge 2 ] || usage_error "--hostname-from needs name or machine-id"
      HOSTNAME_FROM=$2
      shift
      ;;
    --hostname-from=*) HOSTNAME_FROM=${1#--hostname-from=} ;;
    --disk-ids) DISK_IDS=1 ;;
    --no-ssh-keys) SSH_KEYS=0 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) usage_error "unknown option: $1" ;;
  esac
  shift
done
case $HOSTNAME_FROM in
  '' | name | machine-id) ;;
  *) usage_error "--hostname-from must be name or machine-id, not '$HOSTNAME_FROM'" ;;
esac
[ -n "$ENV_FILE" ] || usage_error "--env needs a file"

# Fail early and clearly rather than half-way through.
for tool in awk cat chmod cmp cp cut date dirname grep head mkdir mktemp mv rm sed tail tr wc; do
  command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found in PATH"
done

# --- identity.env -------------------------------------------------------------
# check_value KEY VALUE FORMAT: die unless VALUE has FORMAT (see the header).
check_value() {
  case $3 in
    name)
      case $2 in
        -* | *[!a-z0-9-]*) die "$ENV_FILE: $1 is not a host name (1-63 of a-z, 0-9, -)" ;;
      esac
      [ "${#2}" -le 63 ] || die "$ENV_FILE: $1 is longer than 63 characters"
      ;;
    uuid)
      case $2 in
        [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-4[0-9a-f][0-9a-f][0-9a-f]-[89ab][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
        *) die "$ENV_FILE: $1 is not a lowercase version-4 UUID" ;;
      esac
      ;;
    machine-id)
      case $2 in
        [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]4[0-9a-f][0-9a-f][0-9a-f][89ab][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
        *) die "$ENV_FILE: $1 is not a machine-id (32 lowercase hex digits, a version-4 UUID without dashes)" ;;
      esac
      ;;
    mac)
      case $2 in
        [0-9a-f][26ae]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) ;;
        *) die "$ENV_FILE: $1 is not a lowercase, locally administered unicast MAC address" ;;
      esac
      ;;
    cpu-serial | mb-serial)
      if [ "$3" = cpu-serial ]; then cv_prefix=CPU; else cv_prefix=MB; fi
      cv_rest=${2#"$cv_prefix"}
      case $2 in
        "$cv_prefix"*) ;;
        *) die "$ENV_FILE: $1 does not start with $cv_prefix" ;;
      esac
      case $cv_rest in
        '' | *[!0-9A-Z]*) die "$ENV_FILE: $1 is not $cv_prefix and 4-32 of 0-9, A-Z" ;;
      esac
      if [ "${#cv_rest}" -lt 4 ] || [ "${#cv_rest}" -gt 32 ]; then
        die "$ENV_FILE: $1 is not $cv_prefix and 4-32 of 0-9, A-Z"
      fi
      ;;
    generation)
      case $2 in
        0* | *[!0-9]*) die "$ENV_FILE: $1 is not a number from 1" ;;
      esac
      [ "${#2}" -le 10 ] || die "$ENV_FILE: $1 has more than 10 digits"
      ;;
    *) die "internal error: unknown format $3 for $1" ;;
  esac
}

# Read ENV_FILE into ENV_LINES (KEY=value lines in file order), refusing
# anything but comment lines and KEY=value lines with a known KEY, a value of
# [A-Za-z0-9:._-] in that key's format, and each key exactly once.
[ -f "$ENV_FILE" ] || die "identity file $ENV_FILE not found (Glint writes identity.env next to this script; or pass --env FILE)"
[ -r "$ENV_FILE" ] || die "cannot read $ENV_FILE"
# Printable ASCII and newlines only (no NUL, CR, tab or UTF-8), ending in a newline.
ENV_BAD=$(tr -d '\012\040-\176' <"$ENV_FILE" | wc -c | tr -d ' ')
[ "$ENV_BAD" = 0 ] || die "$ENV_FILE: has $ENV_BAD byte(s) other than printable ASCII and newlines"
[ -z "$(tail -c 1 "$ENV_FILE")" ] || die "$ENV_FILE: the last line does not end with a newline"
# ENV_FORMATS on one line, each entry between spaces.
ENV_LIST=" $(printf '%s' "$ENV_FORMATS" | tr '\n' ' ') "
ENV_LINES=
ENV_SEEN=' '
env_line_no=0
while IFS= read -r env_line; do
  env_line_no=$((env_line_no + 1))
  case $env_line in
    '#'*) continue ;;
    [A-Z]*=*) ;;
    *) die "$ENV_FILE line $env_line_no: not a KEY=value line or a # comment" ;;
  esac
  env_key=${env_line%%=*}
  env_val=${env_line#*=}
  case $env_key in
    *[!A-Z0-9_]*) die "$ENV_FILE line $env_line_no: not a KEY=value line or a # comment" ;;
  esac
  case $ENV_LIST in
    *" $env_key:"*) ;;
    *) die "$ENV_FILE line $env_line_no: unknown key $env_key" ;;
  esac
  case $ENV_SEEN in
    *" $env_key "*) die "$ENV_FILE line $env_line_no: $env_key appears twice" ;;
  esac
  case $env_val in
    '' | *[!A-Za-z0-9:._-]*) die "$ENV_FILE line $env_line_no: the value of $env_key is empty or has characters other than A-Z a-z 0-9 : . _ -" ;;
  esac
  env_format=${ENV_LIST#*" $env_key:"}
  env_format=${env_format%%[!a-z-]*}
  check_value "$env_key" "$env_val" "$env_format"
  ENV_SEEN="$ENV_SEEN$env_key "
  ENV_LINES="$ENV_LINES$env_key=$env_val
"
done <"$ENV_FILE"
for env_pair in $ENV_FORMATS; do
  case $ENV_SEEN in
    *" ${env_pair%%:*} "*) ;;
    *) die "$ENV_FILE: ${env_pair%%:*} is missing" ;;
  esac
done

# env_get KEY: the value of KEY in identity.env (KEY is one of ENV_FORMATS).
env_get() {
  printf '%s' "$ENV_LINES" | sed -n "s/^$1=//p"
}

VM_NAME=$(env_get VM_NAME)
MACHINE_ID=$(env_get MACHINE_ID)
MAC_ADDRESS=$(env_get MAC_ADDRESS)
VM_UUID=$(env_get VM_UUID)
GENERATION=$(env_get GENERATION)
FILESYSTEM_UUID=$(env_get FILESYSTEM_UUID)
BOOT_UUID=$(env_get BOOT_UUID)
SWAP_UUID=$(env_get SWAP_UUID)
PARTITION_UUID=$(env_get PARTITION_UUID)
DISK_UUID=$(env_get DISK_UUID)
SHORT_HOSTNAME=glint-$(printf '%s\n' "$MACHINE_ID" | cut -c1-8)
NEW_HOSTNAME=$(env_get HOSTNAME)
case $NEW_HOSTNAME in
  "$VM_NAME" | "$SHORT_HOSTNAME") ;;
  *) die "$ENV_FILE: HOSTNAME must be VM_NAME ($VM_NAME) or $SHORT_HOSTNAME" ;;
esac
case $HOSTNAME_FROM in
  name) NEW_HOSTNAME=$VM_NAME ;;
  machine-id) NEW_HOSTNAME=$SHORT_HOSTNAME ;;
esac

[ -n "$ROOT_ARG" ] || usage_error "--root needs a directory"
[ -d "$ROOT_ARG" ] || die "root $ROOT_ARG is not a directory"
ROOT_DIR=$(cd -- "$ROOT_ARG" && pwd -P) || die "cannot enter $ROOT_ARG"
if [ "$ROOT_DIR" = / ]; then
  LIVE=1
  R=
else
  LIVE=0
  R=$ROOT_DIR
fi

if [ "$LIVE" -eq 1 ] && [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" != 0 ]; then
  die "run me as root (or use --dry-run, or --root DIR for a mounted guest)"
fi

IF_TMP=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/glint-ids.XXXXXX") || die "cannot create a temp directory"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  rm -rf "$WORK"
  if [ -n "$IF_TMP" ]; then rm -f "$IF_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

CHANGES=0
LOG_FILE=$R/var/log/glint-identifiers.log
RECORD=$R/etc/glint/applied
LOG_STARTED=0

log_line() {
  [ "$DRY_RUN" -eq 0 ] || return 0
  safe_path file "$LOG_FILE" || return 0
  if [ -L "$LOG_FILE" ]; then
    warn "$LOG_FILE is a symlink; not logging"
    return 0
  fi
  mkdir -p "$R/var/log"
  if [ "$LOG_STARTED" -eq 0 ]; then
    LOG_STARTED=1
    printf '%s --- vm=%s generation=%s vm_uuid=%s root=%s\n' \
      "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$VM_NAME" "$GENERATION" "$VM_UUID" "${ROOT_DIR}" >>"$LOG_FILE"
  fi
  printf '%s %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*" >>"$LOG_FILE"
}

# did MESSAGE: one change made (or, with --dry-run, one that would be made).
did() {
  CHANGES=$((CHANGES + 1))
  if [ "$DRY_RUN" -eq 1 ]; then
    say "would $*"
  else
    say "$*"
    log_line "$*"
  fi
}

REFUSED=0

# path_ok KIND PATH: true when the script may change PATH. With --root (not
# live), PATH must lie below $R and no component of it below $R may be a
# symlink: a symlink there could lead anywhere on the host. KIND says what
# happens to PATH itself: dir (created or entered) and file (written) must not
# be symlinks either; unlink (deleted with rm -f) may be one, as rm removes
# the link and never its target. Components that do not exist yet are fine
# (mkdir -p creates real directories). Pure sh: [ -L ] on each component, no
# readlink -f or realpath. When false, PATH_WHY says why. Always true live.
path_ok() {
  PATH_WHY=
  [ "$LIVE" -eq 0 ] || return 0
  case $2 in
    "$R"/*) ;;
    *)
      PATH_WHY="it is not inside the guest root"
      return 1
      ;;
  esac
  sp_rest=${2#"$R"/}
  sp_cur=$R
  while [ -n "$sp_rest" ]; do
    sp_comp=${sp_rest%%/*}
    case $sp_rest in
      */*) sp_rest=${sp_rest#*/} ;;
      *) sp_rest= ;;
    esac
    case $sp_comp in
      '') continue ;;
      . | ..)
        PATH_WHY="it has a '$sp_comp' component"
        return 1
        ;;
    esac
    sp_cur=$sp_cur/$sp_comp
    if [ -L "$sp_cur" ]; then
      if [ -z "$sp_rest" ] && [ "$1" = unlink ]; then return 0; fi
      sp_to=$(readlink "$sp_cur" 2>/dev/null || true)
      if [ "$sp_cur" = "$2" ]; then
        PATH_WHY="it is a symlink${sp_to:+ to $sp_to}; not writing through it"
      else
        PATH_WHY="${sp_cur#"$R"} is a symlink${sp_to:+ to $sp_to}; it may lead outside the guest root"
      fi
      return 1
    fi
    # Nothing below a missing component exists: mkdir -p makes real directories.
    [ -e "$sp_cur" ] || return 0
  done
  return 0
}

# safe_path KIND PATH: path_ok, or refuse PATH. Every write, mkdir and delete
# goes through it. While checking (CHECKING=1) a refusal is reported and
# counted and the status is 1 (call it as `safe_path ... || ...`); in the real
# pass a refusal is fatal (the check pass found none, so the tree changed).
safe_path() {
  path_ok "$1" "$2" && return 0
  REFUSED=$((REFUSED + 1))
  printf '%s: error: refusing to change %s: %s\n' "$PROG" "${2#"$R"}" "$PATH_WHY" >&2
  [ "$CHECKING" -eq 1 ] || die "a path changed since it was checked; stopping here"
  return 1
}

# install_file SRC DEST MODE WHAT [link]: make DEST's content equal SRC's.
# Atomic (temp file in DEST's directory + rename); keeps DEST's owner and mode
# when DEST is a regular file, else uses MODE. DEST is never written through:
# with --root a symlink at DEST (or on the way to it) is refused by safe_path
# unless the fifth argument is "link" (the caller removed it first); live, a
# symlink at DEST is replaced. Sets INSTALLED to 1 when DEST changed (or would
# change), to 0 when it already had that content or was refused while
# checking. Never call it in a condition or with || (that would switch off
# set -e inside it).
install_file() {
  INSTALLED=0
  if [ "${5:-}" = link ]; then
    safe_path unlink "$2" || return 0
  else
    safe_path file "$2" || return 0
  fi
  if [ -f "$2" ] && [ ! -L "$2" ] && cmp -s "$1" "$2"; then
    return 0
  fi
  INSTALLED=1
  did "$4"
  [ "$DRY_RUN" -eq 0 ] || return 0
  if_dir=$(dirname "$2")
  mkdir -p "$if_dir"
  IF_TMP=$if_dir/.glint-tmp.$$
  rm -f "$IF_TMP"
  if [ -f "$2" ] && [ ! -L "$2" ]; then
    cp -p "$2" "$IF_TMP"
    if [ -w "$IF_TMP" ]; then
      cat "$1" >"$IF_TMP"
    else
      chmod u+w "$IF_TMP"
      cat "$1" >"$IF_TMP"
      chmod u-w "$IF_TMP"
    fi
  else
    cat "$1" >"$IF_TMP"
    chmod "$3" "$IF_TMP"
  fi
  # mv onto a symlink to a directory would move the file into it.
  if [ -L "$2" ]; then rm -f "$2"; fi
  mv -f "$IF_TMP" "$2"
  IF_TMP=
}

# record_get KEY: value of KEY in the applied record ("" if none, or if it
# is reached through a symlink).
record_get() {
  if [ -f "$RECORD" ] && [ ! -L "$RECORD" ] && path_ok file "$RECORD"; then
    sed -n "s/^$1=//p" "$RECORD" | head -n 1
  fi
}

# remove_path FILE WHAT: delete one file (or dangling/any symlink: the link,
# never its target).
remove_path() {
  safe_path unlink "$1" || return 0
  did "remove $2 ${1#"$R"}"
  [ "$DRY_RUN" -eq 1 ] || rm -f "$1"
}

# remove_matching DIR PATTERN WHAT: delete files in DIR whose name matches PATTERN.
remove_matching() {
  [ -d "$1" ] || return 0
  safe_path dir "$1" || return 0
  for rm_f in "$1"/*; do
    [ -f "$rm_f" ] || [ -L "$rm_f" ] || continue
    # shellcheck disable=SC2254 # PATTERN is a glob on purpose
    case ${rm_f##*/} in
      $2) remove_path "$rm_f" "$3" ;;
    esac
  done
}

if [ "$DRY_RUN" -eq 1 ]; then MODE_NOTE=' (dry run)'; else MODE_NOTE=; fi
say "VM $VM_NAME, identity generation $GENERATION, root ${ROOT_DIR}${MODE_NOTE}"

# --- identity record ---------------------------------------------------------
# The record's keys are identity.env's keys in lowercase (hostname being the
# one applied), then disk_ids and applied_at.

# record_key KEY: the record key of identity.env key KEY.
record_key() {
  printf '%s\n' "$1" | tr '[:upper:]' '[:lower:]'
}

# The identity changed unless the record has it: every identity value it
# holds must be the one in identity.env (a key an older Glint did not record
# does not count; the hostname alone is no new identity).
IDENTITY_CHANGED=0
if [ -z "$(record_get vm_uuid)" ] || [ -z "$(record_get generation)" ]; then
  IDENTITY_CHANGED=1
else
  for env_pair in $ENV_FORMATS; do
    ic_key=${env_pair%%:*}
    [ "$ic_key" != HOSTNAME ] || continue
    ic_old=$(record_get "$(record_key "$ic_key")")
    if [ -n "$ic_old" ] && [ "$ic_old" != "$(env_get "$ic_key")" ]; then
      IDENTITY_CHANGED=1
    fi
  done
fi
if [ "$IDENTITY_CHANGED" -eq 1 ]; then
  if [ -f "$RECORD" ]; then
    say "identity changed since the last run (was generation $(record_get generation) of vm_uuid $(record_get vm_uuid))"
  else
    say "no identity applied yet"
  fi
fi

# --- helpers for step 4, disk identifiers ------------------------------------
FSTAB=$R/etc/fstab

# fstab_uuid MOUNTPOINT|swap: the UUID= source of that fstab entry ("" if none).
fstab_uuid() {
  [ -f "$FSTAB" ] || return 0
  fu_v=$(awk -v mp="$1" '
    $1 !~ /^#/ && NF >= 3 {
      if ((mp == "swap" && $3 == "swap") || (mp != "swap" && $2 == mp)) {
        if ($1 ~ /^UUID=/) { v = substr($1, 6); gsub(/"/, "", v); print v; exit }
      }
    }' "$FSTAB")
  fu_v=$(printf '%s\n' "$fu_v" | tr 'A-F' 'a-f')
  case $fu_v in
    [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])
      printf '%s\n' "$fu_v"
      ;;
    '') ;;
    *) warn "ignoring unusual UUID '$fu_v' of the $1 entry in /etc/fstab" ;;
  esac
}

# for_each_reference COMMAND [ARG...]: run COMMAND ARG... FILE for every file
# that may name a filesystem UUID (regular files only, never symlinks).
for_each_reference() {
  for rf in "$R/etc/fstab" "$R/etc/crypttab" "$R/boot/grub/grub.cfg" "$R/boot/grub2/grub.cfg" \
    "$R/etc/default/grub" "$R/etc/kernel/cmdline" "$R/etc/initramfs-tools/conf.d/resume" \
    "$R"/boot/loader/entries/*.conf; do
    if [ -f "$rf" ] && [ ! -L "$rf" ]; then "$@" "$rf"; fi
  done
}

# note_reference OLD OLD_UPPER FILE: add FILE to REFS if it names OLD.
# shellcheck disable=SC2317 # called through for_each_reference
note_reference() {
  if grep -F -q -e "$1" -e "$2" "$3"; then REFS="$REFS ${3#"$R"}"; fi
}

# rewrite_reference KIND OLD OLD_UPPER NEW FILE: replace OLD with NEW in FILE.
# shellcheck disable=SC2317 # called through for_each_reference
rewrite_reference() {
  grep -F -q -e "$2" -e "$3" "$5" || return 0
  sed -e "s/$2/$4/g" -e "s/$3/$4/g" "$5" >"$WORK/ref"
  install_file "$WORK/ref" "$5" 0644 "replace $1 UUID $2 with $4 in ${5#"$R"}"
}

# change_device KIND OLD NEW: live only; give the filesystem/swap UUID NEW.
change_device() {
  command -v blkid >/dev/null 2>&1 || {
    warn "blkid not found; cannot find the device with UUID $2"
    return 1
  }
  cd_dev=$(blkid -U "$2" 2>/dev/null || true)
  if [ -z "$cd_dev" ]; then
    warn "no device has UUID $2; leaving its references alone"
    return 1
  fi
  cd_type=$(blkid -o value -s TYPE "$cd_dev" 2>/dev/null || true)
  case $cd_type in
    ext2 | ext3 | ext4)
      command -v tune2fs >/dev/null 2>&1 || {
        warn "tune2fs not found; cannot change the UUID of $cd_dev"
        return 1
      }
      did "run tune2fs -U $3 $cd_dev ($1 filesystem)"
      [ "$DRY_RUN" -eq 1 ] && return 0
      tune2fs -U "$3" "$cd_dev" || {
        warn "tune2fs -U failed on $cd_dev (mounted with metadata_csum?); change it from a rescue system"
        return 1
      }
      ;;
    swap)
      cd_active=0
      if grep -q "^${cd_dev}[[:space:]]" /proc/swaps 2>/dev/null; then cd_active=1; fi
      if command -v swaplabel >/dev/null 2>&1; then cd_tool=swaplabel; else cd_tool=mkswap; fi
      did "run $cd_tool -U $3 $cd_dev (swap)"
      [ "$DRY_RUN" -eq 1 ] && return 0
      if [ "$cd_active" -eq 1 ]; then swapoff "$cd_dev" || return 1; fi
      if [ "$cd_tool" = swaplabel ]; then
        swaplabel -U "$3" "$cd_dev" || return 1
      else
        mkswap -U "$3" "$cd_dev" >/dev/null || return 1
      fi
      if [ "$cd_active" -eq 1 ]; then swapon "$cd_dev" || warn "swapon $cd_dev failed"; fi
      ;;
    *)
      warn "cannot change the UUID of $cd_dev (type ${cd_type:-unknown}) while it is in use"
      return 1
      ;;
  esac
  return 0
}

# --- 1. machine-id -----------------------------------------------------------
step_machine_id() {
  printf '%s\n' "$MACHINE_ID" >"$WORK/machine-id"
  install_file "$WORK/machine-id" "$R/etc/machine-id" 0444 "set /etc/machine-id to $MACHINE_ID"
  MACHINE_ID_CHANGED=$INSTALLED

  DBUS_ID=$R/var/lib/dbus/machine-id
  if [ -L "$DBUS_ID" ] && ! command -v readlink >/dev/null 2>&1; then
    warn "readlink not found; leaving the symlink /var/lib/dbus/machine-id alone"
  elif [ -L "$DBUS_ID" ]; then
    dbus_target=$(readlink "$DBUS_ID" 2>/dev/null || true)
    case $dbus_target in
      /etc/machine-id | */etc/machine-id) ;;
      *)
        # Removed first, never written through (mv onto a symlink to a
        # directory would move the file into that directory).
        if [ "$DRY_RUN" -eq 0 ] && safe_path unlink "$DBUS_ID"; then rm -f "$DBUS_ID"; fi
        install_file "$WORK/machine-id" "$DBUS_ID" 0444 \
          "replace /var/lib/dbus/machine-id (symlink to $dbus_target) with $MACHINE_ID" link
        ;;
    esac
  elif [ -e "$DBUS_ID" ]; then
    install_file "$WORK/machine-id" "$DBUS_ID" 0444 "set /var/lib/dbus/machine-id to $MACHINE_ID"
  fi
}

# --- 2. hostname ---------------------------------------------------------------
step_hostname() {
  printf '%s\n' "$NEW_HOSTNAME" >"$WORK/hostname"
  install_file "$WORK/hostname" "$R/etc/hostname" 0644 "set /etc/hostname to $NEW_HOSTNAME"

  HOSTS=$R/etc/hosts
  if [ -f "$HOSTS" ]; then
    if grep -q '^[[:space:]]*127\.0\.1\.1[[:space:]]' "$HOSTS"; then
      # Replace the first 127.0.1.1 line, drop any further ones.
      awk -v h="$NEW_HOSTNAME" '
        /^[ \t]*127\.0\.1\.1[ \t]/ { if (!done) { print "127.0.1.1\t" h; done = 1 }; next }
        { print }' "$HOSTS" >"$WORK/hosts"
    elif grep -q '^[[:space:]]*127\.0\.0\.1[[:space:]]' "$HOSTS"; then
      awk -v h="$NEW_HOSTNAME" '
        { print }
        /^[ \t]*127\.0\.0\.1[ \t]/ && !done { print "127.0.1.1\t" h; done = 1 }' "$HOSTS" >"$WORK/hosts"
    else
      cat "$HOSTS" >"$WORK/hosts"
      printf '127.0.1.1\t%s\n' "$NEW_HOSTNAME" >>"$WORK/hosts"
    fi
  else
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$NEW_HOSTNAME" >"$WORK/hosts"
  fi
  install_file "$WORK/hosts" "$HOSTS" 0644 "set the 127.0.1.1 line of /etc/hosts to $NEW_HOSTNAME"

  if [ "$LIVE" -eq 1 ] && [ "$(uname -n)" != "$NEW_HOSTNAME" ]; then
    if [ -d /run/systemd/system ] && command -v hostnamectl >/dev/null 2>&1; then
      did "run hostnamectl set-hostname $NEW_HOSTNAME"
      [ "$DRY_RUN" -eq 1 ] || hostnamectl set-hostname "$NEW_HOSTNAME"
    elif command -v hostname >/dev/null 2>&1; then
      did "run hostname $NEW_HOSTNAME"
      [ "$DRY_RUN" -eq 1 ] || hostname "$NEW_HOSTNAME"
    else
      warn "neither hostnamectl nor hostname found; the running hostname changes at the next boot"
    fi
  fi
}

# --- 3. once per identity: SSH host keys and cached network state -------------
# replace_ssh_keys: step 3's new SSH host keys in $SSH_DIR (checked by the caller).
replace_ssh_keys() {
  command -v ssh-keygen >/dev/null 2>&1 || die "ssh-keygen not found; SSH host keys left unchanged"
  # Generate the new keys first (into a staging root), so that a failing
  # ssh-keygen never leaves the guest without host keys.
  staged=0
  if [ "$DRY_RUN" -eq 0 ]; then
    mkdir -p "$WORK/sshroot/etc/ssh"
    # ssh-keygen -A exits 0 even when it could not save a key: count them.
    ssh-keygen -A -f "$WORK/sshroot" >/dev/null 2>&1 || true
    for key in "$WORK"/sshroot/etc/ssh/ssh_host_*_key; do
      if [ -f "$key" ] && [ -f "$key.pub" ]; then staged=$((staged + 1)); fi
    done
    if [ "$staged" -eq 0 ] && [ "$LIVE" -eq 0 ]; then
      die "ssh-keygen -A -f created no host keys (OpenSSH too old?); SSH host keys left unchanged"
    fi
  fi
  for key in "$SSH_DIR"/ssh_host_*; do
    if [ -e "$key" ] || [ -L "$key" ]; then remove_path "$key" "old SSH host key"; fi
  done
  did "install new SSH host keys (ssh-keygen -A)"
  if [ "$DRY_RUN" -eq 0 ]; then
    mkdir -p "$SSH_DIR"
    if [ "$staged" -gt 0 ]; then
      # cp, not mv: new files get the directory's SELinux context.
      for key in "$WORK"/sshroot/etc/ssh/ssh_host_*; do
        safe_path file "$SSH_DIR/${key##*/}" || continue
        cp "$key" "$SSH_DIR/${key##*/}"
      done
    else
      # Live, with an ssh-keygen that has no -A -f: generate in place.
      ssh-keygen -A >/dev/null
    fi
    new_keys=0
    for key in "$SSH_DIR"/ssh_host_*_key; do
      if [ -f "$key" ] && [ -f "$key.pub" ]; then new_keys=$((new_keys + 1)); fi
    done
    [ "$new_keys" -gt 0 ] || die "no SSH host keys in ${SSH_DIR} after ssh-keygen -A"
    log_line "SSH host keys: $new_keys new key pairs"
  fi
}

step_identity_state() {
  [ "$IDENTITY_CHANGED" -eq 1 ] || return 0
  SSH_DIR=$R/etc/ssh
  have_keys=0
  for key in "$SSH_DIR"/ssh_host_*; do
    if [ -e "$key" ] || [ -L "$key" ]; then have_keys=1; fi
  done
  if [ "$SSH_KEYS" -eq 0 ]; then
    [ "$have_keys" -eq 0 ] || say "leaving SSH host keys alone (--no-ssh-keys)"
  elif [ "$have_keys" -eq 1 ] || [ -e "$R/usr/sbin/sshd" ] || [ -L "$R/usr/sbin/sshd" ]; then
    if safe_path dir "$SSH_DIR"; then replace_ssh_keys; fi
  fi

  remove_matching "$R/var/lib/dhcp" '*.leases' "dhclient lease"
  remove_matching "$R/var/lib/dhclient" '*' "dhclient lease"
  remove_matching "$R/var/lib/NetworkManager" '*.lease' "NetworkManager lease"
  remove_matching "$R/var/lib/systemd/network" '*' "systemd-networkd state"
  remove_matching "$R/run/systemd/netif/leases" '*' "systemd-networkd lease"
  if [ -e "$R/etc/udev/rules.d/70-persistent-net.rules" ] || [ -L "$R/etc/udev/rules.d/70-persistent-net.rules" ]; then
    remove_path "$R/etc/udev/rules.d/70-persistent-net.rules" "persistent-net udev rules"
  fi

  NM_DIR=$R/etc/NetworkManager/system-connections
  if [ -d "$NM_DIR" ] && safe_path dir "$NM_DIR"; then
    for profile in "$NM_DIR"/*; do
      if [ ! -f "$profile" ] || [ -L "$profile" ]; then continue; fi
      bound=$(sed -n 's/^[[:space:]]*mac-address[[:space:]]*=[[:space:]]*//p' "$profile" | head -n 1 |
        tr 'A-F' 'a-f' | sed 's/[;[:space:]]*$//')
      if [ -n "$bound" ] && [ "$bound" != "$MAC_ADDRESS" ]; then
        remove_path "$profile" "NetworkManager profile bound to $bound:"
      fi
    done
  fi
}

# --- 4. disk identifiers -------------------------------------------------------
step_disk_ids() {
  DISK_PENDING=0
  OFFLINE_TODO=
  for triple in "root / $FILESYSTEM_UUID" "boot /boot $BOOT_UUID" "swap swap $SWAP_UUID"; do
    # shellcheck disable=SC2086 # split the triple into its three words
    set -- $triple
    kind=$1
    old=$(fstab_uuid "$2")
    new=$3
    if [ -z "$old" ] || [ "$old" = "$new" ]; then continue; fi
    old_uc=$(printf '%s\n' "$old" | tr 'a-f' 'A-F')
    REFS=
    for_each_reference note_reference "$old" "$old_uc"
    if [ "$DISK_IDS" -eq 0 ]; then
      DISK_PENDING=$((DISK_PENDING + 1))
      say "disk ids: $kind filesystem UUID $old -> $new would change in:${REFS:- (no references)} (not changed; rerun with --disk-ids)"
      continue
    fi
    if [ "$LIVE" -eq 1 ]; then
      if ! change_device "$kind" "$old" "$new"; then
        DISK_PENDING=$((DISK_PENDING + 1))
        continue
      fi
    else
      OFFLINE_TODO="$OFFLINE_TODO $kind:$old:$new"
    fi
    for_each_reference rewrite_reference "$kind" "$old" "$old_uc" "$new"
  done
  if [ -n "$OFFLINE_TODO" ]; then
    say "offline root: the filesystems still carry their old UUIDs. Before the guest boots, on the unmounted devices run:"
    for t in $OFFLINE_TODO; do
      t_kind=${t%%:*}
      t_rest=${t#*:}
      t_old=${t_rest%%:*}
      t_new=${t_rest#*:}
      if [ "$t_kind" = swap ]; then
        say "  swaplabel -U $t_new <device with UUID $t_old>"
      else
        say "  tune2fs -U $t_new <device with UUID $t_old>   ($t_kind filesystem)"
      fi
    done
  fi
  if [ "$DISK_PENDING" -gt 0 ] && [ "$DISK_IDS" -eq 0 ]; then
    say "disk ids: $DISK_PENDING filesystem UUID(s) left unchanged; PARTUUID and disk GUID ($PARTITION_UUID, $DISK_UUID) are never changed by this script"
  fi
  if [ "$DISK_PENDING" -gt 0 ]; then DISK_STATE=pending; else DISK_STATE=applied; fi
}

# --- 5. record -----------------------------------------------------------------
step_record() {
  {
    printf '# Written by glint set_identifiers; do not edit.\n'
    for env_pair in $ENV_FORMATS; do
      sr_key=${env_pair%%:*}
      if [ "$sr_key" = HOSTNAME ]; then sr_val=$NEW_HOSTNAME; else sr_val=$(env_get "$sr_key"); fi
      printf '%s=%s\n' "$(record_key "$sr_key")" "$sr_val"
    done
    printf 'disk_ids=%s\n' "$DISK_STATE"
  } >"$WORK/record"
  OLD_RECORD_BODY=
  if [ -f "$RECORD" ] && [ ! -L "$RECORD" ] && path_ok file "$RECORD"; then
    OLD_RECORD_BODY=$(grep -v '^applied_at=' "$RECORD" || true)
  fi
  if [ "$(cat "$WORK/record")" != "$OLD_RECORD_BODY" ]; then
    printf 'applied_at=%s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" >>"$WORK/record"
    install_file "$WORK/record" "$RECORD" 0644 "record generation $GENERATION in /etc/glint/applied"
  fi
}

# --- run the steps -------------------------------------------------------------
apply_steps() {
  CHANGES=0
  step_machine_id
  step_hostname
  step_identity_state
  step_disk_ids
  step_record
}

# With --root, a silent first pass (as --dry-run) checks every path the
# steps would write, create or delete; any refusal stops the run before
# anything changed.
if [ "$LIVE" -eq 0 ]; then
  CHECKING=1
  CHECK_SAVED_DRY_RUN=$DRY_RUN
  DRY_RUN=1
  apply_steps
  # Every change is logged: the log must be safe too.
  if [ "$CHANGES" -gt 0 ]; then safe_path file "$LOG_FILE" || :; fi
  DRY_RUN=$CHECK_SAVED_DRY_RUN
  CHECKING=0
  if [ "$REFUSED" -gt 0 ]; then
    die "$REFUSED path(s) under $ROOT_DIR lead through symlinks; nothing was changed"
  fi
fi
apply_steps

# --- summary -------------------------------------------------------------------
if [ "$CHANGES" -eq 0 ]; then
  say "nothing to do: generation $GENERATION of $VM_UUID is already applied"
elif [ "$DRY_RUN" -eq 1 ]; then
  say "dry run: $CHANGES change(s) would be made; nothing was changed"
else
  sync
  say "done: $CHANGES change(s); log: ${LOG_FILE}"
  if [ "$LIVE" -eq 1 ] && [ "$MACHINE_ID_CHANGED" -eq 1 ]; then
    : >/run/glint-reboot-required 2>/dev/null
    say "the machine-id changed: reboot so that every service picks it up"
  fi
fi
exit 0
