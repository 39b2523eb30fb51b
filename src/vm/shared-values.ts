/**
 * Finds the values that two or more VMs hold, VM by VM, keeping little per
 * value (a large home has over a million): its key, and the first VM's
 * number and field packed into one small integer. `glint doctor` and `glint
 * registry check` use it.
 */
import { EXTRA_MACS, IDENTIFIER_FIELDS, type ValueField } from "../identity/model.js";

const FIELDS: readonly ValueField[] = [...IDENTIFIER_FIELDS, EXTRA_MACS];
const FIELD_NO = new Map(FIELDS.map((f, i) => [f, i]));
const HEX32 = /^[0-9a-f]{32}$/;

/** A value two or more VMs hold: the first holder's field and value, and every holder. */
export interface SharedValue {
  readonly field: ValueField;
  readonly value: string;
  /** Every VM holding it, sorted. */
  readonly vms: readonly string[];
}

/** The value written as its field writes it, rebuilt from its key; undefined when it cannot be. */
function rebuilt(field: ValueField, key: string, dashed: boolean): string {
  const hex = key.slice(-32);
  if (key.length >= 32 && HEX32.test(hex)) {
    return dashed
      ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
      : hex;
  }
  const bare = key.slice(key.indexOf("|") + 1);
  return field === "cpu_serial" || field === "motherboard_serial" ? bare.toUpperCase() : bare;
}

export class SharedValues {
  private readonly vms: string[] = [];
  /** key → (first VM's number · 16 + field number) · 2 + dashed. */
  private readonly first = new Map<string, number>();
  /** First values that their key does not give back as they were written (rare). */
  private readonly odd = new Map<string, string>();
  private readonly shared = new Map<string, { field: ValueField; value: string; vms: string[] }>();

  /** Distinct keys seen. */
  get size(): number {
    return this.first.size;
  }

  /**
   * `vm` holds `value` of `field`, compared by `key`. Add a VM's values
   * together (VMs one after another).
   */
  add(vm: string, field: ValueField, value: string, key: string): void {
    if (this.vms.at(-1) !== vm) this.vms.push(vm);
    const n = this.vms.length - 1;
    const c = key;
    const held = this.first.get(c);
    if (held === undefined) {
      const f = FIELD_NO.get(field) ?? 0;
      const dashed = value.includes("-");
      this.first.set(c, (n * 16 + f) * 2 + (dashed ? 1 : 0));
      if (rebuilt(field, key, dashed) !== value) this.odd.set(c, value);
      return;
    }
    const firstVm = Math.floor(held / 32);
    if (firstVm === n) return;
    const dup = this.shared.get(c);
    if (dup) {
      if (dup.vms.at(-1) !== vm) dup.vms.push(vm);
      return;
    }
    const firstField = FIELDS[Math.floor(held / 2) % 16] ?? "vm_uuid";
    this.shared.set(c, {
      field: firstField,
      value: this.odd.get(c) ?? rebuilt(firstField, key, held % 2 === 1),
      vms: [this.vms[firstVm] ?? "", vm],
    });
  }

  /** Whether two or more VMs hold `key`. */
  isShared(key: string): boolean {
    return this.shared.has(key);
  }

  /** Every value two or more VMs hold, in the order first found shared. */
  result(): SharedValue[] {
    return [...this.shared.values()].map((d) => ({
      field: d.field,
      value: d.value,
      vms: [...new Set(d.vms)].sort(),
    }));
  }
}
