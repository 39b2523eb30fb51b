/**
 * A tiny XML writer for the domain XML: elements are typed objects, and
 * every text and attribute value is escaped here, in one place. Names are
 * checked, so that no value can ever become markup.
 */
import { GlintError } from "../errors.js";

export interface XmlElement {
  readonly name: string;
  readonly attrs?: Readonly<Record<string, string | number | undefined>>;
  readonly children?: readonly (XmlElement | string)[];
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
/** Whether `text` has a character XML 1.0 cannot carry (C0 controls but tab, CR, LF; U+FFFE/U+FFFF). */
function hasForbidden(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0xfffe || c === 0xffff) {
      return true;
    }
  }
  return false;
}

/** An element: `el("disk", {type: "file"}, child, "text")`. */
export function el(
  name: string,
  attrs: Readonly<Record<string, string | number | undefined>> = {},
  ...children: (XmlElement | string | undefined | false)[]
): XmlElement {
  return {
    name,
    attrs,
    children: children.filter((c): c is XmlElement | string => c !== undefined && c !== false),
  };
}

function checkText(text: string, where: string): string {
  if (hasForbidden(text)) {
    throw new GlintError(`refusing to write a control character into the domain XML (${where})`);
  }
  return text;
}

/** Text escaped for element content. */
export function escapeText(text: string): string {
  return checkText(text, "text")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;");
}

/** Text escaped for a single-quoted or double-quoted attribute value. */
export function escapeAttr(text: string): string {
  return escapeText(text)
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&apos;")
    .replaceAll("\n", "&#10;")
    .replaceAll("\r", "&#13;")
    .replaceAll("\t", "&#9;");
}

function render(node: XmlElement, indent: string, out: string[]): void {
  if (!NAME_RE.test(node.name)) throw new GlintError(`invalid XML element name ${node.name}`);
  let open = `${indent}<${node.name}`;
  for (const [key, value] of Object.entries(node.attrs ?? {})) {
    if (value === undefined) continue;
    if (!NAME_RE.test(key)) throw new GlintError(`invalid XML attribute name ${key}`);
    open += ` ${key}='${escapeAttr(String(value))}'`;
  }
  const children = node.children ?? [];
  if (children.length === 0) {
    out.push(`${open}/>`);
  } else if (children.every((c) => typeof c === "string")) {
    out.push(`${open}>${children.map((c) => escapeText(c as string)).join("")}</${node.name}>`);
  } else {
    out.push(`${open}>`);
    for (const child of children) {
      if (typeof child === "string") out.push(`${indent}  ${escapeText(child)}`);
      else render(child, `${indent}  `, out);
    }
    out.push(`${indent}</${node.name}>`);
  }
}

/** The document for `root`, indented by two spaces, with a final newline. */
export function renderXml(root: XmlElement): string {
  const out: string[] = [];
  render(root, "", out);
  return `${out.join("\n")}\n`;
}
