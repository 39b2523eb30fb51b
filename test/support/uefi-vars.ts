/**
 * The live variables of an OVMF NVRAM file (a firmware volume holding an
 * authenticated variable store, as edk2's VariableFormat.h lays it out), so
 * that a test can see which Secure Boot keys (PK, KEK, db, dbx) are enrolled.
 */
import { promises as fs } from "node:fs";
import { guidFromBytes } from "../../src/sysprep/gpt.js";

/** EFI_GLOBAL_VARIABLE: PK, KEK, SecureBoot, Boot####… */
export const EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/** EFI_IMAGE_SECURITY_DATABASE_GUID: db, dbx. */
export const EFI_IMAGE_SECURITY_DATABASE = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

export interface UefiVariable {
  readonly guid: string;
  readonly name: string;
  readonly attributes: number;
  readonly size: number;
}

const AUTH_VARIABLE_STORE = "aaf32c78-947b-439a-a180-2e144ec37792";
const VARIABLE_STORE = "ddcf3616-3275-4164-98b6-fe85707ffe7d";
const VAR_ADDED = 0x3f;
const VAR_IN_DELETED_TRANSITION = 0xfe;

/** The EFI_GUID at `at` (first three fields little-endian, as GPT's). */
function guidAt(b: Buffer, at: number): string {
  return guidFromBytes(b.subarray(at, at + 16));
}

/** Every variable that is set (added and not deleted) in the NVRAM file `file`. */
export async function uefiVariables(file: string): Promise<UefiVariable[]> {
  const b = await fs.readFile(file);
  if (b.toString("latin1", 40, 44) !== "_FVH") throw new Error(`${file}: no firmware volume`);
  const store = b.readUInt16LE(48); // FV HeaderLength
  const kind = guidAt(b, store);
  if (kind !== AUTH_VARIABLE_STORE && kind !== VARIABLE_STORE) {
    throw new Error(`${file}: unknown variable store ${kind}`);
  }
  const auth = kind === AUTH_VARIABLE_STORE;
  const end = store + b.readUInt32LE(store + 16);
  const out: UefiVariable[] = [];
  let at = store + 28;
  while (at + 32 <= end && b.readUInt16LE(at) === 0x55aa) {
    const state = b[at + 2] ?? 0;
    const attributes = b.readUInt32LE(at + 4);
    // Authenticated header: MonotonicCount (8), TimeStamp (16), PubKeyIndex (4) before the sizes.
    const sizes = auth ? at + 36 : at + 8;
    const nameSize = b.readUInt32LE(sizes);
    const dataSize = b.readUInt32LE(sizes + 4);
    const guid = guidAt(b, sizes + 8);
    const nameAt = sizes + 24;
    const name = b.toString("utf16le", nameAt, nameAt + nameSize).replace(/\0+$/, "");
    if (state === VAR_ADDED || state === (VAR_ADDED & VAR_IN_DELETED_TRANSITION)) {
      out.push({ guid, name, attributes, size: dataSize });
    }
    at = (nameAt + nameSize + dataSize + 3) & ~3;
  }
  return out;
}

/** The Secure Boot key variables set in `file`, as `PK`, `KEK`, `db`, `dbx`. */
export async function enrolledKeys(file: string): Promise<string[]> {
  return (await uefiVariables(file))
    .filter(
      (v) =>
        v.size > 0 &&
        ((v.guid === EFI_GLOBAL_VARIABLE && (v.name === "PK" || v.name === "KEK")) ||
          (v.guid === EFI_IMAGE_SECURITY_DATABASE && (v.name === "db" || v.name === "dbx"))),
    )
    .map((v) => v.name);
}
