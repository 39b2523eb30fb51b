import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import {
  escapeOptionValue,
  formatOptionList,
  joinArgv,
  type OptionItem,
  optionHead,
  parseOptionList,
  splitArgv,
} from "../../src/qemu/options.js";

describe("escapeOptionValue", () => {
  it("doubles every comma and nothing else", () => {
    expect(escapeOptionValue("/srv/a,b,,c")).toBe("/srv/a,,b,,,,c");
    expect(escapeOptionValue("plain=value")).toBe("plain=value");
    fc.assert(
      fc.property(fc.string(), (s) => {
        const e = escapeOptionValue(s);
        expect(e.length).toBe(s.length + (s.match(/,/g)?.length ?? 0));
        expect(e.replaceAll(",,", ",")).toBe(s);
      }),
    );
  });
});

describe("parseOptionList", () => {
  it("splits key=value items and bare items, honouring ,, escapes", () => {
    expect(parseOptionList("virtio-blk-pci,drive=d0,serial=X")).toEqual([
      { key: null, value: "virtio-blk-pci" },
      { key: "drive", value: "d0" },
      { key: "serial", value: "X" },
    ]);
    expect(parseOptionList("if=none,file=/tmp/a,,b/c,,,,d.qcow2,format=qcow2")).toEqual([
      { key: "if", value: "none" },
      { key: "file", value: "/tmp/a,b/c,,d.qcow2" },
      { key: "format", value: "qcow2" },
    ]);
    expect(parseOptionList("type=11,value=io.systemd.credential:system.machine_id=ab")).toEqual([
      { key: "type", value: "11" },
      { key: "value", value: "io.systemd.credential:system.machine_id=ab" },
    ]);
    // A comma before any '=' makes the item bare; the escaped comma stays in the value.
    expect(parseOptionList("a,,b=c")).toEqual([{ key: null, value: "a,b=c" }]);
    expect(parseOptionList("a,,,b")).toEqual([
      { key: null, value: "a," },
      { key: null, value: "b" },
    ]);
    expect(parseOptionList("")).toEqual([]);
    expect(parseOptionList("user,")).toEqual([{ key: null, value: "user" }]);
    expect(parseOptionList("k=")).toEqual([{ key: "k", value: "" }]);
  });

  it("optionHead finds the implied first value or the named key", () => {
    expect(optionHead(parseOptionList("e1000,netdev=n"), "driver")).toBe("e1000");
    expect(optionHead(parseOptionList("netdev=n,driver=e1000"), "driver")).toBe("e1000");
    expect(optionHead(parseOptionList("netdev=n"), "driver")).toBeUndefined();
  });
});

/** Items that formatOptionList can write unambiguously. */
const itemArb: fc.Arbitrary<OptionItem> = fc.oneof(
  fc.record({
    key: fc.string({ minLength: 0, maxLength: 8 }).filter((k) => !/[,=]/.test(k)),
    value: fc.string({ maxLength: 12 }),
  }),
  fc.record({
    key: fc.constant(null),
    value: fc
      .string({ minLength: 1, maxLength: 12 })
      .filter((v) => v.search(/[,=]/) < 0 || v[v.search(/[,=]/)] === ","),
  }),
);

describe("formatOptionList", () => {
  it("round-trips through parseOptionList (property)", () => {
    fc.assert(
      fc.property(
        fc
          .array(itemArb, { maxLength: 8 })
          .filter((items) =>
            items.every((it, i) => i === 0 || it.key !== null || !it.value.startsWith(",")),
          ),
        (items) => {
          expect(parseOptionList(formatOptionList(items))).toEqual(items);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("round-trips arbitrary option strings made of ',', '=' and letters (property)", () => {
    const s = fc.string({ unit: fc.constantFrom(",", "=", "a", "b", "/", " "), maxLength: 24 });
    fc.assert(
      fc.property(s, (text) => {
        const items = parseOptionList(text);
        expect(parseOptionList(formatOptionList(items))).toEqual(items);
      }),
      { numRuns: 3000 },
    );
  });

  it("rejects items it cannot write unambiguously", () => {
    expect(() => formatOptionList([{ key: "a,b", value: "x" }])).toThrow(GlintError);
    expect(() => formatOptionList([{ key: "a=b", value: "x" }])).toThrow(GlintError);
    expect(() => formatOptionList([{ key: null, value: "" }])).toThrow(GlintError);
    expect(() => formatOptionList([{ key: null, value: "k=v" }])).toThrow(GlintError);
    expect(() =>
      formatOptionList([
        { key: "k", value: "" },
        { key: null, value: ",x" },
      ]),
    ).toThrow(GlintError);
    // ...but a leading comma is fine in the first item.
    expect(parseOptionList(formatOptionList([{ key: null, value: ",x" }]))).toEqual([
      { key: null, value: ",x" },
    ]);
  });
});

describe("splitArgv", () => {
  it("pairs options with arguments the way QEMU does", () => {
    const argv = [
      "qemu-system-x86_64",
      "-S",
      "-append",
      "-uuid is text here",
      "-m",
      "512",
      "--device",
      "e1000",
      "-snapshot",
      "disk.img",
      "-unknown-flag",
      "-unknown-opt",
      "value",
    ];
    const tokens = splitArgv(argv);
    expect(tokens).toEqual([
      { kind: "word", text: "qemu-system-x86_64" },
      { kind: "option", name: "S", spelling: "-S", arg: undefined },
      { kind: "option", name: "append", spelling: "-append", arg: "-uuid is text here" },
      { kind: "option", name: "m", spelling: "-m", arg: "512" },
      { kind: "option", name: "device", spelling: "--device", arg: "e1000" },
      { kind: "option", name: "snapshot", spelling: "-snapshot", arg: undefined },
      { kind: "word", text: "disk.img" },
      { kind: "option", name: "unknown-flag", spelling: "-unknown-flag", arg: undefined },
      { kind: "option", name: "unknown-opt", spelling: "-unknown-opt", arg: "value" },
    ]);
    expect(joinArgv(tokens)).toEqual(argv);
  });

  it("takes a dash-leading argument for options that need one", () => {
    expect(splitArgv(["-append", "-S"])).toEqual([
      { kind: "option", name: "append", spelling: "-append", arg: "-S" },
    ]);
  });

  it("rejects a trailing option that needs an argument", () => {
    expect(() => splitArgv(["-m", "1G", "-uuid"])).toThrow(/-uuid needs an argument/);
  });
});
