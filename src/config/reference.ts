/**
 * The configuration reference (docs/configuration.md), walked from the zod schema's JSON Schema: every key with its
 * path, type, default and the description the schema gives it. `npm run docs` writes it; test/docs.test.ts checks
 * that the file is up to date and that every key has a description.
 *
 * Paths: `meters[].port` (a key of a list's entries), `tariffs.<name>.import` (a name the user picks), and for
 * unions of objects (the meter types, told apart by `type`) one table per member.
 */
import { z } from "zod";
import { ConfigSchema } from "./schema.js";

interface Node {
  type?: string | string[];
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  additionalProperties?: Node | boolean;
  anyOf?: Node[];
  oneOf?: Node[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
}

export interface KeyDoc {
  /** `meters[].imap.host` */
  path: string;
  /** The top-level key it belongs to, and for a union member its discriminator (`type: dsmr`). */
  section: string;
  variant?: string;
  type: string;
  /** `required`, a default as YAML would write it, or "". */
  default: string;
  description: string;
}

export interface Variant {
  section: string;
  variant: string;
  description: string;
}

const alternatives = (n: Node): Node[] => n.anyOf ?? n.oneOf ?? [];
const isObject = (n: Node): boolean => n.type === "object" || n.properties !== undefined;
const literal = (v: unknown): string => (typeof v === "string" ? `"${v}"` : JSON.stringify(v));

/** A short type: `integer 1–65535`, `"auto" | 115200 | 9600`, `list of string`, `number or list of objects`. */
function typeOf(n: Node): string {
  if (n.const !== undefined) return literal(n.const);
  if (n.enum) return n.enum.map(literal).join(" | ");
  const alts = alternatives(n);
  if (alts.length > 0) {
    if (alts.every((a) => a.const !== undefined || a.enum)) return alts.map(typeOf).join(" | ");
    return [...new Set(alts.map(typeOf))].join(" or ");
  }
  if (n.type === "array") return n.items ? `list of ${plural(typeOf(n.items))}` : "list";
  if (isObject(n)) {
    if (n.additionalProperties && typeof n.additionalProperties === "object" && !n.properties)
      return `map of ${plural(typeOf(n.additionalProperties))}`;
    return "object";
  }
  const t = Array.isArray(n.type) ? n.type.join(" | ") : (n.type ?? "any");
  // z.number().int() bounds itself by Number.MAX_SAFE_INTEGER: no limit worth printing.
  const bound = (v: number | undefined) => (v !== undefined && Math.abs(v) < Number.MAX_SAFE_INTEGER ? v : undefined);
  const min = bound(n.minimum ?? n.exclusiveMinimum);
  const max = bound(n.maximum);
  const excl = n.exclusiveMinimum !== undefined ? ">" : "≥";
  if (min !== undefined && max !== undefined) return `${t} ${min}–${max}`;
  if (min !== undefined) return `${t} ${excl} ${min}`;
  if (max !== undefined) return `${t} ≤ ${max}`;
  return t;
}

function plural(t: string): string {
  return /^(object|string|number|integer|boolean)$/.test(t) ? `${t}s` : t;
}

function defaultOf(n: Node, required: boolean): string {
  if (n.default !== undefined) {
    const d = n.default;
    if (d && typeof d === "object" && !Array.isArray(d) && Object.keys(d).length === 0) return "";
    return typeof d === "string" ? d : JSON.stringify(d);
  }
  return required ? "required" : "";
}

/** Objects reachable below a key: itself, a list's entries, a map's values, the object members of a union. */
function children(n: Node, path: string): { node: Node; path: string }[] {
  if (isObject(n) && n.properties) return [{ node: n, path }];
  if (n.type === "array" && n.items) return children(n.items, `${path}[]`);
  if (isObject(n) && n.additionalProperties && typeof n.additionalProperties === "object")
    return children(n.additionalProperties, `${path}.<name>`);
  return alternatives(n).flatMap((a) => children(a, path));
}

/** The union members of a list told apart by a constant `type` (the meters). */
function discriminated(n: Node): Node[] | undefined {
  const items = n.type === "array" ? n.items : undefined;
  const alts = items ? alternatives(items) : [];
  if (alts.length > 1 && alts.every((a) => a.properties?.type?.const !== undefined)) return alts;
  return undefined;
}

export function jsonSchema(): Node {
  return z.toJSONSchema(ConfigSchema, { io: "input", unrepresentable: "any" }) as Node;
}

export function configKeys(root: Node = jsonSchema()): { keys: KeyDoc[]; variants: Variant[] } {
  const keys: KeyDoc[] = [];
  const variants: Variant[] = [];
  const walk = (obj: Node, prefix: string, section: string, variant?: string): void => {
    for (const [name, node] of Object.entries(obj.properties ?? {})) {
      const path = prefix ? `${prefix}.${name}` : name;
      const sec = section || name;
      keys.push({
        path,
        section: sec,
        ...(variant ? { variant } : {}),
        type: typeOf(node),
        default: defaultOf(node, obj.required?.includes(name) ?? false),
        description: node.description ?? "",
      });
      const members = discriminated(node);
      if (members) {
        for (const m of members) {
          const v = `type: ${String(m.properties?.type?.const)}`;
          variants.push({ section: sec, variant: v, description: m.description ?? "" });
          walk(m, `${path}[]`, sec, v);
        }
        continue;
      }
      for (const c of children(node, path)) walk(c.node, c.path, sec, variant);
    }
  };
  walk(root, "", "");
  return { keys, variants };
}

/** A table cell: pipes escaped, and `<name>` kept as text rather than read as an HTML tag. */
const cell = (s: string): string => s.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/\n/g, " ");
const code = (s: string): string => (s ? `\`${s}\`` : "");

function table(rows: readonly KeyDoc[]): string[] {
  const out = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"];
  for (const r of rows)
    out.push(
      `| ${code(r.path)} | ${cell(r.type)} | ${r.default === "required" ? "required" : cell(code(r.default))} | ${cell(r.description)} |`,
    );
  return out;
}

/** docs/configuration.md. */
export function configReference(): string {
  const { keys, variants } = configKeys();
  const out = [
    "# Configuration reference",
    "",
    "<!-- Generated from the configuration schema by `npm run docs`: edit the schema's descriptions, not this file. -->",
    "",
    "Every key of `meter2mqtt.yaml` (`meter2mqtt run --config meter2mqtt.yaml`). A path like `meters[].port` is a key",
    "of an entry of the list `meters`; `tariffs.<name>.import` is a key under a name you choose. A key without a",
    "default may be left out unless it says *required*. A mistake stops the bridge before it touches a meter, with",
    "one line per key naming its path and what was expected. The Home Assistant app takes most of these as options",
    "(see the app's Documentation tab).",
    "",
    "## Top level",
    "",
    ...table(keys.filter((k) => !k.path.includes(".") && !k.path.includes("["))),
  ];
  const sections = [...new Set(keys.map((k) => k.section))];
  for (const section of sections) {
    const below = keys.filter((k) => k.section === section && k.path !== section);
    if (below.length === 0) continue;
    out.push("", `## ${section}`);
    const common = below.filter((k) => !k.variant);
    if (common.length > 0) out.push("", ...table(common));
    for (const v of variants.filter((x) => x.section === section)) {
      out.push("", `### ${section}: \`${v.variant}\``, "");
      if (v.description) out.push(v.description, "");
      out.push(...table(below.filter((k) => k.variant === v.variant)));
    }
  }
  return `${out.join("\n")}\n`;
}
