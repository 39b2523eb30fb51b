/**
 * Reading XML into a small mutable tree (fast-xml-parser does the parsing and
 * decodes entities), and the few look-ups the domain code needs. The tree is
 * written back with xml.ts, so escaping stays in one place.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { glintError } from "../errors.js";

export interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: (XmlNode | string)[];
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  commentPropName: "#comment",
});

type Raw = Record<string, unknown>;

function convert(raw: Raw): XmlNode | string | undefined {
  if ("#text" in raw) return String(raw["#text"]);
  const name = Object.keys(raw).find((k) => k !== ":@");
  if (name === undefined || name.startsWith("?") || name === "#comment") return undefined;
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries((raw[":@"] as Raw | undefined) ?? {})) attrs[k] = String(v);
  const children: (XmlNode | string)[] = [];
  for (const c of (raw[name] as Raw[] | undefined) ?? []) {
    const node = convert(c);
    if (node !== undefined && node !== "") children.push(node);
  }
  return { name, attrs, children };
}

/** The root element of `xml`; a malformed document is an `invalid-file` GlintError naming `what`. */
export function parseXml(xml: string, what: string): XmlNode {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw glintError(
      "invalid-file",
      `${what} is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`,
      { reason: "xml" },
    );
  }
  const roots = (parser.parse(xml) as Raw[])
    .map(convert)
    .filter((n): n is XmlNode => typeof n === "object");
  const root = roots[0];
  if (root === undefined || roots.length !== 1) {
    throw glintError("invalid-file", `${what} has no single root element`, { reason: "xml" });
  }
  return root;
}

/** Child elements named `name`. */
export function childrenOf(node: XmlNode | undefined, name: string): XmlNode[] {
  return (node?.children ?? []).filter(
    (c): c is XmlNode => typeof c === "object" && c.name === name,
  );
}

/** The first child element named `name`. */
export function childOf(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return childrenOf(node, name)[0];
}

/** The element's text (its text children joined), trimmed; undefined without an element. */
export function textOf(node: XmlNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  return node.children
    .filter((c): c is string => typeof c === "string")
    .join("")
    .trim();
}

/** A new element. */
export function node(
  name: string,
  attrs: Record<string, string> = {},
  ...children: (XmlNode | string)[]
): XmlNode {
  return { name, attrs, children };
}

/** Replace the children named `name` by `replacement` (at the first one's place, else appended). */
export function replaceChildren(parent: XmlNode, name: string, replacement: XmlNode[]): void {
  const at = parent.children.findIndex((c) => typeof c === "object" && c.name === name);
  parent.children = parent.children.filter((c) => !(typeof c === "object" && c.name === name));
  parent.children.splice(at < 0 ? parent.children.length : at, 0, ...replacement);
}

/** Set the text of child `name`, creating the child (appended) if missing. */
export function setChildText(parent: XmlNode, name: string, text: string): void {
  const existing = childOf(parent, name);
  if (existing) existing.children = [text];
  else parent.children.push(node(name, {}, text));
}
