/**
 * What the interactive menu needs from the manager. `UuidManager` satisfies
 * this interface; the menu never reimplements an operation, it only asks,
 * confirms and calls one of these methods.
 */
import type { SystemIdentifiers } from "../../identity/model.js";
import type {
  CreateVmOptions as ManagerCreateVmOptions,
  OperationOptions,
  OperationResult,
} from "../../manager.js";
import type { VmConfig } from "../../vm/config.js";

/** The create options the menu asks for (a subset of the manager's). */
export type CreateVmOptions = Pick<
  ManagerCreateVmOptions,
  "base" | "linkBase" | "overlay" | "diskSize" | "firmware" | "tpm" | "onProgress"
>;

export interface MenuApi {
  readonly home: string;
  listVms(): Promise<string[]>;
  getIdentifiers(vm: string): Promise<SystemIdentifiers>;
  getConfig(vm: string): Promise<VmConfig>;
  createVm(vm: string, options: CreateVmOptions): Promise<OperationResult>;
  regenerateDiskIdentifiers(vm: string, options?: OperationOptions): Promise<OperationResult>;
  regenerateBaseIdentifiers(vm: string, options?: OperationOptions): Promise<OperationResult>;
  nukeAndRegenerateAll(vm: string, options?: OperationOptions): Promise<OperationResult>;
  resetUefiVariables(vm: string): Promise<void>;
  /** Resolves to the new EK fingerprint. */
  resetTpm(vm: string): Promise<string>;
  /** The full QEMU argv, binary name first. */
  qemuCommand(vm: string): Promise<string[]>;
  /** Writes the guest post-install script; returns its path. */
  createPostInstallScript(vm: string): Promise<string>;
}
