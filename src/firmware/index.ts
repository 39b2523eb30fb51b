/** Firmware for Glint VMs: OVMF (UEFI) NVRAM and the swtpm TPM 2.0 sidecar. */
export {
  DEFAULT_FALLBACK_DIRS,
  defaultDescriptorDirs,
  type FirmwareDescriptor,
  firmwareDescriptorSchema,
  globMatch,
  installUefiVars,
  prepareUefiReset,
  type ResolvedFirmware,
  type ResolveFirmwareOptions,
  resetUefiVariables,
  resolveFirmware,
  type UefiKind,
} from "./ovmf.js";
export {
  createTpmState,
  prepareTpmReset,
  readEkFingerprint,
  TPM2_PERMALL,
  type TpmSetupOptions,
} from "./swtpm.js";
export { type StartSwtpmOptions, type SwtpmProcess, startSwtpm } from "./swtpm-sidecar.js";
