/** In-process SSH host keys are read back by ssh-keygen: same public key, same fingerprint. */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateOpenSshKey } from "../../src/sysprep/openssh-keys.js";
import { fingerprint } from "../../src/sysprep/ssh-keys.js";
import { run } from "../support/disk-read.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
beforeAll(async () => {
  dir = await tempDir("glint-sshkeys-");
});
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe("generateOpenSshKey", () => {
  for (const type of ["ed25519", "ecdsa", "rsa"] as const) {
    it(`${type}: ssh-keygen derives the same public key and fingerprint`, async () => {
      for (let i = 0; i < 3; i++) {
        const k = await generateOpenSshKey(type, "root@test");
        const file = path.join(dir, `${type}-${i}`);
        await fs.writeFile(file, k.privateKey, { mode: 0o600 });
        const derived = (await run("ssh-keygen", ["-y", "-f", file])).stdout.trim();
        const pub = k.publicKey.toString().trim();
        expect(pub.startsWith(derived)).toBe(true);
        expect(pub.endsWith(" root@test")).toBe(true);
        await fs.writeFile(`${file}.pub`, k.publicKey);
        const listed = (await run("ssh-keygen", ["-l", "-f", `${file}.pub`])).stdout.split(" ");
        expect(listed[1]).toBe(fingerprint(pub));
        if (type === "rsa") expect(listed[0]).toBe("3072");
        if (type === "ecdsa") expect(listed[0]).toBe("256");
      }
      const a = await generateOpenSshKey(type, "x");
      const b = await generateOpenSshKey(type, "x");
      expect(a.publicKey.equals(b.publicKey)).toBe(false);
    });
  }
});
