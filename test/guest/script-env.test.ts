/**
 * The guest script reads identity.env as strictly as Glint's parser: every
 * broken or hostile file is refused under dash, bash and busybox sh with a
 * one-line error, exit status 1, nothing changed and nothing executed.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { renderIdentityEnv } from "../../src/guest/index.js";
import type { SystemIdentifiers } from "../../src/identity/model.js";
import {
  BAD_ENVS,
  ENV_PWNED,
  exists,
  makeFakeGuest,
  runScriptUnder,
  SHELLS,
  TIMEOUT,
  VM,
  writeGuestFiles,
} from "../support/guest-root.js";
import { freshIds } from "../support/identity.js";
import { type Entry, snapshotTree } from "../support/snapshot.js";
import { tempDir } from "../support/tmp.js";

describe.each(SHELLS)("set_identifiers.sh under %s refuses a bad identity.env", (_label, shell) => {
  let work: string;
  let root: string;
  let tmp: string;
  let script: string;
  let ids: SystemIdentifiers;
  let snap: Record<string, Entry>;

  beforeAll(async () => {
    work = await tempDir("glint-script-env-");
    root = path.join(work, "root");
    tmp = path.join(work, "tmp");
    await fs.mkdir(root);
    await fs.mkdir(tmp);
    await makeFakeGuest(root, { sshKeys: false, sshd: true });
    ids = freshIds();
    script = await writeGuestFiles(path.join(work, "shared"), ids);
    snap = await snapshotTree(root);
  }, TIMEOUT);

  afterAll(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  test.each(Object.entries(BAD_ENVS))(
    "%s",
    async (_what, mutate) => {
      const good = renderIdentityEnv(VM, ids);
      const bad = mutate(good, ids);
      expect(bad).not.toBe(good);
      await fs.writeFile(path.join(work, "shared", "identity.env"), bad);
      for (const args of [[], ["--dry-run"]]) {
        const r = await runScriptUnder(shell, script, { root, tmp, work }, args);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr).toMatch(/^glint-set-identifiers: error: .*identity\.env/);
        expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      }
      expect(await snapshotTree(root)).toEqual(snap);
      expect(await exists(path.join(work, ENV_PWNED))).toBe(false);
      expect(await exists(path.join(root, ENV_PWNED))).toBe(false);
    },
    TIMEOUT,
  );

  test(
    "the valid identity.env is accepted (so the refusals are about the file)",
    async () => {
      await fs.writeFile(path.join(work, "shared", "identity.env"), renderIdentityEnv(VM, ids));
      const r = await runScriptUnder(shell, script, { root, tmp, work }, ["--dry-run"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`would set /etc/machine-id to ${ids.machine_id}`);
      expect(await snapshotTree(root)).toEqual(snap);
    },
    TIMEOUT,
  );
});
