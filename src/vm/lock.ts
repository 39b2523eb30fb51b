/**
 * Per-VM and store-wide locks that survive crashes.
 *
 * A lock is a small JSON file created atomically with `link()` (so it never
 * exists half-written) that names its owner's pid and process start time.
 * A lock whose owner is gone (or whose pid was reused by another process) is
 * stale and is taken over; the takeover itself is serialised by a short-lived
 * guard (`<lock>.takeover`, made the same way and naming its owner) so that
 * two processes can never both take the same lock. A guard whose owner is
 * gone is removed at once; an unreadable one (or an older Glint's guard
 * directory) expires after 10 s.
 */
import { randomBytes } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BusyError } from "../errors.js";
import { makeDirectory, readFileIfExists } from "./fsutil.js";
import { lockTakeoverPath, lockTempPath } from "./layout.js";
import { systemError } from "./syserror.js";

interface Owner {
  pid: number;
  start: string;
  token: string;
  purpose: string;
  since: string;
}

/** The start time of a process (field 22 of /proc/PID/stat), or "" if unknown. */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? "";
  } catch {
    return "";
  }
}

function ownerAlive(owner: Owner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const start = processStart(owner.pid);
  // A different start time means the pid was reused: the owner is gone.
  return start === "" || owner.start === "" || start === owner.start;
}

async function readOwner(
  file: string,
): Promise<{ raw: string; owner: Owner | undefined } | undefined> {
  const raw = await readFileIfExists(file);
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as Owner;
    return { raw, owner: typeof parsed.pid === "number" ? parsed : undefined };
  } catch {
    return { raw, owner: undefined };
  }
}

/** A held lock. Call `release()` exactly once (or use {@link withLock}). */
export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Shown to other processes that find the lock held, e.g. "glint run". */
  purpose: string;
  /** How long to wait for a live holder; 0 = fail at once with BusyError. */
  waitMs?: number;
  /** The VM this lock protects, named in the BusyError. */
  vm?: string;
}

const GUARD_STALE_MS = 10_000;

/**
 * Create `file` atomically holding `body` (write a temp file, then link() it:
 * the file never exists half-written). Returns false if `file` already
 * exists. The temp file never outlives the call, also on a full disk.
 */
async function createWithContent(file: string, body: string, token: string): Promise<boolean> {
  const tmp = lockTempPath(file, token);
  try {
    await fs.writeFile(tmp, body, { flag: "wx" });
    await fs.link(tmp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw systemError(error, file, "writing");
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** Whether the takeover guard `guard` was left by a process that is gone. */
async function guardIsStale(guard: string): Promise<{ stale: boolean; raw?: string }> {
  const st = await fs.lstat(guard).catch(() => undefined);
  if (st === undefined) return { stale: false };
  if (st.isFile()) {
    const cur = await readOwner(guard).catch(() => undefined);
    if (cur?.owner) return { stale: !ownerAlive(cur.owner), raw: cur.raw };
  }
  // No readable owner (an older Glint's guard directory, or a torn write): expires by age.
  return { stale: Date.now() - st.mtimeMs > GUARD_STALE_MS };
}

/** Returns false if another process holds the takeover guard (the caller should back off). */
async function takeOverStale(file: string, staleRaw: string, owner: Owner): Promise<boolean> {
  const guard = lockTakeoverPath(file);
  if (!(await createWithContent(guard, JSON.stringify(owner), `${owner.token}-guard`))) {
    // Someone else is taking it over; a guard left by a killed process is removed.
    const judged = await guardIsStale(guard);
    if (!judged.stale) return false;
    // Remove only the guard judged stale (a fresh one has another owner record).
    const now =
      judged.raw === undefined ? undefined : await readFileIfExists(guard).catch(() => undefined);
    if (judged.raw === undefined || now === judged.raw) {
      await fs.rm(guard, { recursive: true, force: true });
    }
    return true;
  }
  try {
    const now = await readOwner(file);
    // Only remove the exact stale file we judged; a fresh lock has another token.
    if (now && now.raw === staleRaw) await fs.rm(file, { force: true });
  } finally {
    await fs.rm(guard, { recursive: true, force: true });
  }
  return true;
}

/** The live process holding lock `file`, if any (a stale or missing lock has none). */
export async function lockHolder(
  file: string,
): Promise<{ pid: number; purpose: string } | undefined> {
  const cur = await readOwner(file);
  if (!cur?.owner || !ownerAlive(cur.owner)) return undefined;
  return { pid: cur.owner.pid, purpose: cur.owner.purpose };
}

/** Acquire the lock file `file`, creating its directory if needed. */
export async function acquireLock(file: string, options: AcquireOptions): Promise<Lock> {
  await makeDirectory(path.dirname(file));
  const owner: Owner = {
    pid: process.pid,
    start: processStart(process.pid),
    token: randomBytes(8).toString("hex"),
    purpose: options.purpose,
    since: new Date().toISOString(),
  };
  const body = JSON.stringify(owner);
  const deadline = Date.now() + (options.waitMs ?? 0);
  let delay = 2;
  for (;;) {
    if (await createWithContent(file, body, owner.token)) {
      return {
        file,
        release: async () => {
          const cur = await readOwner(file);
          if (cur?.owner?.token === owner.token) await fs.rm(file, { force: true });
        },
      };
    }
    const cur = await readOwner(file);
    if (cur === undefined) continue; // released meanwhile
    if (cur.owner === undefined || !ownerAlive(cur.owner)) {
      if (await takeOverStale(file, cur.raw, owner)) continue;
      // Another process is taking it over: back off instead of spinning.
      await sleep(delay + Math.random() * delay);
      delay = Math.min(delay * 2, 50);
      continue;
    }
    if (Date.now() >= deadline) {
      const holder = { pid: cur.owner.pid, purpose: cur.owner.purpose };
      throw new BusyError(
        options.vm === undefined
          ? `${file} is locked by process ${holder.pid} (${holder.purpose})`
          : `VM "${options.vm}" is busy: process ${holder.pid} holds it for "${holder.purpose}"`,
        { ...holder, ...(options.vm === undefined ? {} : { vm: options.vm }) },
      );
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** Run `fn` while holding the lock; always releases it. */
export async function withLock<T>(
  file: string,
  options: AcquireOptions,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireLock(file, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
