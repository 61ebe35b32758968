/**
 * addon/config.yaml against the Supervisor's rules, and the add-on's options against the app's config schema.
 *
 * The rules are those of the Supervisor's own validation (supervisor/apps/validate.py, formerly addons/: the config
 * keys and their types, the translation files; supervisor/apps/options.py: the option schema's element types, how
 * options are checked against it, which missing options are an error; supervisor/apps/app.py: how backup_exclude
 * patterns match), ported here because the Supervisor cannot run in a test. The drift checks
 * read the app's schema through zod's JSON Schema export, so a new meter type, a renamed key or a changed pattern
 * in src/config/schema.ts fails here until addon/config.yaml follows.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import {
  ADDON_FILLED,
  addonToConfig,
  BACKUP_COPY,
  BACKUP_EXCLUDE,
  FLATTENED_METER_OPTIONS,
  FLATTENED_OPTIONS,
  mergeYaml,
  renameIssue,
  SETTLE_MS,
  type SupervisorMqtt,
  TARIFF_OPTIONS,
  WEB_PORT,
  YAML_ONLY,
} from "../src/addon/index.js";
import { parseConfig } from "../src/config/load.js";
import { ConfigSchema } from "../src/config/schema.js";
import { backupExcluded } from "./helpers/supervisor.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");
const yamlOf = (path: string): Record<string, unknown> => parseYaml(read(path)) as Record<string, unknown>;

const config = yamlOf("addon/config.yaml");
const schema = config.schema as Record<string, SchemaNode>;
const options = config.options as Record<string, unknown>;
const pkg = JSON.parse(read("package.json")) as { version: string };

type SchemaNode = string | SchemaNode[] | { [key: string]: SchemaNode };
type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

// ── the Supervisor's rules ───────────────────────────────────────────────────────────────────────────────────────

/** supervisor/addons/options.py RE_SCHEMA_ELEMENT: the element types the option UI and validation know. */
const RE_SCHEMA_ELEMENT =
  /^(?:|bool|email|url|port|device(?:\((?<filter>subsystem=[a-z]+)\))?|str(?:\((?<s_min>\d+)?,(?<s_max>\d+)?\))?|password(?:\((?<p_min>\d+)?,(?<p_max>\d+)?\))?|int(?:\((?<i_min>-?\d+)?,(?<i_max>-?\d+)?\))?|float(?:\((?<f_min>-?\d*\.?\d+)?,(?<f_max>-?\d*\.?\d+)?\))?|match\((?<match>.*)\)|list\((?<list>.+)\))\??$/;
const RE_SLUG = /^[-_.A-Za-z0-9]+$/;
const RE_SERVICE = /^(?<service>mqtt|mysql):(?<rights>provide|want|need)$/;
/** supervisor/addons/validate.py RE_VOLUME: a `map` entry as a string; one that does not match is skipped. */
const RE_VOLUME =
  /^(data|config|ssl|addons|backup|share|media|homeassistant_config|all_addon_configs|addon_config)(?::(rw|ro))?$/;
const RE_DOCKER_IMAGE = /^([a-zA-Z\-.:\d{}]+\/)*?([-\w{}]+)\/([-\w{}]+)$/;
const ARCH_ALL = ["armhf", "armv7", "aarch64", "amd64", "i386"];

const bool = (v: unknown) => typeof v === "boolean";
const str = (v: unknown) => typeof v === "string";
const strList = (v: unknown) => Array.isArray(v) && v.every(str);
const oneOf =
  (...values: string[]) =>
  (v: unknown) =>
    typeof v === "string" && values.includes(v);

/** supervisor/apps/validate.py _SCHEMA_APP_CONFIG: every key it knows (others are dropped without a word). */
const CONFIG_KEYS: Record<string, (v: unknown) => boolean> = {
  name: str,
  version: (v) => str(v) && (v as string).length > 0,
  slug: (v) => str(v) && RE_SLUG.test(v as string),
  description: str,
  arch: (v) => Array.isArray(v) && v.length > 0 && v.every((a) => ARCH_ALL.includes(a)),
  machine: strList,
  url: (v) => str(v) && /^https?:\/\/[^/\s]+/.test(v as string),
  startup: oneOf("initialize", "system", "services", "application", "once"),
  boot: oneOf("auto", "manual", "manual_only"),
  init: bool,
  stage: oneOf("stable", "experimental", "deprecated"),
  ports: isObject,
  ports_description: isObject,
  watchdog: (v) => str(v) && /^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$/.test(v as string),
  webui: str,
  ingress: bool,
  ingress_port: Number.isInteger,
  ingress_entry: str,
  ingress_stream: bool,
  panel_icon: str,
  panel_title: str,
  panel_admin: bool,
  homeassistant: str,
  host_network: bool,
  host_pid: bool,
  host_ipc: bool,
  host_uts: bool,
  host_dbus: bool,
  devices: strList,
  udev: bool,
  tmpfs: bool,
  // A string entry that does not match RE_VOLUME is skipped with a warning; a dict needs a known `type`.
  map: (v) =>
    Array.isArray(v) &&
    v.every((e) =>
      str(e)
        ? RE_VOLUME.test(e)
        : isObject(e) &&
          str(e.type) &&
          RE_VOLUME.test(e.type as string) &&
          !(e.type as string).includes(":") &&
          (e.read_only === undefined || bool(e.read_only)) &&
          (e.path === undefined || str(e.path)),
    ),
  environment: isObject,
  privileged: strList,
  apparmor: bool,
  full_access: bool,
  audio: bool,
  video: bool,
  gpio: bool,
  usb: bool,
  uart: bool,
  devicetree: bool,
  kernel_modules: bool,
  realtime: bool,
  hassio_api: bool,
  hassio_role: oneOf("default", "homeassistant", "backup", "manager", "admin"),
  homeassistant_api: bool,
  stdin: bool,
  legacy: bool,
  docker_api: bool,
  auth_api: bool,
  services: (v) => strList(v) && (v as string[]).every((s) => RE_SERVICE.test(s)),
  discovery: strList,
  backup_exclude: strList,
  backup_pre: str,
  backup_post: str,
  backup: oneOf("hot", "cold"),
  options: isObject,
  schema: (v) => v === false || isObject(v),
  image: (v) => str(v) && RE_DOCKER_IMAGE.test(v as string),
  ulimits: isObject,
  timeout: (v) => Number.isInteger(v) && (v as number) >= 10 && (v as number) <= 300,
  journald: bool,
  breaking_versions: strList,
};

/** SCHEMA_ELEMENT: a known element type, a one-element list (never a list in a list), or a dict of those. */
function elementProblems(node: SchemaNode, path: string, depth: number): string[] {
  if (typeof node === "string")
    return RE_SCHEMA_ELEMENT.test(node) ? [] : [`${path}: "${node}" is not a type the Supervisor knows`];
  // The documented limit: "nested arrays and dictionaries are supported with a maximum depth of two".
  if (depth >= 2) return [`${path}: nested deeper than the two levels the option UI renders`];
  if (Array.isArray(node)) {
    if (node.length !== 1) return [`${path}: a list schema holds exactly one element type`];
    const [item] = node;
    if (Array.isArray(item)) return [`${path}: a list may not directly contain another list`];
    return elementProblems(item!, `${path}[]`, depth + 1);
  }
  return Object.entries(node).flatMap(([k, v]) => elementProblems(v, `${path}.${k}`, depth + 1));
}

const schemaProblems = (root: Record<string, SchemaNode>): string[] =>
  Object.entries(root).flatMap(([k, v]) => elementProblems(v, k, 0));

const pathMatch = (path: string, pattern: string): boolean => backupExcluded(path, [pattern]);

/** AddonOptions._validate_element / _single_validate / _check_missing_options, without the hardware lookup. */
function optionProblems(typ: SchemaNode, value: unknown, key: string): string[] {
  if (Array.isArray(typ)) {
    if (!Array.isArray(value)) return [`${key}: invalid list`];
    return value.flatMap((v, i) => optionProblems(typ[0]!, v, `${key}[${i}]`));
  }
  if (typeof typ === "object") {
    if (!isObject(value)) return [`${key}: invalid dict`];
    const out: string[] = [];
    for (const [k, v] of Object.entries(value)) {
      if (!(k in typ)) out.push(`${key}.${k}: not in the schema (the Supervisor drops it)`);
      else out.push(...optionProblems(typ[k]!, v, `${key}.${k}`));
    }
    return out.concat(missingProblems(typ, value, key));
  }
  if (value === null || value === undefined) return [`${key}: missing required option`];
  const m = RE_SCHEMA_ELEMENT.exec(typ)!;
  const g = m.groups ?? {};
  const num = (min?: string, max?: string, v = Number(value)) =>
    Number.isNaN(v) || (min !== undefined && v < Number(min)) || (max !== undefined && v > Number(max));
  if (typ.startsWith("int")) return !Number.isInteger(Number(value)) || num(g.i_min, g.i_max) ? [`${key}: int`] : [];
  if (typ.startsWith("float")) return num(g.f_min, g.f_max) ? [`${key}: float`] : [];
  if (typ.startsWith("bool")) return typeof value === "boolean" ? [] : [`${key}: bool`];
  if (typ.startsWith("port"))
    return Number.isInteger(Number(value)) && !num("1", "65535") ? [] : [`${key}: network port`];
  if (typ.startsWith("match")) return new RegExp(g.match!).test(String(value)) ? [] : [`${key}: does not match`];
  if (typ.startsWith("list")) return g.list!.split("|").includes(String(value)) ? [] : [`${key}: not one of ${g.list}`];
  if (typ.startsWith("device")) return String(value).startsWith("/dev/") ? [] : [`${key}: not a device`];
  // voluptuous' Email(): a local part, @, and a domain with a dot.
  if (typ.startsWith("email")) return /^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$/.test(String(value)) ? [] : [`${key}: email`];
  return [];
}

function missingProblems(typ: Record<string, SchemaNode>, value: Obj, where: string): string[] {
  const out: string[] = [];
  for (const [k, t] of Object.entries(typ)) {
    if (k in value) continue;
    const first = Array.isArray(t) ? t[0] : t;
    if (typeof first === "string" && first.endsWith("?")) continue;
    out.push(`${where}: missing option ${k}`);
  }
  return out;
}

function validateOptions(opts: Obj): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(opts))
    out.push(...(k in schema ? optionProblems(schema[k]!, v, k) : [`${k}: not in the schema`]));
  return out.concat(missingProblems(schema, opts, "root"));
}

/** Every key path of the option schema, `meters.port` style, with its element type (null for a container). */
function schemaPaths(node: SchemaNode, prefix = ""): [string, string | null][] {
  if (typeof node === "string") return [[prefix, node]];
  if (Array.isArray(node)) return schemaPaths(node[0]!, prefix);
  const own: [string, string | null][] = prefix ? [[prefix, null]] : [];
  return own.concat(Object.entries(node).flatMap(([k, v]) => schemaPaths(v, prefix ? `${prefix}.${k}` : k)));
}

// ── config.yaml ──────────────────────────────────────────────────────────────────────────────────────────────────

describe("addon/config.yaml follows the Supervisor's rules", () => {
  it("has the required keys, only keys the Supervisor knows, each of the right type", () => {
    for (const key of ["name", "version", "slug", "description", "arch"]) expect(config, key).toHaveProperty(key);
    const unknown = Object.keys(config).filter((k) => !(k in CONFIG_KEYS));
    expect(unknown, "keys the Supervisor would silently drop").toEqual([]);
    const wrong = Object.entries(config)
      .filter(([k, v]) => !CONFIG_KEYS[k]!(v))
      .map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
    expect(wrong).toEqual([]);
  });

  it("asks for what the app needs, and no more", () => {
    expect(config).toMatchObject({
      version: pkg.version,
      arch: ["aarch64", "amd64"],
      init: false,
      homeassistant_api: true,
      uart: true,
    });
    // The Mosquitto app's broker when it is there; a broker of the user's own works without it.
    expect(config.services).toEqual(["mqtt:want"]);
    // /services* needs no Supervisor API role; asking for more would lower the app's security rating.
    for (const risky of ["hassio_api", "host_network", "full_access", "privileged", "docker_api", "apparmor"])
      expect(config, risky).not.toHaveProperty(risky);
    // Built on the user's machine from this folder: no image that nothing publishes.
    expect(config).not.toHaveProperty("image");
    // Hot backups (the default) with the pre/post steps, which a cold-only app may not have.
    expect(config).not.toHaveProperty("backup");
    // SMT's CSV folder, read-only, and the app's own config folder (/config inside) for meter2mqtt.yaml.
    expect(config.map).toEqual(["share:ro", "addon_config:ro"]);
    // The watchdog asks the bridge's GET /health on the port the app gives its web server, with no port published.
    expect(config.watchdog).toBe(`http://[HOST]:${WEB_PORT}/health`);
    expect(config).not.toHaveProperty("ports");
    expect(
      addonToConfig({ ...options, meters: [{ id: "h", type: "dsmr", port: "/dev/ttyUSB0" }] }, ctx).config.web,
    ).toEqual({
      port: WEB_PORT,
      host: "0.0.0.0",
      ingress: true,
    });
    // The page in the sidebar: ingress to the same port, which answers only the Supervisor there.
    expect(config).toMatchObject({ ingress: true, ingress_port: WEB_PORT, panel_icon: expect.stringMatching(/^mdi:/) });
  });

  it("makes every backup hold a consistent archive: a copy before, the live files left out, the copy removed after", () => {
    expect(config.backup_pre).toBe("node /opt/meter2mqtt/dist/addon/backup.js pre");
    expect(config.backup_post).toBe("node /opt/meter2mqtt/dist/addon/backup.js post");
    expect(config.backup_exclude).toEqual([...BACKUP_EXCLUDE]);
    // supervisor/apps/app.py _is_excluded_by_filter: PurePath(full path).match(pattern), on the Supervisor's side of
    // the mount. A relative pattern matches the path's last components, so these take the live files wherever they
    // sit in the app's data or config folder, and never the copy.
    const excluded = (path: string) => (config.backup_exclude as string[]).some((p) => pathMatch(path, p));
    const data = "/mnt/data/supervisor/addons/data/local_meter2mqtt";
    for (const live of ["meter2mqtt.sqlite", "meter2mqtt.sqlite-wal", "meter2mqtt.sqlite-shm"])
      expect(excluded(`${data}/${live}`), live).toBe(true);
    for (const kept of [BACKUP_COPY, "options.json", "meter2mqtt.sqlite.old"])
      expect(excluded(`${data}/${kept}`), kept).toBe(false);
    expect(pathMatch("/a/b/c.txt", "*.txt")).toBe(true);
    expect(pathMatch("/a/b/c.txt", "b/*.txt")).toBe(true);
    expect(pathMatch("/a/b/c.txt", "a/*.txt")).toBe(false);
    // The command is split like a shell would (docker exec), and names the script the build ships.
    const [node, script] = (config.backup_pre as string).split(" ");
    expect(node).toBe("node");
    expect(script!.replace("/opt/meter2mqtt/dist/", "src/").replace(/\.js$/, ".ts")).toBe("src/addon/backup.ts");
    expect(readdirSync(join(ROOT, "src/addon"))).toContain("backup.ts");
    // The copy waits for the archive's batches: every reading received before the backup began is committed by
    // then, with room for a slow commit.
    const batchDelay = Number(/const BATCH_DELAY_MS = (\d+);/.exec(read("src/outputs/archive/index.ts"))?.[1]);
    expect(batchDelay).toBeGreaterThan(0);
    expect(SETTLE_MS).toBeGreaterThanOrEqual(2 * batchDelay + 1000);
  });

  it("has an option schema of known element types, nested at most two levels", () => {
    expect(schemaProblems(schema)).toEqual([]);
    expect((schema.meters as SchemaNode[])[0]).toMatchObject({
      port: "device(subsystem=tty)?",
      type: expect.stringMatching(/^list\(/),
    });
    expect((schema.mqtt as Obj).password).toMatch(/^password/);
  });

  it("has default options the Supervisor accepts against that schema", () => {
    expect(validateOptions(options)).toEqual([]);
    // The port is the one thing a user must choose; everything else starts from these defaults.
    const chosen = { ...options, meters: [{ ...(options.meters as Obj[])[0], port: "/dev/ttyUSB0" }] };
    expect(validateOptions(chosen)).toEqual([]);
  });

  it("the ported rules catch what the Supervisor would refuse", () => {
    expect(schemaProblems({ a: "string" })).toHaveLength(1);
    expect(schemaProblems({ a: [["str"]] })).toHaveLength(1);
    expect(schemaProblems({ a: [{ b: { c: "str" } }] })).toHaveLength(1);
    expect(schemaProblems({ a: [{ b: "str" }], c: { d: "int(0,)" } })).toEqual([]);
    expect(validateOptions({ ...options, meters: [{ name: "x", type: "dsmr" }] })).toContain(
      "meters[0]: missing option id",
    );
    expect(validateOptions({ ...options, log_level: "loud" })).toEqual([
      expect.stringMatching(/^log_level: not one of /),
    ]);
    expect(validateOptions({ ...options, mqtt: undefined })).toEqual(["mqtt: invalid dict"]);
    // Why a meter's imap is flat fields: a dict in a meter item is a third level.
    expect(schemaProblems({ meters: [{ id: "str", imap: { host: "str?" } }] })).toEqual([
      "meters[].imap: nested deeper than the two levels the option UI renders",
    ]);
    const smt = { id: "texas", type: "smt", imap_host: "imap.example.com" };
    expect(validateOptions({ ...options, meters: [{ ...smt, imap_sender: "not an address" }] })).toEqual([
      "meters[0].imap_sender: email",
    ]);
    expect(validateOptions({ ...options, meters: [{ ...smt, imap_port: 0 }] })).toEqual([
      "meters[0].imap_port: network port",
    ]);
    expect(validateOptions({ ...options, meters: [{ ...smt, check_at: "25:00" }] })).toEqual([
      "meters[0].check_at: does not match",
    ]);
    expect(CONFIG_KEYS.map!(["share:rw", { type: "media" }])).toBe(true);
    expect(CONFIG_KEYS.map!(["share:readonly"])).toBe(false);
  });

  it("translates every option and every field, and nothing else", () => {
    const translations = yamlOf("addon/translations/en.yaml").configuration as Record<string, Obj>;
    const problems: string[] = [];
    const check = (node: SchemaNode, tr: Record<string, Obj> | undefined, where: string): void => {
      const fields = (Array.isArray(node) ? node[0] : node) as Record<string, SchemaNode>;
      for (const [key, sub] of Object.entries(fields)) {
        const entry = tr?.[key];
        if (!entry || typeof entry.name !== "string" || typeof entry.description !== "string")
          problems.push(`${where}${key}: no name and description`);
        if (typeof sub !== "string") check(sub, entry?.fields as Record<string, Obj> | undefined, `${where}${key}.`);
      }
      for (const key of Object.keys(tr ?? {})) if (!(key in fields)) problems.push(`${where}${key}: not an option`);
    };
    check(schema, translations, "");
    expect(problems).toEqual([]);
  });

  it("comes with the files the store shows: docs, changelog, icon, logo, repository.yaml", () => {
    expect(read("addon/DOCS.md")).toMatch(/^# meter2mqtt/);
    expect(read("addon/CHANGELOG.md")).toContain(`## ${pkg.version}`);
    const png = (path: string) => {
      const b = readFileSync(join(ROOT, path));
      expect(b.subarray(0, 8).toString("hex"), path).toBe("89504e470d0a1a0a");
      return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
    };
    const icon = png("addon/icon.png");
    expect(icon.width).toBe(icon.height);
    const logo = png("addon/logo.png");
    expect(logo.width).toBeGreaterThan(logo.height);

    const repo = yamlOf("repository.yaml");
    expect(repo.name).toEqual(expect.any(String));
    expect(repo.url).toBe(config.url);
  });

  it("is the only add-on the Supervisor finds in the repository", () => {
    // supervisor/store/data.py takes every **/config.{json,yaml,yml} outside dot folders for an add-on. The
    // folders skipped here are git-ignored, so a clone of the repository (what the Supervisor reads) has none.
    const ignored = new Set(["node_modules", "dist", "data", "coverage"]);
    const found: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
        if (e.name.startsWith(".") || ignored.has(e.name) || e.name === "rootfs") continue;
        const path = dir ? `${dir}/${e.name}` : e.name;
        if (e.isDirectory()) walk(path);
        else if (/^config\.(json|ya?ml)$/.test(e.name)) found.push(path);
      }
    };
    walk("");
    expect(found).toEqual(["addon/config.yaml"]);
  });
});

// ── AppArmor ─────────────────────────────────────────────────────────────────────────────────────────────────────

/** apparmor_parser (Debian's `apparmor`; .ci/run installs it): the test is skipped only where it is not installed. */
const APPARMOR_PARSER = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"].find((p) => existsSync(p));

describe("addon/apparmor.txt", () => {
  const profile = read("addon/apparmor.txt");

  /** supervisor/utils/apparmor.py: exactly one `profile NAME` at a line's start, renamed to the app's full slug. */
  const RE_PROFILE = /^profile ([^ ]+).*$/;
  const topLevel = profile
    .split("\n")
    .map((l) => RE_PROFILE.exec(l)?.[1])
    .filter(Boolean);

  it("has one profile the Supervisor can name after the app, in the shape of HA's example", () => {
    expect(topLevel).toEqual([config.slug]);
    // File access for s6-overlay's scripts, which read themselves and their interpreter; the s6 paths.
    expect(profile).toMatch(/^ {2}file,$/m);
    for (const rule of ["/init rix,", "/command/** rix,", "/package/** rix,", "/run/{s6,s6-rc*,service}/** rix,"])
      expect(profile).toContain(rule);
    // The bridge in a child profile (indented: the Supervisor's rename only touches the top-level line), which
    // takes the network, the serial devices, /data, the app's config folder and /share read-only.
    expect(profile).toContain("/usr/bin/node cx -> meter2mqtt_node,");
    const child = profile.slice(profile.indexOf("  profile meter2mqtt_node"));
    for (const rule of [
      "network inet stream,",
      "network inet6 stream,",
      "/dev/ttyUSB[0-9]* rwk,",
      "/dev/ttyACM[0-9]* rwk,",
      "/dev/ttyAMA[0-9]* rwk,",
      "/dev/serial/by-id/* rwk,",
      "/data/** rwk,",
      "/config/** r,",
      "/share/** r,",
      "/opt/meter2mqtt/** rm,",
      "signal (receive) peer=*meter2mqtt,",
    ])
      expect(child, rule).toContain(rule);
    expect(child).not.toMatch(/^\s*file,$/m);
  });

  it.skipIf(!APPARMOR_PARSER)(
    "compiles with apparmor_parser, as written and as the Supervisor renames it",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "m2m-aa-"));
      try {
        const parse = (text: string, name: string) => {
          const file = join(dir, name);
          writeFileSync(file, text);
          // -Q: compile only, nothing loaded into a kernel; -K: no cache.
          return run(APPARMOR_PARSER!, ["-Q", "-K", file]).then(
            () => ({ code: 0, stderr: "" }),
            (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
          );
        };
        expect(await parse(profile, "meter2mqtt")).toMatchObject({ code: 0 });
        const renamed = profile.replace(/^profile meter2mqtt /m, "profile local_meter2mqtt ");
        expect(await parse(renamed, "local_meter2mqtt")).toMatchObject({ code: 0 });
        // And it does refuse a broken profile: a rule with an unknown mode.
        const broken = await parse(profile.replace("/data/** rwk,", "/data/** rwz,"), "broken");
        expect(broken.code).not.toBe(0);
        expect(broken.stderr).toMatch(/syntax error|parser error/i);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

// ── the options against the app's config schema ──────────────────────────────────────────────────────────────────

interface JsonSchema {
  type?: string;
  additionalProperties?: JsonSchema;
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
}

const app = z.toJSONSchema(ConfigSchema, { io: "input", unrepresentable: "any" }) as JsonSchema;
const appMeters = (app.properties!.meters!.items!.oneOf ?? [app.properties!.meters!.items!]) as JsonSchema[];
const meterTypeOf = (v: JsonSchema): string => String(v.properties!.type!.const ?? v.properties!.type!.enum?.[0]);
const addonMeter = (schema.meters as Record<string, string>[])[0]!;

/**
 * App options that feed an app key of another name or place (see src/addon/options.ts): the dongle's address,
 * nested objects as flat fields (`meters.imap_host` is the app's `meters.imap.host`), and the form's list of
 * tariffs, which becomes the app's map by name (`*`).
 */
const RENAMED: Record<string, string> = {
  "meters.tcp": "meters.port",
  ...FLATTENED_OPTIONS,
  ...Object.fromEntries(TARIFF_OPTIONS.filter((k) => k !== "name").map((k) => [`tariffs.${k}`, `tariffs.*.${k}`])),
  ...Object.fromEntries(
    Object.entries(FLATTENED_OPTIONS)
      .filter(([flat]) => flat.startsWith("tariffs."))
      .map(([flat, path]) => [flat, path.replace(/^tariffs\./, "tariffs.*.")]),
  ),
};
/** Options whose value the app takes in another form: the map key itself, and "home, garage" as a list. */
const CONVERTED = new Set(["tariffs.name", "tariffs.meters"]);

/**
 * The app's property at a key path: `.key` through objects, list items and map values taken on the way
 * (`loads.command.topic`, `tariffs.*.import`). For a meter key, one per meter type that has it.
 */
function appProps(path: string): JsonSchema[] {
  let at: JsonSchema[] = [app];
  for (const k of path.split(".")) {
    at = at
      .flatMap((s) => (s.items ? (s.items.oneOf ?? [s.items]) : [s]))
      .flatMap((s) => (k === "*" ? (s.additionalProperties ? [s.additionalProperties] : []) : [s.properties?.[k]]))
      .filter((s): s is JsonSchema => s !== undefined);
  }
  return at;
}

/** The app's property at a dotted path below `s` (`imap.host`), through nested objects. */
const propAt = (s: JsonSchema | undefined, path: string): JsonSchema | undefined =>
  path.split(".").reduce<JsonSchema | undefined>((at, k) => at?.properties?.[k], s);
/** The app's meter key an add-on meter option feeds: `port` for `tcp`, `imap.host` for `imap_host`. */
const appMeterKey = (option: string): string => (RENAMED[`meters.${option}`] ?? `meters.${option}`).slice(7);
/** `{imap: {host}}` at `imap.host`. */
const valueAt = (o: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((at, k) => (isObject(at) ? at[k] : undefined), o);

function literals(p: JsonSchema): string[] | undefined {
  if (p.enum) return p.enum.map(String);
  if (p.const !== undefined) return [String(p.const)];
  const alts = p.anyOf ?? p.oneOf;
  if (alts?.every((a) => a.const !== undefined || a.enum)) return alts.flatMap((a) => literals(a)!);
  return undefined;
}

/** Why an app element type cannot carry the app's property, or undefined when it can (one of a union's does). */
function incompatible(addonType: string, p: JsonSchema): string | undefined {
  const alts = p.anyOf ?? p.oneOf;
  if (alts && !literals(p)) {
    const why = alts.map((a) => incompatible(addonType, a));
    return why.includes(undefined) ? undefined : why.join("; ");
  }
  const t = addonType.replace(/\?$/, "");
  const g = RE_SCHEMA_ELEMENT.exec(addonType)!.groups ?? {};
  if (t.startsWith("list")) {
    const want = literals(p);
    const have = g.list!.split("|");
    return want && [...want].sort().join("|") === [...have].sort().join("|")
      ? undefined
      : `offers ${have.join("|")}, the app takes ${want?.join("|") ?? p.type}`;
  }
  if (t === "bool") return p.type === "boolean" ? undefined : `bool, the app takes ${p.type}`;
  if (t.startsWith("int") || t.startsWith("float") || t === "port") {
    if (p.type !== "number" && p.type !== "integer") return `a number, the app takes ${p.type}`;
    // A network port is an int from 1 to 65535 (supervisor/validate.py network_port).
    const min = t === "port" ? 1 : Number(g.i_min ?? g.f_min ?? Number.NEGATIVE_INFINITY);
    const max = t === "port" ? 65535 : Number(g.i_max ?? g.f_max ?? Number.POSITIVE_INFINITY);
    if (p.minimum !== undefined && min < p.minimum) return `allows ${min}, the app's minimum is ${p.minimum}`;
    // zod's int() writes MAX_SAFE_INTEGER for "no maximum".
    if (p.maximum !== undefined && p.maximum < Number.MAX_SAFE_INTEGER && max > p.maximum)
      return `allows ${max}, the app's maximum is ${p.maximum}`;
    return undefined;
  }
  if (p.type !== "string") return `${t}, the app takes ${p.type}`;
  if (t === "email" && p.pattern !== undefined && !new RegExp(p.pattern).test("reports@example.com"))
    return "an email address, which the app's pattern refuses";
  if (t.startsWith("match") && p.pattern !== undefined && g.match !== p.pattern)
    return `matches ${g.match}, the app ${p.pattern}`;
  if (t.startsWith("device") && p.pattern !== undefined && !new RegExp(p.pattern).test("/dev/ttyUSB0"))
    return "a device path, which the app's pattern refuses";
  return undefined;
}

const SUPERVISOR_MQTT: SupervisorMqtt = {
  host: "core-mosquitto",
  port: 1883,
  ssl: false,
  protocol: "3.1.1",
  username: "addons",
  password: "Ieph3ahg",
  addon: "core_mosquitto",
};
const ctx = {
  dataDir: "/data",
  mqttService: SUPERVISOR_MQTT,
  supervisorUrl: "http://supervisor",
  supervisorToken: "0123abcd",
};
const toApp = (opts: unknown) => parseConfig(addonToConfig(opts, ctx).config);

/**
 * A value of each free-text option that the app accepts; a new option needs one here. Values here win over the
 * ones derived from the type, and differ from the app's defaults, so a value that lands in the wrong place shows.
 */
const SAMPLES: Record<string, unknown> = {
  "meters.name": "Meter cupboard",
  "meters.port": "/dev/ttyUSB0",
  "meters.tcp": "192.168.1.50:8088",
  "meters.timezone": "Europe/Brussels",
  "meters.meter_mac": "0x000781000081fd17",
  "meters.imap_host": "imap.mail.example.com",
  "meters.imap_port": 1993,
  "meters.imap_tls": false,
  "meters.imap_user": "texas@example.com",
  "meters.imap_password": "abcd efgh ijkl mnop",
  "meters.imap_sender": "reports@smt.example.com",
  "meters.imap_mailbox": "Energy",
  "meters.imap_move_to": "Energy/Imported",
  "meters.imap_flag": "$Imported",
  "meters.imap_ca": "/share/ca/mail.pem",
  "meters.esiid": "10443720000000001",
  "meters.check_at": "06:45",
  "meters.folder": "/share/smt",
  "meters.base_url": "https://novec.smarthub.coop",
  "meters.username": "member@example.com",
  "meters.password": "portal pass 1",
  "meters.account": "1234567001",
  "meters.service_location": "123456",
  "meters.totp_secret": "JBSWY3DPEHPK3PXP",
  "meters.currency": "CAD",
  "mqtt.url": "mqtts://broker.example:8883",
  "mqtt.username": "meter2mqtt",
  "mqtt.password": "s3cret-pass",
  "mqtt.base_topic": "meters",
  "mqtt.discovery_prefix": "ha",
  "mqtt.client_id": "meter2mqtt-cupboard",
  "meters.key": "00112233445566778899aabbccddeeff",
  "meters.aad": "3000112233445566778899aabbccddee",
  "meters.share_port": 2323,
  "meters.share_host": "0.0.0.0",
  "loads.id": "boiler",
  "loads.name": "Hot water",
  "loads.meter": "home",
  "loads.command_topic": "relays/boiler/set",
  "loads.command_payload_on": "1",
  "loads.command_payload_off": "0",
  "peak_guard.meter": "home",
  "tariffs.name": "home_tariff",
  "tariffs.meters": "home",
  "tariffs.currency": "EUR",
  "tariffs.timezone": "Europe/Brussels",
  "tariffs.import": 0.31,
  "tariffs.export": 0.04,
  "tariffs.capacity_price_per_kw_year": 53.26,
  "influx.url": "http://127.0.0.1:8428",
  "influx.database": "energy",
  "influx.bucket": "energy",
  "influx.org": "home",
  "influx.token": "influx-token-1",
  "influx.username": "writer",
  "influx.password": "influx-pass-1",
  "influx.measurement": "meters",
};

/** A sample value for every option below `node`: one item for a list. */
function sampleNode(path: string, node: SchemaNode): unknown {
  if (typeof node === "string") return sample(path, node);
  if (Array.isArray(node)) return [sampleNode(path, node[0]!)];
  return Object.fromEntries(Object.entries(node).map(([k, t]) => [k, sampleNode(`${path}.${k}`, t)]));
}

function sample(path: string, type: string): unknown {
  if (path in SAMPLES) return SAMPLES[path];
  const g = RE_SCHEMA_ELEMENT.exec(type)!.groups ?? {};
  if (g.list) return g.list.split("|")[0];
  if (type.startsWith("bool")) return true;
  if (type.startsWith("int")) return Number(g.i_min ?? 0) + 1;
  if (type.startsWith("float")) return Number(g.f_min ?? 0) + 1;
  if (type.startsWith("match") && path === "meters.id") return "garage_2";
  throw new Error(`no sample value for the add-on option ${path}: add one to SAMPLES`);
}

describe("the add-on's options map onto the app's config schema", () => {
  it("offers exactly the meter types the app's schema knows", () => {
    const offered = /^list\((.+)\)$/.exec(addonMeter.type!)![1]!.split("|").sort();
    expect(offered).toEqual(appMeters.map(meterTypeOf).sort());
  });

  it("names only app keys, each with an element type that carries the app's type", () => {
    const problems: string[] = [];
    for (const [path, type] of schemaPaths(schema)) {
      // The discriminator: its values are compared as a whole by the test above.
      if (path === "meters.type" || path === "tariffs.name") continue;
      const target = RENAMED[path] ?? path;
      const props = appProps(target);
      if (props.length === 0) problems.push(`${path}: not a key of the app's config (${target})`);
      if (!type || CONVERTED.has(path)) continue;
      // A list offers the values of every meter type that has the key (baud: DSMR's and HAN's rates); a value a
      // type does not take, the app refuses by name.
      const offered = RE_SCHEMA_ELEMENT.exec(type)!.groups?.list?.split("|");
      if (offered && props.length > 1 && props.every((p) => literals(p))) {
        const union = [...new Set(props.flatMap((p) => literals(p)!))].sort();
        if (union.join("|") !== [...offered].sort().join("|"))
          problems.push(`${path}: offers ${offered.join("|")}, the app takes ${union.join("|")}`);
        continue;
      }
      for (const p of props) {
        const why = incompatible(type, p);
        if (why) problems.push(`${path}: ${why}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("offers every key of the app's config, or fills it in, or documents it as one for meter2mqtt.yaml", () => {
    // Every leaf key path of the app's schema: `.key`, `[]` for a list's items, `*` for a map's names.
    const leaves: string[] = [];
    const walk = (s: JsonSchema, at: string): void => {
      const alts = (s.anyOf ?? s.oneOf ?? []).filter((x) => x.type === "object" || x.type === "array");
      for (const x of alts) walk(x, at);
      if (s.items) walk(s.items, `${at}[]`);
      if (s.additionalProperties) walk(s.additionalProperties, `${at}.*`);
      for (const [k, p] of Object.entries(s.properties ?? {})) walk(p, at ? `${at}.${k}` : k);
      if (!s.items && !s.additionalProperties && !s.properties && alts.length === 0) leaves.push(at);
    };
    walk(app, "");
    const offered = new Set(
      schemaPaths(schema)
        .filter(([, type]) => type !== null)
        .map(([path]) => (RENAMED[path] ?? path).replace(/^(meters|loads|peak_guard)\./, "$1[]."))
        .concat(["tariffs.*"]),
    );
    const docs = read("addon/DOCS.md");
    const uncovered = leaves.filter((leaf) => {
      const key = leaf.replace(/\[\]$/, "");
      if (offered.has(key) || offered.has(leaf)) return false;
      if (ADDON_FILLED.some((p) => key === p || key.startsWith(`${p}.`))) return false;
      return !Object.keys(YAML_ONLY).some((p) => leaf === p || leaf.startsWith(`${p}.`) || leaf.startsWith(`${p}[`));
    });
    expect(uncovered).toEqual([]);
    // What is YAML-only is named in the docs, under the section about meter2mqtt.yaml.
    expect(docs.indexOf("### meter2mqtt.yaml")).toBeGreaterThan(0);
    const yamlSection = docs.slice(docs.indexOf("### meter2mqtt.yaml"));
    for (const [path, words] of Object.entries(YAML_ONLY))
      for (const w of words) expect(yamlSection, `${path}: ${w}`).toContain(`\`${w}\``);
    // And the walk sees what it must: a deep key of each kind.
    expect(leaves).toEqual(
      expect.arrayContaining([
        "meters[].imap.host",
        "tariffs.*.import[].days[]",
        "loads[].command.topic",
        "influx.url",
      ]),
    );
  });

  it("covers every key the app requires of each meter type, and of each nested object offered as flat fields", () => {
    const covered = new Set(Object.keys(addonMeter).map(appMeterKey));
    // A nested object counts as offered when any of its keys is; then each key it requires must be offered too.
    const requires = (s: JsonSchema, prefix: string): string[] =>
      (s.required ?? [])
        .map((k) => prefix + k)
        .concat(
          Object.entries(s.properties ?? {})
            .filter(([k, p]) => p.type === "object" && [...covered].some((c) => c.startsWith(`${prefix}${k}.`)))
            .flatMap(([k, p]) => requires(p, `${prefix}${k}.`)),
        );
    for (const v of appMeters)
      for (const key of requires(v, "")) expect(covered, `${meterTypeOf(v)} requires ${key}`).toContain(key);
    expect(covered).toContain("imap.host");
  });

  it("offers as flat meter fields every key options.ts folds into a nested object", () => {
    for (const flat of Object.keys(FLATTENED_METER_OPTIONS)) expect(addonMeter, flat).toHaveProperty(flat);
  });

  it("turns the default options plus a chosen port into a valid config, filled in from the Supervisor", () => {
    const meters = [{ ...(options.meters as Obj[])[0], port: "/dev/ttyUSB0" }];
    const cfg = toApp({ ...options, meters });
    expect(cfg.mqtt).toMatchObject({ url: "mqtt://core-mosquitto:1883", username: "addons", password: "Ieph3ahg" });
    expect(cfg.archive.path).toBe("/data/meter2mqtt.sqlite");
    expect(cfg.homeassistant).toMatchObject({ url: "ws://supervisor/core/websocket", token: "0123abcd" });
    expect(cfg.meters[0]).toMatchObject({ id: "home", type: "dsmr", port: "/dev/ttyUSB0" });
  });

  it("accepts every option filled in, for each meter type, and every value each list offers", () => {
    const home = { id: "home", type: "dsmr", port: "/dev/ttyUSB0" };
    for (const v of appMeters) {
      const type = meterTypeOf(v);
      const meter: Obj = { type };
      for (const [key, t] of Object.entries(addonMeter))
        if (key !== "type" && key !== "tcp" && propAt(v, appMeterKey(key))) meter[key] = sample(`meters.${key}`, t);
      const full: Obj = { meters: [meter, home] };
      for (const [key, node] of Object.entries(schema)) if (key !== "meters") full[key] = sampleNode(key, node);
      const cfg = toApp(full) as unknown as Obj;
      // What the user set wins over the Supervisor's broker.
      expect((cfg.mqtt as Obj).url, type).toBe(SAMPLES["mqtt.url"]);
      expect((cfg.meters as Obj[])[0]).toMatchObject({ id: "garage_2", type });
      // Each option's value where the app reads it: the flat imap_* fields inside imap, and so on.
      for (const [key, value] of Object.entries(meter))
        expect(valueAt((cfg.meters as Obj[])[0], appMeterKey(key)), `${type}: meters.${key}`).toEqual(value);
      for (const [path, t] of schemaPaths(schema)) {
        const [head, field] = path.split(".");
        if (!t || head === "meters" || CONVERTED.has(path)) continue;
        const given = field ? (full[head!] as Obj[] | Obj) : full[head!];
        const value = Array.isArray(given) ? (given[0] as Obj)[field!] : field ? (given as Obj)[field] : given;
        const appPath = (RENAMED[path] ?? path)
          .split(".")
          .slice(1)
          .filter((k) => k !== "*");
        let at: unknown = cfg[head!];
        if (Array.isArray(at)) at = at[0];
        if (head === "tariffs") at = (at as Obj)[SAMPLES["tariffs.name"] as string];
        const got = appPath.length > 0 ? valueAt(at, appPath.join(".")) : at;
        expect(String(got), path).toBe(String(value));
      }
      expect((cfg.tariffs as Obj).home_tariff).toMatchObject({ meters: ["home"], currency: "EUR" });
    }
    for (const [path, type] of schemaPaths(schema)) {
      const values = type && RE_SCHEMA_ELEMENT.exec(type)!.groups?.list?.split("|");
      if (!values || path === "meters.type") continue;
      for (const value of values) {
        const base: Obj = { ...options, meters: [home] };
        const [head, field] = path.split(".");
        const node = schema[head!]!;
        // A meter type that takes the value (2400 baud is HAN's).
        if (head === "meters") {
          const takes = appMeters.find((v) => literals(propAt(v, field!) ?? {})?.includes(value));
          (base.meters as Obj[])[0] = { ...home, type: meterTypeOf(takes!), [field!]: value };
        } else if (Array.isArray(node)) base[head!] = [{ ...(sampleNode(head!, node[0]!) as Obj), [field!]: value }];
        else if (field) base[head!] = { ...(sampleNode(head!, node) as Obj), [field]: value };
        else base[head!] = value;
        const cfg = toApp(base) as unknown as Obj;
        let section = cfg[head!];
        if (Array.isArray(section)) section = section[0];
        if (head === "tariffs") section = (section as Obj)[SAMPLES["tariffs.name"] as string];
        // Where the app reads the option: `capacity_average` is the tariff's `capacity.average`.
        const appField = (RENAMED[path] ?? path)
          .split(".")
          .slice(1)
          .filter((k) => k !== "*")
          .join(".");
        const got = field ? valueAt(section, appField) : section;
        expect(String(got), `${path} = ${value}`).toBe(value);
      }
    }
  });

  it("maps a network dongle onto the port of the types that take one, and is refused for a type that does not", () => {
    for (const v of appMeters) {
      const type = meterTypeOf(v);
      const opts = { ...options, meters: [{ id: "home", type, tcp: SAMPLES["meters.tcp"] }] };
      const port = v.properties!.port;
      const takesTcp = port && new RegExp(port.pattern ?? "").test(`tcp://${SAMPLES["meters.tcp"]}`);
      if (takesTcp) expect(toApp(opts).meters[0], type).toMatchObject({ port: "tcp://192.168.1.50:8088" });
      // A type with a port refuses the tcp:// one in the app's schema; a type without is refused here.
      else if (port) expect(() => toApp(opts), type).toThrow(/meters\[0\]\.port/);
      else
        expect(() => toApp(opts), type).toThrow(
          new RegExp(`meters\\[0\\]\\.tcp: ${type} meters read no serial port or network dongle`),
        );
    }
  });

  it("requires a port only of the types that read one", () => {
    const smt = { id: "texas", type: "smt", folder: "/share/smt" };
    expect(toApp({ ...options, meters: [smt] }).meters[0]).toEqual(
      expect.not.objectContaining({ port: expect.anything() }),
    );
    expect(() => toApp({ ...options, meters: [{ ...smt, port: "/dev/ttyUSB0" }] })).toThrow(
      /meters\[0\]\.port: smt meters read no serial port/,
    );
    expect(() => toApp({ ...options, meters: [{ id: "home", type: "raven" }] })).toThrow(/meters\[0\]\.port: missing/);
  });

  it("folds a meter's imap_* fields into its imap object, only when one is set and only for types that have one", () => {
    const imap = {
      imap_host: "imap.mail.yahoo.com",
      imap_user: "me@yahoo.com",
      imap_password: "abcd efgh ijkl mnop",
      imap_sender: "reports@smt.example.com",
    };
    const smt = { id: "texas", type: "smt", ...imap, imap_port: "", imap_move_to: "" };
    const cfg = toApp({ ...options, meters: [smt] });
    expect(cfg.meters[0]).toEqual({
      id: "texas",
      type: "smt",
      imap: {
        host: "imap.mail.yahoo.com",
        port: 993,
        tls: true,
        user: "me@yahoo.com",
        password: "abcd efgh ijkl mnop",
        sender: "reports@smt.example.com",
        mailbox: "INBOX",
      },
      timezone: "America/Chicago",
      check_at: "11:30",
      recheck_minutes: 60,
    });
    // Blank imap_* fields (the option UI keeps a cleared field as "") are no mailbox: a folder alone is fine.
    const folderOnly = toApp({
      ...options,
      meters: [{ id: "texas", type: "smt", imap_host: " ", folder: "/share/smt" }],
    });
    expect(folderOnly.meters[0]).not.toHaveProperty("imap");
    expect(folderOnly.meters[0]).toMatchObject({ folder: "/share/smt" });
    // Neither: named in the add-on's fields, not the app's nested imap.
    expect(() => toApp({ ...options, meters: [{ id: "texas", type: "smt" }] })).toThrow(
      /meters\[0\]: an smt meter reads the daily email \(imap_host, imap_user, imap_password, imap_sender\), a folder/,
    );
    // A type without an imap keeps the flat field, which the app refuses by the name the user set.
    expect(() =>
      toApp({ ...options, meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0", imap_host: "x" }] }),
    ).toThrow(/meters\[0\]: unknown key "imap_host"/);
    // Errors inside the object are named after the flat field (loadAddonConfig renames them with this table).
    const { config, renamed } = addonToConfig(
      { ...options, meters: [{ id: "texas", type: "smt", imap_host: "h" }] },
      ctx,
    );
    expect((config.meters as Obj[])[0]!.imap).toEqual({ host: "h" });
    expect(renamed).toMatchObject({
      "meters[0].imap.user": "meters[0].imap_user",
      "meters[0].imap.host": "meters[0].imap_host",
    });
  });

  it("reads SMT files only under /share, the folder mapped into the add-on", () => {
    const smt = { id: "texas", type: "smt" };
    for (const folder of ["/share", "/share/smt", "/share/a/../smt"])
      expect(toApp({ ...options, meters: [{ ...smt, folder }] }).meters[0], folder).toMatchObject({ folder });
    for (const folder of ["/media/smt", "/share/../data", "smt", "/sharewhatever"])
      expect(() => toApp({ ...options, meters: [{ ...smt, folder }] }), folder).toThrow(
        /meters\[0\]\.folder: the app sees files under \/share only/,
      );
    expect(() => toApp({ ...options, meters: [{ ...smt, folder: "/share/smt", imap_ca: "/ssl/ca.pem" }] })).toThrow(
      /meters\[0\]\.imap_ca: the app sees files under \/share only/,
    );
  });

  it("turns on HA's long-term statistics for SMT meters unless the options turn them off", () => {
    const smt = { id: "texas", type: "smt", folder: "/share/smt" };
    const on = addonToConfig({ ...options, meters: [smt] }, ctx);
    expect(parseConfig(on.config).homeassistant.statistics).toBe(true);
    expect(on.decisions).toContain(
      "Home Assistant: long-term statistics on for the SMT meter(s) texas (homeassistant.statistics left blank)",
    );
    expect(toApp({ ...options, meters: [smt], homeassistant: { statistics: false } }).homeassistant.statistics).toBe(
      false,
    );
    const dsmr = [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }];
    expect(toApp({ ...options, meters: dsmr }).homeassistant.statistics).toBe(false);
    expect(addonToConfig({ ...options, meters: [smt], archive: { enabled: false } }, ctx).decisions).toContain(
      "archive: off in the options, so the SMT meter(s) texas read nothing (their data are kept in the archive)",
    );
  });

  it("turns loads, the peak guard, tariffs and influx from the form into the app's shape", () => {
    const home = { id: "home", type: "dsmr", port: "/dev/ttyUSB0" };
    const made = addonToConfig(
      {
        ...options,
        meters: [home, { id: "garage", type: "dsmr", tcp: "10.0.0.5:23" }],
        mqtt: { url: "mqtt://10.0.0.2:1883", min_interval_power: 1, min_interval_energy: "" },
        loads: [{ id: "boiler", meter: "home", power_w: 2000, command_topic: "relays/boiler", command_retain: true }],
        peak_guard: [{ meter: "home", limit_w: 3000 }],
        tariffs: [{ name: "home", meters: "home, garage", currency: "EUR", import: 0.3, export: 0.05, timezone: "" }],
        influx: { url: "http://127.0.0.1:8086", version: "1", database: "energy", token: "" },
      },
      ctx,
    );
    const cfg = parseConfig(made.config);
    expect(cfg.mqtt.min_interval).toMatchObject({ power: 1, energy: 10 });
    expect(cfg.loads[0]).toMatchObject({
      id: "boiler",
      power_w: 2000,
      command: { topic: "relays/boiler", retain: true, payload_on: "ON" },
    });
    expect(cfg.peak_guard).toEqual([{ meter: "home", limit_w: 3000 }]);
    expect(cfg.tariffs).toEqual({
      home: { type: "fixed", meters: ["home", "garage"], currency: "EUR", import: 0.3, export: 0.05, daily_charge: 0 },
    });
    expect(cfg.influx).toMatchObject({ url: "http://127.0.0.1:8086", version: 1, database: "energy" });
    expect(made.decisions).toEqual(
      expect.arrayContaining([
        "load advisor: 1 load(s) boiler",
        "peak guard: home ≤ 3000 W",
        "tariff home: home, garage at 0.3 EUR/kWh",
        "influx: line protocol to http://127.0.0.1:8086 (1)",
      ]),
    );
    // Empty lists and an influx without anything set are no loads, tariffs or influx at all.
    const plain = parseConfig(addonToConfig({ ...options, meters: [home] }, ctx).config);
    expect(plain).toMatchObject({ loads: [], peak_guard: [], tariffs: {} });
    expect(plain.influx).toBeUndefined();
    // Errors name what the user filled in.
    const bad = addonToConfig(
      { ...options, meters: [home], tariffs: [{ name: "t", meters: "home, nowhere", currency: "EUR", import: 0.3 }] },
      ctx,
    );
    const err = (() => {
      try {
        parseConfig(bad.config);
      } catch (e) {
        return e as { issues: string[] };
      }
      throw new Error("accepted");
    })();
    expect(err.issues.map((l) => renameIssue(l, bad.renamed))).toEqual([
      'tariffs[0].meters[1]: expected the id of a configured meter: home (got "nowhere")',
    ]);
    expect(() =>
      addonToConfig({ ...options, meters: [home], tariffs: [{ name: "Home Tariff", import: 1 }] }, ctx),
    ).toThrow(/tariffs\[0\]\.name: expected lowercase letters/);
  });

  it("merges meter2mqtt.yaml over the options: by id into listed meters and loads, key by key elsewhere", () => {
    const made = addonToConfig(
      { ...options, meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }], mqtt: { url: "mqtt://b:1883" } },
      ctx,
    );
    const yaml = {
      meters: [
        { id: "home", key: "00112233445566778899AABBCCDDEEFF" },
        { id: "capture", type: "dsmr", port: "file:capture.txt", replay_loop: true },
      ],
      mqtt: { min_interval: { power: 2 } },
      tariffs: {
        tou: {
          meters: ["home"],
          currency: "EUR",
          import: [{ from: "07:00", to: "23:00", price: 0.3 }, { price: 0.2 }],
        },
      },
    };
    const merged = mergeYaml(made.config, yaml, "/config/meter2mqtt.yaml");
    const cfg = parseConfig(merged.config);
    expect(cfg.meters).toHaveLength(2);
    expect(cfg.meters[0]).toMatchObject({ id: "home", port: "/dev/ttyUSB0", key: "00112233445566778899aabbccddeeff" });
    expect(cfg.meters[1]).toMatchObject({ id: "capture", port: "file:capture.txt", replay_loop: true });
    expect(cfg.mqtt).toMatchObject({ url: "mqtt://b:1883", min_interval: { power: 2, energy: 10 } });
    expect(cfg.tariffs.tou!.import).toHaveLength(2);
    expect(merged.renamed).toMatchObject({
      "meters[0].key": "/config/meter2mqtt.yaml: meters[0].key",
      "meters[1].replay_loop": "/config/meter2mqtt.yaml: meters[1].replay_loop",
    });
    // The same key-path errors, named after the file and its own key path.
    const wrong = mergeYaml(
      made.config,
      {
        meters: [{ id: "extra", type: "dsmr", port: "/dev/ttyUSB1", key: "xyz" }],
        tariffs: { tou: { meters: ["home"], currency: "EUR", import: [{ from: "07:10", to: "23:00", price: 0.3 }] } },
      },
      "/config/meter2mqtt.yaml",
    );
    let issues: string[] = [];
    try {
      parseConfig(wrong.config);
    } catch (e) {
      issues = (e as { issues: string[] }).issues.map((l) => renameIssue(l, { ...made.renamed, ...wrong.renamed }));
    }
    expect(issues).toEqual(
      expect.arrayContaining([
        "/config/meter2mqtt.yaml: meters[0].key: expected the 32-hex-digit key your grid operator gave you",
        expect.stringMatching(/^\/config\/meter2mqtt\.yaml: tariffs\.tou\.import\[0\]\.from: expected a local time/),
      ]),
    );
    expect(() => mergeYaml(made.config, { archive: { path: "/share/a.sqlite" } }, "m.yaml")).toThrow(
      /archive\.path: the app keeps the archive in its data folder/,
    );
    expect(() => mergeYaml(made.config, ["meters"], "m.yaml")).toThrow(/m\.yaml: expected keys like meters:/);
  });

  it("takes DOCS.md's meter2mqtt.yaml example as it stands", () => {
    const docs = read("addon/DOCS.md");
    const example = /```yaml\n([\s\S]*?)```/.exec(docs.slice(docs.indexOf("### meter2mqtt.yaml")))![1]!;
    const made = addonToConfig({ ...options, meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }] }, ctx);
    const cfg = parseConfig(mergeYaml(made.config, parseYaml(example), "meter2mqtt.yaml").config);
    expect(cfg.tariffs.home!.import).toHaveLength(2);
    expect(cfg.meters).toHaveLength(1);
  });
});
