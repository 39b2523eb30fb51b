/**
 * Test doubles for the menu: scripted prompts (each answer checked against
 * what the prompt offered) and an in-memory MenuApi that records its calls.
 */
import { Separator } from "@inquirer/prompts";
import type { CreateVmOptions, MenuApi } from "../../src/cli/menu/api.js";
import type { MenuDeps } from "../../src/cli/menu/menu.js";
import type { Spinner } from "../../src/cli/menu/spinner.js";
import type { SystemIdentifiers } from "../../src/identity/model.js";
import { POLICIES, type Policy } from "../../src/identity/policies.js";
import { applyPolicy } from "../../src/identity/regenerate.js";
import type { OperationOptions, OperationResult } from "../../src/manager.js";
import { type VmConfig, type VmConfigInput, vmConfigSchema } from "../../src/vm/config.js";

type Kind = "select" | "input" | "confirm";

export type Step =
  | { kind: "select"; answer: string | ((offered: string[]) => string) }
  /** Every attempt but the last must be rejected by `validate`; the last must pass. */
  | { kind: "input"; attempts: string[] }
  | { kind: "confirm"; answer: boolean }
  | { kind: Kind; throws: "ExitPromptError" | "AbortPromptError" };

export const sel = (answer: string | ((offered: string[]) => string)): Step => ({
  kind: "select",
  answer,
});
export const typed = (...attempts: string[]): Step => ({ kind: "input", attempts });
export const yes: Step = { kind: "confirm", answer: true };
export const no: Step = { kind: "confirm", answer: false };
/** Ctrl-C at a prompt of this kind. */
export const ctrlC = (kind: Kind): Step => ({ kind, throws: "ExitPromptError" });
/** Esc at a prompt of this kind. */
export const esc = (kind: Kind): Step => ({ kind, throws: "AbortPromptError" });

export function promptError(name: "ExitPromptError" | "AbortPromptError"): Error {
  const error = new Error(name === "ExitPromptError" ? "User force closed the prompt" : "aborted");
  error.name = name;
  return error;
}

export interface PromptRecord {
  kind: Kind;
  message: string;
  /** select: the values offered (separators and disabled choices left out). */
  offered?: string[];
  default?: unknown;
  /** input: what `validate` said about each rejected attempt. */
  rejections?: string[];
}

interface Choice {
  value: unknown;
  disabled?: unknown;
}

/** Scripted prompt functions. `problems` lists every way the script went wrong. */
export function scriptedPrompts(steps: Step[]) {
  const queue = [...steps];
  const log: PromptRecord[] = [];
  const problems: string[] = [];

  const next = (kind: Kind, message: string): Step => {
    const step = queue.shift();
    if (!step) {
      problems.push(`script ran out at ${kind} "${message}"`);
      throw promptError("ExitPromptError");
    }
    if (step.kind !== kind) {
      problems.push(`expected a ${step.kind} prompt but got ${kind} "${message}"`);
      throw promptError("ExitPromptError");
    }
    if ("throws" in step) throw promptError(step.throws);
    return step;
  };

  const select = async (config: {
    message: string;
    choices: readonly unknown[];
    default?: unknown;
  }) => {
    const offered = config.choices
      .filter((c) => !Separator.isSeparator(c))
      .filter((c) => !(typeof c === "object" && c !== null && (c as Choice).disabled))
      .map((c) => String(typeof c === "object" && c !== null ? (c as Choice).value : c));
    log.push({ kind: "select", message: config.message, offered, default: config.default });
    const step = next("select", config.message) as Extract<Step, { kind: "select" }>;
    const answer = typeof step.answer === "function" ? step.answer(offered) : step.answer;
    if (!offered.includes(answer)) {
      problems.push(`"${answer}" is not offered by "${config.message}" (${offered.join(", ")})`);
      throw promptError("ExitPromptError");
    }
    return answer;
  };

  const input = async (config: {
    message: string;
    validate?: (value: string) => boolean | string | Promise<boolean | string>;
  }) => {
    const record: PromptRecord = { kind: "input", message: config.message, rejections: [] };
    log.push(record);
    const step = next("input", config.message) as Extract<Step, { kind: "input" }>;
    for (const [i, attempt] of step.attempts.entries()) {
      const verdict = config.validate ? await config.validate(attempt) : true;
      const last = i === step.attempts.length - 1;
      if (verdict === true) {
        if (!last) problems.push(`"${attempt}" was accepted by "${config.message}"`);
        return attempt;
      }
      record.rejections?.push(String(verdict));
      if (last) {
        problems.push(`"${attempt}" was rejected by "${config.message}": ${verdict}`);
        throw promptError("ExitPromptError");
      }
    }
    throw new Error("typed() needs at least one attempt");
  };

  const confirm = async (config: { message: string; default?: boolean }) => {
    log.push({ kind: "confirm", message: config.message, default: config.default });
    const step = next("confirm", config.message) as Extract<Step, { kind: "confirm" }>;
    return step.answer;
  };

  return {
    select: select as unknown as MenuDeps["select"],
    input: input as unknown as MenuDeps["input"],
    confirm: confirm as unknown as MenuDeps["confirm"],
    log,
    problems,
    remaining: () => queue.length,
  };
}

export interface SpinnerRecord {
  text: string;
  updates: string[];
  stopped: boolean;
}

/** MenuDeps with scripted prompts, captured output and recorded spinners. */
export function fakeDeps(steps: Step[], options: { color?: boolean } = {}) {
  const prompts = scriptedPrompts(steps);
  const printed: string[] = [];
  const spinners: SpinnerRecord[] = [];
  const deps: MenuDeps = {
    select: prompts.select,
    input: prompts.input,
    confirm: prompts.confirm,
    print: (text) => printed.push(text),
    color: options.color ?? false,
    spinner: (text): Spinner => {
      const record: SpinnerRecord = { text, updates: [], stopped: false };
      spinners.push(record);
      return {
        update: (t) => record.updates.push(t),
        stop: () => {
          record.stopped = true;
        },
      };
    },
  };
  return { deps, prompts, printed, output: () => printed.join("\n"), spinners };
}

export interface Call {
  method: keyof MenuApi;
  vm?: string;
  options?: unknown;
}

/** Methods that change something. */
export const MUTATING: readonly (keyof MenuApi)[] = [
  "createVm",
  "regenerateDiskIdentifiers",
  "regenerateBaseIdentifiers",
  "nukeAndRegenerateAll",
  "resetUefiVariables",
  "resetTpm",
  "createPostInstallScript",
];

interface FakeVm {
  ids: SystemIdentifiers;
  config: VmConfig;
}

/** An in-memory MenuApi; `fail[method]` makes that method throw. */
export class FakeApi implements MenuApi {
  readonly home = "/fake/home";
  readonly calls: Call[] = [];
  readonly vms = new Map<string, FakeVm>();
  readonly fail: Partial<Record<keyof MenuApi, Error>> = {};
  /** VMs whose identifiers and config cannot be read. */
  readonly broken = new Map<string, Error>();
  qemuArgv: string[] = ["qemu-system-x86_64", "-name", "vm1"];
  private readonly used = new Set<string>();

  add(name: string, config: VmConfigInput = {}): SystemIdentifiers {
    const ids = applyPolicy(undefined, POLICIES.fresh, this.used);
    this.remember(ids);
    this.vms.set(name, { ids, config: vmConfigSchema.parse(config) });
    return ids;
  }

  mutations(): Call[] {
    return this.calls.filter((c) => MUTATING.includes(c.method));
  }

  private remember(ids: SystemIdentifiers): void {
    for (const v of Object.values(ids)) if (typeof v === "string") this.used.add(v);
  }

  private record(method: keyof MenuApi, vm?: string, options?: unknown): void {
    this.calls.push({ method, vm, options });
    const error = this.fail[method];
    if (error) throw error;
  }

  private get(vm: string): FakeVm {
    const error = this.broken.get(vm);
    if (error) throw error;
    const found = this.vms.get(vm);
    if (!found) throw new Error(`FakeApi: no VM "${vm}"`);
    return found;
  }

  private run(vm: string, policy: Policy, options?: OperationOptions): OperationResult {
    const found = this.get(vm);
    options?.onProgress?.(`${policy.name}: writing identifiers`);
    const identifiers = applyPolicy(found.ids, policy, this.used);
    this.remember(identifiers);
    const previous = found.ids;
    found.ids = identifiers;
    return {
      vm,
      policy: policy.name,
      previous,
      identifiers,
      archived: `${this.home}/${vm}/history/2026-01-01T00-00-00.000Z_${policy.name}_identifiers-abcdef.json`,
      steps: Object.fromEntries(policy.reset.map((s) => [s, "done"])),
    };
  }

  async listVms(): Promise<string[]> {
    this.record("listVms");
    return [...this.vms.keys()].sort();
  }
  async getIdentifiers(vm: string): Promise<SystemIdentifiers> {
    this.record("getIdentifiers", vm);
    return this.get(vm).ids;
  }
  async getConfig(vm: string): Promise<VmConfig> {
    this.record("getConfig", vm);
    return this.get(vm).config;
  }
  async createVm(vm: string, options: CreateVmOptions): Promise<OperationResult> {
    this.record("createVm", vm, options);
    options.onProgress?.("creating disks");
    const { onProgress: _, ...rest } = options;
    const identifiers = this.add(vm, {
      firmware: rest.firmware,
      tpm: rest.tpm,
      overlay: rest.overlay ?? false,
    });
    return {
      vm,
      policy: "fresh",
      previous: undefined,
      identifiers,
      archived: undefined,
      steps: { "guest-files": "done" },
    };
  }
  async regenerateDiskIdentifiers(vm: string, options?: OperationOptions) {
    this.record("regenerateDiskIdentifiers", vm, options);
    return this.run(vm, POLICIES.disk, options);
  }
  async regenerateBaseIdentifiers(vm: string, options?: OperationOptions) {
    this.record("regenerateBaseIdentifiers", vm, options);
    return this.run(vm, POLICIES.base, options);
  }
  async nukeAndRegenerateAll(vm: string, options?: OperationOptions) {
    this.record("nukeAndRegenerateAll", vm, options);
    return this.run(vm, POLICIES.nuke, options);
  }
  async resetUefiVariables(vm: string): Promise<void> {
    this.record("resetUefiVariables", vm);
  }
  async resetTpm(vm: string): Promise<string> {
    this.record("resetTpm", vm);
    return `sha256:${"ab".repeat(32)}`;
  }
  async qemuCommand(vm: string): Promise<string[]> {
    this.record("qemuCommand", vm);
    return this.qemuArgv;
  }
  async createPostInstallScript(vm: string): Promise<string> {
    this.record("createPostInstallScript", vm);
    return `${this.home}/${vm}/shared/set_identifiers.sh`;
  }
}
