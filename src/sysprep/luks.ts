/**
 * LUKS: only the header UUID changes (`cryptsetup luksUUID`, no key needed);
 * what is inside stays untouched.
 */
import { runTool } from "../host/tools.js";

export async function luksSetUuid(
  part: string,
  uuid: string,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  await runTool(
    "cryptsetup",
    ["luksUUID", "--batch-mode", "--disable-locks", "--uuid", uuid, part],
    env === undefined ? {} : { env },
  );
}
