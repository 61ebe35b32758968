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
 * A meter's nested objects, offered as flat fields `<object>_<key>` because a dict inside a meter item would be a
 * third level, which the Supervisor's option UI does not render. Folded back into the object here, for the meter
 * types whose schema has it; test/addon-config.test.ts checks each against the app's schema and config.yaml.
 */
export const NESTED_METER_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  imap: ["host", "port", "tls", "user", "password", "sender", "mailbox", "move_to", "flag", "ca"],
};

/** Flat meter option → key path in the app's meter config: `imap_host` → `imap.host`. */
export const FLATTENED_METER_OPTIONS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(NESTED_METER_OPTIONS).flatMap(([object, keys]) =>
    keys.map((k) => [`${object}_${k}`, `${object}.${k}`]),
  ),
);

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
    ...(Array.isArray(options.meters)
      ? options.meters.flatMap((m) => (isObject(m) ? [m.imap_password, m.password, m.totp_secret] : []))
      : []),
  ];
  return raw.filter((s): s is string => typeof s === "string").flatMap((s) => [s, s.trim()]);
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
  const rest = folded(m, takes, where, renamed);
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
 * the meter's type has it and any of them is set; errors then name the flat field. Other types keep the flat
 * fields, which the app refuses by their own name.
 */
function folded(m: Obj, takes: ReadonlySet<string> | undefined, where: string, renamed: Obj): Obj {
  const rest: Obj = { ...m };
  for (const [object, keys] of Object.entries(NESTED_METER_OPTIONS)) {
    if (!takes?.has(object)) continue;
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
      `${where}.${key}: the add-on sees files under ${SHARE_DIR} only (the share folder of the Samba and File editor add-ons), like ${SHARE_DIR}/smt (got ${JSON.stringify(path)})`,
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

function mqttOf(options: Obj, ctx: AddonContext, issues: string[], decisions: string[]): Obj {
  const mqtt = section(options, "mqtt");
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

function describeUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}

/**
 * Turns options.json into the app's config input. Problems the app's schema cannot name (a meter with both a
 * serial device and a dongle address, a dongle address without a port, a port for a type that reads none, an SMT
 * meter with nothing to read or a folder the add-on cannot see) throw one ConfigError listing them all.
 */
export function addonToConfig(options: unknown, ctx: AddonContext): AddonConfig {
  if (!isObject(options)) throw new ConfigError("invalid add-on options: expected a JSON object");
  const issues: string[] = [];
  const decisions: string[] = [];
  const renamed: Record<string, string> = {};
  const config: Obj = {};
  for (const [k, v] of Object.entries(options)) if (present(v)) config[k] = v;

  config.meters = Array.isArray(options.meters)
    ? options.meters.map((m, i) => meterOf(m, i, issues, decisions, renamed))
    : options.meters;

  config.mqtt = mqttOf(options, ctx, issues, decisions);

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
      : `archive: ${path} (kept in the add-on's backups)`,
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

  if (issues.length > 0) throw new ConfigError(`invalid add-on options:\n  ${issues.join("\n  ")}`, issues);
  return { config, decisions, renamed };
}
