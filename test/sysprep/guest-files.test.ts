/** The pure file edits of sysprep: fstab parsing, reference rewriting, hosts, MAC lines. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  hostnameFor,
  mentionsAny,
  parseFstab,
  parseSpec,
  rewriteReferences,
  setHostsLine,
  stripInterfacesHwaddress,
  stripNmMac,
} from "../../src/sysprep/guest-files.js";
import { vfatIdFromUuid } from "../../src/sysprep/vfat.js";

const hex = (n: number) =>
  fc
    .array(fc.constantFrom(..."0123456789abcdef"), { minLength: n, maxLength: n })
    .map((a) => a.join(""));
const uuid = fc.tuple(hex(8), hex(4), hex(4), hex(4), hex(12)).map((p) => p.join("-"));

describe("parseFstab / parseSpec", () => {
  it("reads entries, skips comments, decodes octal escapes", () => {
    const t =
      "# c\nUUID=abc / ext4 defaults 0 1\n\n/dev/vda2\tnone swap sw 0 0\nLABEL=My\\040Data /mnt/my\\040data ext4 x 0 2\n";
    expect(parseFstab(t)).toEqual([
      { spec: "UUID=abc", mountpoint: "/", type: "ext4" },
      { spec: "/dev/vda2", mountpoint: "none", type: "swap" },
      { spec: "LABEL=My Data", mountpoint: "/mnt/my data", type: "ext4" },
    ]);
  });
  it("knows the spec forms", () => {
    expect(parseSpec("UUID=Ab")).toEqual({ by: "uuid", value: "Ab" });
    expect(parseSpec('PARTUUID="x-1"')).toEqual({ by: "partuuid", value: "x-1" });
    expect(parseSpec("/dev/disk/by-uuid/1234-ABCD")).toEqual({ by: "uuid", value: "1234-ABCD" });
    expect(parseSpec("/dev/sda1")).toEqual({ by: "device", value: "/dev/sda1" });
  });
});

describe("rewriteReferences", () => {
  it("replaces whole tokens only, in the occurrence's case", () => {
    const subs = new Map([
      ["5d5d5d5d-1111-4222-8333-444444444444", "0a0a0a0a-bbbb-4ccc-8ddd-eeeeeeeeeeee"],
      ["7A7A-1234", "B00C-0001"],
    ]);
    const r = rewriteReferences(
      "root=UUID=5d5d5d5d-1111-4222-8333-444444444444 X5D5D5D5D-1111-4222-8333-444444444444 UUID=7a7a-1234 7A7A-1234\nsearch 5D5D5D5D-1111-4222-8333-444444444444",
      subs,
    );
    expect(r.count).toBe(4);
    expect(r.text).toBe(
      "root=UUID=0a0a0a0a-bbbb-4ccc-8ddd-eeeeeeeeeeee X5D5D5D5D-1111-4222-8333-444444444444 UUID=b00c-0001 B00C-0001\nsearch 0A0A0A0A-BBBB-4CCC-8DDD-EEEEEEEEEEEE",
    );
  });

  it("property: afterwards no old value is mentioned, every new value is, and nothing else changes", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(uuid, { minLength: 1, maxLength: 4 }),
        fc.array(fc.constantFrom(" ", "\n", "root=UUID=", "resume=", "=", "/", "\t", "x "), {
          maxLength: 12,
        }),
        (olds, glue) => {
          const news = olds.map((o) => `e${o.slice(1)}`);
          const subs = new Map(olds.map((o, i) => [o, news[i] ?? ""]));
          if (news.some((n) => olds.includes(n))) return;
          const text = olds
            .map((o, i) => `${glue[i % Math.max(1, glue.length)] ?? " "}${o}`)
            .join(" ");
          const r = rewriteReferences(text, subs);
          expect(mentionsAny(r.text, olds)).toBe(false);
          for (const n of news) expect(r.text).toContain(n);
          expect(r.count).toBe(olds.length);
          // Reversing the substitution restores the text.
          const back = rewriteReferences(r.text, new Map(olds.map((o, i) => [news[i] ?? "", o])));
          expect(back.text).toBe(text);
        },
      ),
    );
  });

  it("property: a text without the old values is returned unchanged", () => {
    fc.assert(
      fc.property(fc.string(), uuid, uuid, (text, a, b) => {
        fc.pre(!text.toLowerCase().includes(a));
        expect(rewriteReferences(text, new Map([[a, b]]))).toEqual({ text, count: 0 });
      }),
    );
  });
});

describe("hosts, hostname, MAC lines", () => {
  it("sets the 127.0.1.1 line, adding it after 127.0.0.1 when missing", () => {
    expect(setHostsLine("127.0.0.1 localhost\n127.0.1.1 old.example old\n", "new")).toBe(
      "127.0.0.1 localhost\n127.0.1.1\tnew\n",
    );
    expect(setHostsLine("127.0.0.1 localhost\n::1 localhost\n", "new")).toBe(
      "127.0.0.1 localhost\n127.0.1.1\tnew\n::1 localhost\n",
    );
  });
  it("property: exactly one 127.0.1.1 line, naming the host", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.constantFrom(
            "127.0.0.1 localhost",
            "127.0.1.1 a",
            "127.0.1.1\tb c",
            "::1 x",
            "# c",
            "",
          ),
          { maxLength: 8 },
        ),
        (lines) => {
          const out = setHostsLine(lines.join("\n"), "vm-1");
          const hits = out.split("\n").filter((l) => l.startsWith("127.0.1.1"));
          expect(hits).toEqual(["127.0.1.1\tvm-1"]);
        },
      ),
    );
  });
  it("makes valid hostnames from VM names", () => {
    expect(hostnameFor("web_01.prod")).toBe("web-01-prod");
    expect(hostnameFor("---")).toBe("localhost");
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(hostnameFor(s)).toMatch(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/);
      }),
    );
  });
  it("drops MAC lines of NetworkManager keyfiles and interfaces", () => {
    expect(
      stripNmMac("[ethernet]\nmac-address=52:54:00:12:34:56\ncloned-mac-address=x\nmtu=1500\n"),
    ).toEqual({ text: "[ethernet]\nmtu=1500\n", count: 2 });
    expect(
      stripInterfacesHwaddress("iface eth0 inet dhcp\n  hwaddress ether 52:54:00:aa:bb:cc\n"),
    ).toEqual({ text: "iface eth0 inet dhcp\n", count: 1 });
  });
  it("vfat IDs come from the first 8 hex digits", () => {
    expect(vfatIdFromUuid("abcd1234-0000-4000-8000-000000000000")).toBe("ABCD-1234");
  });
});
