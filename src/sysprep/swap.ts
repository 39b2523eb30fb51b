/** Linux swap: the UUID is 16 bytes at offset 1036 of the swap header. */
import { uuidToBytes, writeAt } from "./probe.js";

/** Write `uuid` into the swap header of the partition at byte `start` of `disk`. */
export async function setSwapUuid(disk: string, start: number, uuid: string): Promise<void> {
  await writeAt(disk, start + 1036, uuidToBytes(uuid));
}
