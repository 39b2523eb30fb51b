/** libvirt integration: Glint VMs as libvirt domains, and libvirt domains adopted as Glint VMs. */
export { buildDomain, type DomainInput, type DomainType, domainXml } from "./domain.js";
export { type ImportOptions, type ImportResult, importDomain } from "./import.js";
export {
  chooseDomainType,
  type DaemonOptions,
  type DefineResult,
  defineDomain,
  type ExportOptions,
  exportDomain,
  type SyncResult,
  syncDomain,
} from "./ops.js";
export { patchDomain } from "./patch.js";
export { type DomainFacts, readDomain } from "./read.js";
export { validateDomainXml } from "./validate.js";
