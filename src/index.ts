/**
 * Glint as a library: the seed's UUIDManager API and the pieces it is made of.
 *
 *     import { getUuidManager, SystemIdentifiers } from "glint";
 */
export {
  type AuditChange,
  type AuditEntry,
  type AuditRecord,
  type AuditValue,
  appendAudit,
  auditedChange,
  canonicalJson,
  currentActor,
  HomeAudit,
  newEntry,
  readAudit,
  type VerifyResult,
  verifyAudit,
  type Witness,
} from "./audit/index.js";
export {
  BusyError,
  ERROR_CODES,
  type ErrorCode,
  type ErrorDetails,
  GlintError,
  MissingToolError,
  UsageError,
} from "./errors.js";
export { buildConfigDrive, renderPostInstallScript } from "./guest/index.js";
export {
  cryptoRandom,
  drawIdentifier,
  IDENTIFIER_FIELDS,
  type IdentifierField,
  POLICIES,
  type Policy,
  type PolicyName,
  parseIdentifiers,
  policiesTableMarkdown,
  type RandomSource,
  type ResetStep,
  SystemIdentifiers,
} from "./identity/index.js";
export {
  type CreateVmOptions,
  getUuidManager,
  type OperationOptions,
  type OperationResult,
  UuidManager,
  type UuidManagerOptions,
} from "./manager.js";
export {
  applyIdentifiersToQemuCommand,
  buildVmArgv,
  IDENTITY_MAPPING,
  mappingTableMarkdown,
} from "./qemu/index.js";
export {
  formatReport,
  type ImageInspection,
  inspectImage,
  SYSPREP_MAPPING,
  type SysprepInput,
  type SysprepOptions,
  type SysprepReport,
  sysprepImage,
  sysprepMappingMarkdown,
} from "./sysprep/index.js";
export {
  parseTemplate,
  type Template,
  type TemplateEntry,
  templateSchema,
} from "./templates/index.js";
export type { VmConfig } from "./vm/config.js";
export { resolveHome, type VmPaths, vmPaths } from "./vm/layout.js";
