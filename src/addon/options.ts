/**
 * From the add-on's options.json to the app's configuration, as a pure function.
 *
 * The options have the app's config shape (addon/config.yaml declares them), with what the Supervisor's option UI
 * needs on top: optional fields it leaves blank, a serial device picked from a list (`port`) beside a free-text
 * `tcp` for network dongles, and `baud` as text. What the add-on decides for the user (the broker the Supervisor
 * hands out, the archive under /data, Home Assistant through the Supervisor's proxy) is filled in here; everything
 * else passes through unchanged and is validated by the app's one schema afterwards.
 */
import { ConfigError } from "../config/load.js";

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
  const { tcp, ...rest } = m;
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
  // The option UI offers baud rates as text; the app wants the number.
  if (typeof rest.baud === "string" && /^\d+$/.test(rest.baud)) rest.baud = Number(rest.baud);
  return rest;
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
 * serial device and a dongle address, a dongle address without a port) throw one ConfigError listing them all.
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

  const archive = section(options, "archive");
  const path = `${ctx.dataDir.replace(/\/+$/, "")}/${ARCHIVE_FILE}`;
  config.archive = { ...archive, path };
  decisions.push(
    archive.enabled === false ? "archive: off in the options" : `archive: ${path} (kept in the add-on's backups)`,
  );

  const ha = section(options, "homeassistant");
  if (ctx.supervisorToken) {
    const url = coreWebsocketUrl(ctx.supervisorUrl);
    config.homeassistant = { ...ha, url, token: ctx.supervisorToken };
    decisions.push(`Home Assistant: websocket through the Supervisor's proxy (${url})`);
  } else {
    config.homeassistant = ha;
    decisions.push(
      "Home Assistant: no SUPERVISOR_TOKEN, so the websocket proxy is not available (not started by the Supervisor?)",
    );
  }

  if (issues.length > 0) throw new ConfigError(`invalid add-on options:\n  ${issues.join("\n  ")}`, issues);
  return { config, decisions, renamed };
}
