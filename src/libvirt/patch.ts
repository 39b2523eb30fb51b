/**
 * `glint libvirt sync`: the identity of a Glint VM written into an existing
 * domain definition. Only what carries the identity is replaced (uuid,
 * genid, the SMBIOS sysinfo, `<smbios mode='sysinfo'/>`, the NVRAM path,
 * NIC MACs, the system disk's serial, the SMBIOS type 4 argument and Glint's
 * metadata); every other element, such as a kernel, consoles or extra
 * devices that the user added, is kept.
 */
import { QEMU_NS } from "./domain.js";
import {
  childOf,
  childrenOf,
  node,
  parseXml,
  replaceChildren,
  setChildText,
  textOf,
  type XmlNode,
} from "./tree.js";
import { renderXml, type XmlElement } from "./xml.js";

function toNode(e: XmlElement): XmlNode {
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.attrs ?? {})) if (v !== undefined) attrs[k] = String(v);
  return {
    name: e.name,
    attrs,
    children: (e.children ?? []).map((c) => (typeof c === "string" ? c : toNode(c))),
  };
}

function need(n: XmlNode | undefined, what: string): XmlNode {
  if (n === undefined) throw new Error(`built domain lacks ${what}`); // unreachable: buildDomain makes it
  return n;
}

/** `current` (a domain XML) carrying the identity of `built` (from buildDomain). */
export function patchDomain(current: string, built: XmlElement, what: string): string {
  const dom = parseXml(current, what);
  const ours = toNode(built);
  dom.attrs["xmlns:qemu"] = QEMU_NS;
  for (const name of ["uuid", "genid"]) {
    setChildText(dom, name, textOf(need(childOf(ours, name), name)) ?? "");
  }
  // Metadata: Glint's element replaced, others kept.
  const ourMeta = need(childOf(childOf(ours, "metadata"), "glint:vm"), "metadata");
  const meta = childOf(dom, "metadata") ?? node("metadata");
  if (!dom.children.includes(meta)) dom.children.push(meta);
  replaceChildren(meta, "glint:vm", [ourMeta]);
  // SMBIOS sysinfo.
  const others = childrenOf(dom, "sysinfo").filter((s) => s.attrs.type !== "smbios");
  replaceChildren(dom, "sysinfo", [...others, need(childOf(ours, "sysinfo"), "sysinfo")]);
  // <os>: smbios mode, and the NVRAM Glint keeps.
  const ourOs = need(childOf(ours, "os"), "os");
  const os = childOf(dom, "os") ?? node("os");
  if (!dom.children.includes(os)) dom.children.push(os);
  replaceChildren(os, "smbios", [need(childOf(ourOs, "smbios"), "smbios")]);
  const nvram = childOf(ourOs, "nvram");
  if (nvram !== undefined) {
    if (childOf(os, "loader") === undefined)
      os.children.push(need(childOf(ourOs, "loader"), "loader"));
    replaceChildren(os, "nvram", [nvram]);
  }
  // Devices: MACs in NIC order, the first disk's serial.
  const ourDevices = need(childOf(ours, "devices"), "devices");
  const devices = childOf(dom, "devices") ?? node("devices");
  if (!dom.children.includes(devices)) dom.children.push(devices);
  const ourNics = childrenOf(ourDevices, "interface");
  const nics = childrenOf(devices, "interface");
  ourNics.forEach((ourNic, i) => {
    const nic = nics[i];
    if (nic === undefined) devices.children.push(ourNic);
    else replaceChildren(nic, "mac", [need(childOf(ourNic, "mac"), "mac")]);
  });
  const ourDisk = childrenOf(ourDevices, "disk").find((d) => d.attrs.device === "disk");
  const disk = childrenOf(devices, "disk").find((d) => (d.attrs.device ?? "disk") === "disk");
  if (ourDisk !== undefined && disk !== undefined) {
    replaceChildren(disk, "serial", [need(childOf(ourDisk, "serial"), "serial")]);
  }
  // SMBIOS type 4 through the QEMU command line: earlier `-smbios type=4,…` pairs go.
  const ourCmd = need(childOf(ours, "qemu:commandline"), "qemu:commandline");
  const cmd = childOf(dom, "qemu:commandline") ?? node("qemu:commandline");
  if (!dom.children.includes(cmd)) dom.children.push(cmd);
  const kept: (XmlNode | string)[] = [];
  for (let i = 0; i < cmd.children.length; i++) {
    const a = cmd.children[i];
    const b = cmd.children[i + 1];
    if (
      typeof a === "object" &&
      typeof b === "object" &&
      a.attrs.value === "-smbios" &&
      /^type=4(,|$)/.test(b.attrs.value ?? "")
    ) {
      i++;
      continue;
    }
    if (a !== undefined) kept.push(a);
  }
  cmd.children = [...kept, ...ourCmd.children];
  return renderXml(dom);
}
