/**
 * From the add-on's options.json to the app's configuration, as a pure function.
 *
 * The options have the app's config shape (addon/config.yaml declares them), with what the Supervisor's option UI
 * needs on top: optional fields it leaves blank, a serial device picked from a list (`port`) beside a free-text
 * `tcp` for network dongles, `baud` as text, and a meter's nested objects as flat fields (`imap_host` for
 * `imap.host`: the option UI renders two levels at most, and a meter item's fields are the second). What the add-on
 * decides for the user (the broker the Supervisor hands out, the archive under /data, Home Assistant through the
 * Supervisor's proxy, its long-term statistics for interval meters) is filled in here; everything else passes
 * through unchanged and is validated by the app's one schema afterwards.
 */
import { posix } from "node:path";
import { ConfigError } from "../config/load.js";
import { MeterSchema } from "../config/schema.js";

/** What `GET /services/mqtt` answers in `data` (the Mosquitto add-on registers it). */
export interface SupervisorMqtt {
  host: string;
  port: number;
  ssl?: boolean;
  protocol?: string;
  username?: string;
  password?: string;
  /** Slug of the add-on that provides the broker. */
  addon?: string;
}

export interface AddonContext {
  /** The add-on's persistent folder (/data): the archive goes there, so it is kept in the add-on's backups. */
  dataDir: string;
  /** The Supervisor's broker; needed only when the options leave mqtt.url blank (see `wantsSupervisorMqtt`). */
  mqttService?: SupervisorMqtt;
  /** Base URL of the Supervisor's API, `http://supervisor` inside the add-on. */
  supervisorUrl: string;
  supervisorToken?: string;
  /** Port of the bridge's web server (GET /health for the Supervisor's watchdog); default WEB_PORT. */
  webPort?: number;
}

export interface AddonConfig {
  /** The app's config input, to be validated by `parseConfig`. */
  config: Record<string, unknown>;
  /** One line per decision taken for the user, for the add-on's log. Never holds a secret. */
  decisions: string[];
  /** Key paths of the app config that came from another option (`meters[0].port` ← `meters[0].tcp`), for errors. */
  renamed: Record<string, string>;
}

export const ARCHIVE_FILE = "meter2mqtt.sqlite";

/** The one host folder mapped into the add-on (read-only, `map` in config.yaml): where its files must be. */
export const SHARE_DIR = "/share";

/**
 * Nested objects offered as flat fields `<object>_<key>`, per option section: a dict inside a meter, load or the
 * mqtt section would be a third level, which the Supervisor's option UI does not render. Folded back into the
 * object here (for meters only for the types whose schema has it); test/addon-config.test.ts checks each against
 * the app's schema and config.yaml.
 */
export const NESTED_OPTIONS: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>> = {
  meters: {
    imap: ["host", "port", "tls", "user", "password", "sender", "mailbox", "move_to", "flag", "ca"],
    share: ["port", "host", "max_clients"],
  },
  mqtt: {
    min_interval: [
      "energy",
      "power",
      "demand",
      "voltage",
      "current",
      "frequency",
      "power_factor",
      "reactive_power",
      "cost",
    ],
  },
  loads: { command: ["topic", "payload_on", "payload_off", "retain"] },
  tariffs: { capacity: ["price_per_kw_year", "minimum_kw", "average"] },
};

export const NESTED_METER_OPTIONS = NESTED_OPTIONS.meters!;

/** Flat option → key path in its section's app config: `meters.imap_host` → `meters.imap.host`. */
export const FLATTENED_OPTIONS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(NESTED_OPTIONS).flatMap(([section, objects]) =>
    Object.entries(objects).flatMap(([object, keys]) =>
      keys.map((k) => [`${section}.${object}_${k}`, `${section}.${object}.${k}`]),
    ),
  ),
);

/** Flat meter option → key path in the app's meter config: `imap_host` → `imap.host`. */
export const FLATTENED_METER_OPTIONS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(FLATTENED_OPTIONS)
    .filter(([flat]) => flat.startsWith("meters."))
    .map(([flat, path]) => [flat.slice(7), path.slice(7)]),
);

/**
 * Tariffs in the options are a list of flat-price tariffs (`name`, `meters` as "home, garage", `import`, …); the
 * app's `tariffs` is a map by name. Time-of-use periods do not fit a form: they go in the YAML file.
 */
export const TARIFF_OPTIONS = ["name", "meters", "currency", "timezone", "import", "export", "daily_charge"] as const;

/**
 * App config keys (and key paths below them) the app decides itself, never read from the options or the YAML file:
 * the archive's place in /data (kept in backups), Home Assistant through the Supervisor's proxy, and the web server
 * the Supervisor's watchdog asks (its page, when there is one, is for ingress, which has Home Assistant's login).
 */
export const ADDON_FILLED = ["archive.path", "homeassistant.url", "homeassistant.token", "web"] as const;

/** The port of config.yaml's `watchdog` URL: the bridge's GET /health, on the app's network only (no `ports:`). */
export const WEB_PORT = 8099;

/**
 * App config keys no form field offers, set in the add-on's YAML file (/config/meter2mqtt.yaml) only, each with
 * the words DOCS.md shows for it. Key paths: `[]` an item of a list, `*` any name of a map.
 */
export const YAML_ONLY: Readonly<Record<string, readonly string[]>> = {
  // file: ports (replaying a capture) are for trying things out, not something to pick in a form.
  "meters[].replay_interval_ms": ["replay_interval_ms"],
  "meters[].replay_loop": ["replay_loop"],
  // Time-of-use periods: a list of objects inside a tariff.
  "tariffs.*.import[]": ["from", "to", "days", "price"],
  "tariffs.*.export[]": ["from", "to", "days", "price"],
  // Dynamic prices: a source (an MQTT topic or a Home Assistant entity) with its settings, per direction.
  "tariffs.*.type": ["type"],
  ...Object.fromEntries(
    ["import", "export"].flatMap((dir) =>
      ["mqtt", "entity", "attribute", "multiply", "add", "fallback", "stale_after_minutes"].map((k) => [
        `tariffs.*.${dir}.${k}`,
        [k],
      ]),
    ),
  ),
};

/** The file in the add-on's own config folder (the `addon_config` map, /config inside) merged over the options. */
export const ADDON_YAML_FILE = "meter2mqtt.yaml";

/** The keys each meter type takes, from the app's schema: which types read a port, which have an `imap`. */
const METER_KEYS: Readonly<Record<string, ReadonlySet<string>>> = Object.fromEntries(
  MeterSchema.options.map((o) => [o.shape.type.value, new Set(Object.keys(o.shape))]),
);

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** The option UI stores a cleared text field as "" (or drops it); both mean "not set". */
function present(v: unknown): boolean {
  return v !== undefined && v !== null && !(typeof v === "string" && v.trim() === "");
}

function withoutBlanks(o: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (present(v)) out[k] = typeof v === "string" ? v.trim() : v;
  return out;
}

function section(options: Obj, key: string): Obj {
  const v = options[key];
  return isObject(v) ? withoutBlanks(v) : {};
}

/** True when the options leave the broker to the Supervisor (mqtt.url blank), so its mqtt service must be asked. */
export function wantsSupervisorMqtt(options: unknown): boolean {
  return !(isObject(options) && present(section(options, "mqtt").url));
}

/**
 * The passwords in options.json (the user's broker, each meter's mailbox, a SmartHub portal's password and
 * two-factor secret), as typed and as trimmed, to be registered as secrets before the first log line: they must
 * not show up even if start-up fails early.
 */
export function optionSecrets(options: unknown): string[] {
  if (!isObject(options)) return [];
  const raw = [
    isObject(options.mqtt) ? options.mqtt.password : undefined,
    isObject(options.influx) ? options.influx.password : undefined,
    isObject(options.influx) ? options.influx.token : undefined,
    ...(Array.isArray(options.meters)
      ? options.meters.flatMap((m) => (isObject(m) ? [m.imap_password, m.password, m.totp_secret, m.key, m.aad] : []))
      : []),
  ];
  return raw.filter((s): s is string => typeof s === "string").flatMap((s) => [s, s.trim()]);
}

/** Keys whose values are secrets wherever they appear in the YAML file (the app's config shape). */
const SECRET_KEY = /^(password|token|totp_secret|key|aad)$/;

/** The secrets in the add-on's YAML file, to be registered before anything from it is logged. */
export function yamlSecrets(yaml: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown, key: string): void => {
    if (Array.isArray(v)) for (const x of v) walk(x, key);
    else if (isObject(v)) for (const [k, x] of Object.entries(v)) walk(x, k);
    else if (typeof v === "string" && SECRET_KEY.test(key)) out.push(v, v.trim());
  };
  walk(yaml, "");
  return out;
}

/** The Supervisor's websocket proxy to Home Assistant Core, from the API's base URL. */
export function coreWebsocketUrl(supervisorUrl: string): string {
  const url = new URL("core/websocket", supervisorUrl.endsWith("/") ? supervisorUrl : `${supervisorUrl}/`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

const TCP = /^(?:tcp:\/\/)?([^:/\s]+):(\d{1,5})$/;

function meterOf(raw: unknown, i: number, issues: string[], decisions: string[], renamed: Obj): unknown {
  if (!isObject(raw)) return raw;
  const m = withoutBlanks(raw);
  const where = `meters[${i}]`;
  const label = `meter ${typeof m.id === "string" ? m.id : `#${i + 1}`}${typeof m.type === "string" ? ` (${m.type})` : ""}`;
  // An unknown type is the app's schema's to report; until then it is treated as one with a port.
  const takes = typeof m.type === "string" ? METER_KEYS[m.type] : undefined;
  const rest = folded(m, "meters", takes ?? new Set(), where, renamed);
  if (takes && !takes.has("port")) {
    for (const key of ["port", "tcp"])
      if (rest[key] !== undefined)
        issues.push(`${where}.${key}: ${String(m.type)} meters read no serial port or network dongle; leave it empty`);
    delete rest.port;
    delete rest.tcp;
  } else portOf(rest, where, label, issues, decisions, renamed);
  if (m.type === "smt") smtOf(rest, where, label, issues, decisions);
  if (m.type === "smarthub") smarthubOf(rest, label, decisions);
  // The option UI offers baud rates as text; the app wants the number.
  if (typeof rest.baud === "string" && /^\d+$/.test(rest.baud)) rest.baud = Number(rest.baud);
  return rest;
}

/**
 * The flat fields of a nested object (`imap_host`, `imap_port`, …) as that object (`imap: {host, port, …}`), when
 * any of them is set (and, for a meter, when its type has the object); errors then name the flat field. A meter
 * type without the object keeps the flat fields, which the app refuses by their own name.
 */
function folded(m: Obj, section: string, takes: ReadonlySet<string> | undefined, where: string, renamed: Obj): Obj {
  const rest: Obj = { ...m };
  for (const [object, keys] of Object.entries(NESTED_OPTIONS[section] ?? {})) {
    if (takes && !takes.has(object)) continue;
    const nested: Obj = {};
    for (const key of keys) {
      const flat = `${object}_${key}`;
      if (rest[flat] === undefined) continue;
      nested[key] = rest[flat];
      delete rest[flat];
    }
    if (Object.keys(nested).length === 0) continue;
    rest[object] = nested;
    for (const key of keys) renamed[`${where}.${object}.${key}`] = `${where}.${object}_${key}`;
  }
  return rest;
}

function portOf(rest: Obj, where: string, label: string, issues: string[], decisions: string[], renamed: Obj): void {
  const { tcp } = rest;
  delete rest.tcp;
  if (tcp !== undefined) {
    const match = typeof tcp === "string" ? TCP.exec(tcp) : null;
    if (rest.port !== undefined)
      issues.push(`${where}: set either port (a serial device) or tcp (a network dongle), not both`);
    else if (!match)
      issues.push(
        `${where}.tcp: expected host:port of a network P1 dongle, like 192.168.1.50:8088 (got ${JSON.stringify(tcp)})`,
      );
    else {
      rest.port = `tcp://${match[1]}:${match[2]}`;
      renamed[`${where}.port`] = `${where}.tcp`;
      decisions.push(`${label}: network dongle at ${rest.port}`);
    }
  } else if (rest.port === undefined) {
    issues.push(`${where}.port: missing; pick the serial device the meter is plugged into, or set tcp to host:port`);
  } else decisions.push(`${label}: serial device ${String(rest.port)}`);
}

/** True for a path the add-on can read: in the mapped share folder (`..` resolved). */
function inShare(path: unknown): boolean {
  if (typeof path !== "string") return false;
  const p = posix.normalize(path);
  return p === SHARE_DIR || p === `${SHARE_DIR}/` || p.startsWith(`${SHARE_DIR}/`);
}

/** Smart Meter Texas: the mailbox, the folder, or both; files only where the add-on can see them. */
function smtOf(rest: Obj, where: string, label: string, issues: string[], decisions: string[]): void {
  const imap = isObject(rest.imap) ? rest.imap : undefined;
  if (!imap && rest.folder === undefined) {
    issues.push(
      `${where}: an smt meter reads the daily email (imap_host, imap_user, imap_password, imap_sender), a folder of CSVs (folder), or both; neither is set`,
    );
    return;
  }
  const outside = (key: string, path: unknown) =>
    issues.push(
      `${where}.${key}: the app sees files under ${SHARE_DIR} only (the share folder of the Samba and File editor apps), like ${SHARE_DIR}/smt (got ${JSON.stringify(path)})`,
    );
  if (rest.folder !== undefined && !inShare(rest.folder)) outside("folder", rest.folder);
  if (imap?.ca !== undefined && !inShare(imap.ca)) outside("imap_ca", imap.ca);
  // What is missing from imap (host, user, …) the app's schema reports, under the imap_* names.
  const server = imap && [imap.host, imap.port].filter((v) => v !== undefined).join(":");
  const reads = [
    imap ? `the daily email at ${server || "?"}${imap.user === undefined ? "" : `, user ${String(imap.user)}`}` : "",
    rest.folder === undefined ? "" : `the CSVs in ${String(rest.folder)}`,
  ].filter(Boolean);
  decisions.push(`${label}: ${reads.join(" and ")}`);
}

/** SmartHub: what is missing the app's schema reports; the log says which portal and login. */
function smarthubOf(rest: Obj, label: string, decisions: string[]): void {
  const login = rest.username === undefined ? "" : `, user ${String(rest.username)}`;
  const twoFactor = rest.totp_secret === undefined ? "" : ", two-factor login";
  decisions.push(`${label}: the portal ${String(rest.base_url ?? "?")}${login}${twoFactor}`);
}

/** "SMT meter(s) texas" or "SMT and SmartHub meter(s) texas, coop", for the decisions about interval meters. */
function intervalMeters(meters: Obj[]): string {
  const kinds = [...new Set(meters.map((m) => (m.type === "smt" ? "SMT" : "SmartHub")))];
  return `${kinds.join(" and ")} meter(s) ${meters.map((m) => String(m.id)).join(", ")}`;
}

function mqttOf(options: Obj, ctx: AddonContext, issues: string[], decisions: string[], renamed: Obj): Obj {
  const mqtt = folded(section(options, "mqtt"), "mqtt", undefined, "mqtt", renamed);
  if (!wantsSupervisorMqtt(options)) {
    decisions.push(
      `MQTT: broker ${describeUrl(String(mqtt.url))} from the options${mqtt.username ? `, user ${String(mqtt.username)}` : ""}`,
    );
    return mqtt;
  }
  const service = ctx.mqttService;
  if (!service) {
    issues.push("mqtt.url: blank, and there is no MQTT service from the Supervisor to use instead");
    return mqtt;
  }
  const url = `${service.ssl ? "mqtts" : "mqtt"}://${service.host}:${service.port}`;
  const from = `the Supervisor's MQTT service${service.addon ? ` (${service.addon})` : ""}`;
  if (present(mqtt.username)) {
    decisions.push(`MQTT: broker ${url} from ${from}, user ${String(mqtt.username)} from the options`);
    return { ...mqtt, url };
  }
  if (present(mqtt.password)) decisions.push("MQTT: mqtt.password is set without mqtt.username, so it is ignored");
  const login: Obj = {};
  if (service.username) login.username = service.username;
  if (service.password) login.password = service.password;
  decisions.push(`MQTT: broker ${url} and login${service.username ? ` (user ${service.username})` : ""} from ${from}`);
  const { password: _ignored, ...rest } = mqtt;
  return { ...rest, url, ...login };
}

/**
 * A list option's items without blank fields; undefined for an empty list (the app's default is the same) and for
 * something that is not a list, which stays in the config as it is for the app's schema to refuse by name.
 */
function items(options: Obj, key: string): unknown[] | undefined {
  const v = options[key];
  if (!Array.isArray(v) || v.length === 0) return undefined;
  return v.map((x) => (isObject(x) ? withoutBlanks(x) : x));
}

/** True when the option is there but not a list: left to the app's schema. */
const notAList = (options: Obj, key: string): boolean => present(options[key]) && !Array.isArray(options[key]);

/** Loads (their `command_*` fields folded into `command`) and the peak guard's limits. */
function loadsOf(options: Obj, config: Obj, decisions: string[], renamed: Obj): void {
  const loads = items(options, "loads");
  if (loads !== undefined) {
    config.loads = loads.map((l, i) => (isObject(l) ? folded(l, "loads", undefined, `loads[${i}]`, renamed) : l));
    const names = loads.map((l) => (isObject(l) ? String(l.id) : "?"));
    decisions.push(`load advisor: ${names.length} load(s) ${names.join(", ")}`);
  } else if (!notAList(options, "loads")) delete config.loads;
  const guard = items(options, "peak_guard");
  if (guard !== undefined) {
    config.peak_guard = guard;
    const meters = guard.map((g) => (isObject(g) ? `${String(g.meter)} ≤ ${String(g.limit_w ?? 2500)} W` : "?"));
    decisions.push(`peak guard: ${meters.join(", ")}`);
  } else if (!notAList(options, "peak_guard")) delete config.peak_guard;
}

/** The form's flat-price tariffs (a list) as the app's map of tariffs by name; `meters` "home, garage" as a list. */
function tariffsOf(options: Obj, config: Obj, issues: string[], decisions: string[], renamed: Obj): void {
  const list = items(options, "tariffs");
  if (notAList(options, "tariffs")) return;
  if (list === undefined) {
    delete config.tariffs;
    return;
  }
  const tariffs: Obj = {};
  list.forEach((t, i) => {
    const where = `tariffs[${i}]`;
    if (!isObject(t)) {
      issues.push(`${where}: expected a tariff`);
      return;
    }
    const { name, meters, ...rest } = folded(t, "tariffs", undefined, where, renamed);
    if (typeof name !== "string" || !/^[a-z0-9_]{1,64}$/.test(name)) {
      issues.push(`${where}.name: expected lowercase letters, digits and _ (got ${JSON.stringify(name)})`);
      return;
    }
    if (name in tariffs) {
      issues.push(`${where}.name: a tariff named "${name}" is listed twice`);
      return;
    }
    const ids = typeof meters === "string" ? meters.split(/[\s,]+/).filter(Boolean) : meters;
    tariffs[name] = { meters: ids, ...rest };
    renamed[`tariffs.${name}`] = where;
    renamed[`tariffs.${name}.meters`] = `${where}.meters`;
    for (const key of NESTED_OPTIONS.tariffs!.capacity!)
      renamed[`tariffs.${name}.capacity.${key}`] = `${where}.capacity_${key}`;
    decisions.push(
      `tariff ${name}: ${Array.isArray(ids) ? ids.join(", ") : "?"} at ${String(rest.import)} ${String(rest.currency)}/kWh`,
    );
  });
  config.tariffs = tariffs;
}

/** The line-protocol output, when its URL is set; the form's version is text ("1", "2", "victoria"). */
function influxOf(options: Obj, config: Obj, decisions: string[]): void {
  const influx = section(options, "influx");
  if (Object.keys(influx).length === 0) {
    delete config.influx;
    return;
  }
  if (typeof influx.version === "string" && /^\d+$/.test(influx.version)) influx.version = Number(influx.version);
  config.influx = influx;
  if (typeof influx.url === "string")
    decisions.push(`influx: line protocol to ${describeUrl(influx.url)} (${String(influx.version ?? "victoria")})`);
}

function describeUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}

/**
 * Turns options.json into the app's config input. Problems the app's schema cannot name (a meter with both a
 * serial device and a dongle address, a dongle address without a port, a port for a type that reads none, an SMT
 * meter with nothing to read or a folder the add-on cannot see) throw one ConfigError listing them all.
 */
export function addonToConfig(options: unknown, ctx: AddonContext): AddonConfig {
  if (!isObject(options)) throw new ConfigError("invalid app options: expected a JSON object");
  const issues: string[] = [];
  const decisions: string[] = [];
  const renamed: Record<string, string> = {};
  const config: Obj = {};
  for (const [k, v] of Object.entries(options)) if (present(v)) config[k] = v;

  config.meters = Array.isArray(options.meters)
    ? options.meters.map((m, i) => meterOf(m, i, issues, decisions, renamed))
    : options.meters;

  config.mqtt = mqttOf(options, ctx, issues, decisions, renamed);
  loadsOf(options, config, decisions, renamed);
  tariffsOf(options, config, issues, decisions, renamed);
  influxOf(options, config, decisions);

  // Interval meters (SMT, SmartHub) keep their data in the archive and send it to HA's long-term statistics.
  const intervalObjs = (Array.isArray(config.meters) ? config.meters : []).filter(
    (m): m is Obj => isObject(m) && (m.type === "smt" || m.type === "smarthub"),
  );
  const interval = intervalObjs.map((m) => String(m.id));
  const intervalText = intervalMeters(intervalObjs);

  const archive = section(options, "archive");
  const path = `${ctx.dataDir.replace(/\/+$/, "")}/${ARCHIVE_FILE}`;
  config.archive = { ...archive, path };
  decisions.push(
    archive.enabled === false
      ? `archive: off in the options${interval.length > 0 ? `, so the ${intervalText} read nothing (their data are kept in the archive)` : ""}`
      : `archive: ${path} (kept in the app's backups)`,
  );

  const ha = section(options, "homeassistant");
  if (ctx.supervisorToken) {
    const url = coreWebsocketUrl(ctx.supervisorUrl);
    config.homeassistant = { ...ha, url, token: ctx.supervisorToken };
    decisions.push(`Home Assistant: websocket through the Supervisor's proxy (${url})`);
    if (interval.length > 0 && ha.statistics === undefined) {
      (config.homeassistant as Obj).statistics = true;
      decisions.push(
        `Home Assistant: long-term statistics on for the ${intervalText} (homeassistant.statistics left blank)`,
      );
    } else if (interval.length > 0 && ha.statistics === false)
      decisions.push(`Home Assistant: no long-term statistics for the ${intervalText} (off in the options)`);
  } else {
    config.homeassistant = ha;
    decisions.push(
      "Home Assistant: no SUPERVISOR_TOKEN, so the websocket proxy is not available (not started by the Supervisor?)",
    );
  }

  // The Supervisor's watchdog asks GET /health from outside the container, on the app's own network address; the
  // page on the same port answers the Supervisor's ingress (the sidebar panel) only.
  config.web = { port: ctx.webPort ?? WEB_PORT, host: "0.0.0.0", ingress: true };
  decisions.push(
    `web: the page in the sidebar (ingress) and GET /health for the app's watchdog, on port ${ctx.webPort ?? WEB_PORT}`,
  );

  if (issues.length > 0) throw new ConfigError(`invalid app options:\n  ${issues.join("\n  ")}`, issues);
  return { config, decisions, renamed };
}

/** List items in the YAML file that merge into the option's item with the same value of this key. */
const MERGE_KEYS: Readonly<Record<string, string>> = { meters: "id", loads: "id", peak_guard: "meter" };

/**
 * The add-on's YAML file (the app's config shape) merged over the config made from the options: objects key by
 * key, a meter or load with the id of one from the options into that one (others are added after them), anything
 * else replaced. Returns where each key the file set ended up, for errors: `meters[2].key` → the file's
 * `meters[0].key`.
 */
export function mergeYaml(config: Obj, yaml: unknown, file: string): { config: Obj; renamed: Record<string, string> } {
  if (!isObject(yaml)) throw new ConfigError(`${file}: expected keys like meters:, tariffs: or influx: at the top`);
  const renamed: Record<string, string> = {};
  const mark = (v: unknown, at: string, from: string): void => {
    renamed[at] = `${file}: ${from}`;
    if (Array.isArray(v)) for (const [i, x] of v.entries()) mark(x, `${at}[${i}]`, `${from}[${i}]`);
    else if (isObject(v)) for (const [k, x] of Object.entries(v)) mark(x, `${at}.${k}`, `${from}.${k}`);
  };
  const merge = (base: unknown, over: unknown, at: string, from: string): unknown => {
    if (isObject(base) && isObject(over)) {
      const out: Obj = { ...base };
      for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v, `${at}.${k}`, `${from}.${k}`);
      return out;
    }
    mark(over, at, from);
    return over;
  };
  const out: Obj = { ...config };
  if ("archive" in yaml && isObject(yaml.archive) && "path" in yaml.archive)
    throw new ConfigError(
      `${file}: archive.path: the app keeps the archive in its data folder, which backups hold; remove archive.path`,
      [`${file}: archive.path: set by the app; remove it`],
    );
  if ("web" in yaml)
    throw new ConfigError(`${file}: web: the app runs its web server for the watchdog itself; remove web`, [
      `${file}: web: set by the app; remove it`,
    ]);
  for (const [key, value] of Object.entries(yaml)) {
    const by = MERGE_KEYS[key];
    const base = out[key];
    if (by && Array.isArray(value) && Array.isArray(base)) {
      const list = [...base];
      value.forEach((item, i) => {
        const at =
          isObject(item) && item[by] !== undefined ? list.findIndex((b) => isObject(b) && b[by] === item[by]) : -1;
        if (at >= 0) {
          for (const [k, v] of Object.entries(item as Obj))
            list[at] = {
              ...(list[at] as Obj),
              [k]: merge((list[at] as Obj)[k], v, `${key}[${at}].${k}`, `${key}[${i}].${k}`),
            };
        } else {
          mark(item, `${key}[${list.length}]`, `${key}[${i}]`);
          list.push(item);
        }
      });
      out[key] = list;
    } else out[key] = merge(base, value, key, key);
  }
  return { config: out, renamed };
}

/**
 * An error line of the app's schema (`meters[0].imap.user: missing…`) named after what the user wrote: the option
 * (`meters[0].imap_user`) or the YAML file's key. The longest key path that starts the line wins.
 */
export function renameIssue(line: string, renamed: Readonly<Record<string, string>>): string {
  let best = "";
  for (const path of Object.keys(renamed))
    if (path.length > best.length && line.startsWith(path) && /^[:.[]/.test(line.slice(path.length))) best = path;
  return best ? renamed[best] + line.slice(best.length) : line;
}
