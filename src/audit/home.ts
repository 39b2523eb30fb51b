/**
 * The audit log of one home as an object: who writes (the actor), where
 * records also go (the registry's sink), how long to wait for the lock.
 * `UuidManager.audit` is one; the library's other state changes (template
 * changes, backup, restore) record themselves through it.
 */
import { type AuditedOptions, auditedChange, recoverIntents, type Witness } from "./intent.js";
import {
  type AuditSink,
  appendAudit,
  appendAuditMany,
  readAudit,
  type VerifyResult,
  verifyAudit,
} from "./log.js";
import {
  type AuditActor,
  type AuditChange,
  type AuditEntry,
  type AuditRecord,
  newEntry,
} from "./record.js";

export interface HomeAuditOptions {
  readonly actor: AuditActor;
  /** Where records also go (the PostgreSQL registry), opened on first use. */
  readonly sink: () => Promise<AuditSink | undefined>;
  readonly waitMs: number;
  readonly notify: (message: string) => void;
}

type Changes = Readonly<Record<string, AuditChange>>;

export class HomeAudit {
  constructor(
    readonly home: string,
    private readonly options: HomeAuditOptions,
  ) {}

  private async appendOptions(withSink: boolean): Promise<AuditedOptions> {
    return {
      waitMs: this.options.waitMs,
      notify: this.options.notify,
      sink: withSink ? await this.options.sink().catch(() => undefined) : undefined,
    };
  }

  /** A new entry by this process for `operation` on `vm` (null: the home itself). */
  entry(vm: string | null, operation: string, changes: Changes): AuditEntry {
    return newEntry(this.options.actor, vm, operation, changes);
  }

  /**
   * Run `change` as an audited change (see intent.ts): its record is
   * appended once `witness` shows the change happened, also after a crash.
   */
  async change<T>(
    vm: string | null,
    operation: string,
    changes: Changes,
    witness: Witness,
    change: () => Promise<T>,
  ): Promise<T> {
    const entry = this.entry(vm, operation, changes);
    return auditedChange(this.home, entry, witness, change, await this.appendOptions(true));
  }

  /** Append one record now (for a change that is durable already, or a backup). */
  async append(vm: string | null, operation: string, changes: Changes): Promise<AuditRecord> {
    const entry = this.entry(vm, operation, changes);
    return appendAudit(this.home, entry, await this.appendOptions(true));
  }

  /** Append one record per item now, with one write and one fsync (a bulk create's). */
  async appendMany(
    items: readonly { vm: string | null; operation: string; changes: Changes }[],
  ): Promise<AuditRecord[]> {
    const entries = items.map((i) => this.entry(i.vm, i.operation, i.changes));
    return appendAuditMany(this.home, entries, await this.appendOptions(true));
  }

  /** Record the interrupted changes whose witness shows they happened. */
  async recover(): Promise<AuditRecord[]> {
    return recoverIntents(this.home, await this.appendOptions(true));
  }

  /** Every record, oldest first (interrupted changes are recorded first). */
  async records(): Promise<AuditRecord[]> {
    await this.recover();
    return readAudit(this.home);
  }

  /** Check the chain (reads only). */
  verify(): Promise<VerifyResult> {
    return verifyAudit(this.home);
  }
}
