/** XFS: the UUID through xfs_admin (xfs_db), which also handles v5 (CRC) filesystems. */
import { runTool } from "../host/tools.js";

export async function setXfsUuid(
  part: string,
  uuid: string,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  await runTool("xfs_admin", ["-U", uuid, part], env === undefined ? {} : { env });
}
