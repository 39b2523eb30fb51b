/** Linux swap: the UUID is 16 bytes at offset 1036 of the swap header. */
import { uuidToBytes, writeAt } from "./probe.js";

export async function setSwapUuid(part: string, uuid: string): Promise<void> {
  await writeAt(part, 1036, uuidToBytes(uuid));
}
