/**
 * The result of `glint verify`: for each VM, one row per identity value,
 * expected (from identifiers.json) against seen (from QEMU, the guest agent
 * or the disk image), marked ok, mismatch or unavailable (with why).
 */

export type CheckStatus = "ok" | "mismatch" | "unavailable";

/** Where a seen value came from. */
export type CheckSource = "qmp" | "guest-agent" | "image";

export interface Check {
  readonly field: string;
  readonly expected: string;
  readonly seen: string | null;
  readonly status: CheckStatus;
  readonly source: CheckSource;
  readonly why?: string;
}

export interface VmVerification {
  readonly vm: string;
  /** Every available value matches. */
  readonly ok: boolean;
  readonly state: "running" | "stopped";
  readonly checks: readonly Check[];
  /** Values the guest holds that no two VMs may share (for `--all`). */
  readonly guestValues: GuestValues;
}

/** Per-instance values read from inside a guest (or its disk). */
export interface GuestValues {
  machineId?: string;
  /** `SHA256:…` fingerprints of the SSH host keys. */
  sshHostKeys?: readonly string[];
}

/** A value that two or more VMs share inside their guests. */
export interface SharedValue {
  readonly field: "machine-id" | "ssh-host-key";
  readonly value: string;
  readonly vms: readonly string[];
}

/** A row comparing `seen` with `expected` (case-insensitively for hex identifiers). */
export function compare(
  field: string,
  expected: string,
  seen: string | undefined,
  source: CheckSource,
  options: { caseInsensitive?: boolean } = {},
): Check {
  if (seen === undefined) {
    return { field, expected, seen: null, status: "unavailable", source, why: "not reported" };
  }
  const norm = (v: string) => (options.caseInsensitive ? v.trim().toLowerCase() : v.trim());
  const status = norm(seen) === norm(expected) ? "ok" : "mismatch";
  return { field, expected, seen, status, source };
}

/** A row whose value could not be read, and why. */
export function unavailable(
  field: string,
  expected: string,
  source: CheckSource,
  why: string,
): Check {
  return { field, expected, seen: null, status: "unavailable", source, why };
}

/** A row expecting `expected` among several seen values (e.g. the MAC among the guest's NICs). */
export function among(
  field: string,
  expected: string,
  seen: readonly string[],
  source: CheckSource,
): Check {
  const found = seen.some((v) => v.toLowerCase() === expected.toLowerCase());
  return {
    field,
    expected,
    seen: seen.length === 0 ? "(none)" : seen.join(" "),
    status: found ? "ok" : "mismatch",
    source,
  };
}

/** A VM's verification from its rows: ok when no available row mismatches. */
export function verification(
  vm: string,
  state: "running" | "stopped",
  checks: readonly Check[],
  guestValues: GuestValues,
): VmVerification {
  return { vm, ok: checks.every((c) => c.status !== "mismatch"), state, checks, guestValues };
}

/** Values that two or more of `results` share inside their guests. */
export function sharedValues(results: readonly VmVerification[]): SharedValue[] {
  const byValue = new Map<
    string,
    { field: SharedValue["field"]; value: string; vms: Set<string> }
  >();
  const add = (field: SharedValue["field"], value: string, vm: string) => {
    const key = `${field}\0${value}`;
    const entry = byValue.get(key) ?? { field, value, vms: new Set<string>() };
    entry.vms.add(vm);
    byValue.set(key, entry);
  };
  for (const r of results) {
    if (r.guestValues.machineId) add("machine-id", r.guestValues.machineId, r.vm);
    for (const fp of r.guestValues.sshHostKeys ?? []) add("ssh-host-key", fp, r.vm);
  }
  return [...byValue.values()]
    .filter((e) => e.vms.size > 1)
    .map((e) => ({ field: e.field, value: e.value, vms: [...e.vms].sort() }));
}
