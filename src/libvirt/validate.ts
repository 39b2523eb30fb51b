/** `virt-xml-validate FILE domain` (libvirt-clients): the domain XML against libvirt's schema. */
import { GlintError } from "../errors.js";
import { runTool } from "../host/tools.js";

export async function validateDomainXml(file: string, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    await runTool("virt-xml-validate", [file, "domain"], { env, timeoutMs: 60_000 });
  } catch (error) {
    if (!(error instanceof GlintError) || error.code !== "tool-failed") throw error;
    const cause = error.cause as { stderr?: string; stdout?: string } | undefined;
    const line = `${cause?.stderr ?? ""}\n${cause?.stdout ?? ""}`
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "" && !/fails to validate$/.test(l));
    throw new GlintError(`${file} is not a valid libvirt domain: ${line ?? error.message}`, {
      code: "invalid-file",
      details: { file, reason: "xml" },
    });
  }
}
