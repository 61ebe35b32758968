import { IANAZone } from "luxon";
import { z } from "zod";
import { InfluxSchema } from "../outputs/influx/schema.js";
import { checkTariffs, TariffsSchema } from "../tariffs/schema.js";

/**
 * The one schema for configuration: types, defaults and validation all come from here.
 * The YAML file (standalone) and /data/options.json (add-on) have this same shape.
 */

const id = z
  .string()
  .regex(/^[a-z0-9_]{1,64}$/, "expected lowercase letters, digits and _ (it is used in MQTT topics and entity ids)");

/**
 * The start of every topic the bridge publishes to (base_topic, discovery_prefix): like a meter id, plus upper case,
 * `-` and `/` between levels. A `+`, `#` or `$` there is refused by the broker, which drops the connection of a
 * client publishing to it, after every reconnect.
 */
const topicPart = z
  .string()
  .regex(
    /^(?=.{1,64}$)[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/,
    "expected letters, digits, _ and -, with / between levels (no wildcards + or #, no $, no empty level)",
  );

const seconds = z.number().min(0);

/** A 16-byte key written as 32 hex digits (spaces and a 0x prefix tolerated), normalised to lowercase. */
function hex16(what: string) {
  return z
    .string()
    .transform((v) =>
      v
        .replace(/^0x/i, "")
        .replace(/[\s:-]/g, "")
        .toLowerCase(),
    )
    .refine((v) => /^[0-9a-f]{32}$/.test(v), `expected ${what}`);
}

export const MqttSchema = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|ssl):\/\//, "expected a URL like mqtt://host:1883 or mqtts://host:8883")
    .default("mqtt://127.0.0.1:1883"),
  username: z.string().optional(),
  password: z.string().optional(),
  client_id: z.string().optional(),
  base_topic: topicPart.default("meter2mqtt"),
  discovery: z.boolean().default(true),
  discovery_prefix: topicPart.default("homeassistant"),
  /**
   * Minimum seconds between two publications of a value of each kind, so a meter that sends every
   * second does not flood HA's recorder. A value that did not change is never re-sent; kinds not
   * listed (gas, water, heat, counters, timestamps) go out as soon as they change.
   */
  min_interval: z
    .strictObject({
      energy: seconds.default(10),
      power: seconds.default(5),
      demand: seconds.default(10),
      voltage: seconds.default(30),
      current: seconds.default(10),
      frequency: seconds.default(30),
      power_factor: seconds.default(30),
      reactive_power: seconds.default(30),
      cost: seconds.default(10),
    })
    .prefault({}),
  reject_unauthorized: z.boolean().default(true),
});

export const ArchiveSchema = z.strictObject({
  enabled: z.boolean().default(true),
  path: z.string().default("./data/meter2mqtt.sqlite"),
  /** Keep a reading per meter at most every this many seconds (0 keeps every one). */
  interval: seconds.default(60),
  /** Days of raw readings kept (older ones deleted, hourly energy and reports kept forever); unset keeps all. */
  retention: z.number().int().min(1).optional(),
});

export const WebSchema = z.strictObject({
  port: z.number().int().min(1).max(65535),
  /** Loopback by default: set 0.0.0.0 (or an address of this machine) to reach it from elsewhere. */
  host: z.string().min(1).default("127.0.0.1"),
  /**
   * The add-on: the page is reached only through Home Assistant's ingress (the Supervisor, 172.30.32.2); other
   * callers get 403. GET /health stays open to the watchdog.
   */
  ingress: z.boolean().default(false),
  /**
   * A user and password for the page on a port (it can change load modes). `password_hash` is
   * `scrypt$<salt>$<key>` (base64), as README's one-line command makes it; the password itself is never stored.
   */
  auth: z
    .strictObject({
      user: z.string().min(1),
      password_hash: z
        .string()
        .regex(
          /^scrypt\$[A-Za-z0-9+/]{16,}={0,2}\$[A-Za-z0-9+/]{40,}={0,2}$/,
          "expected scrypt$<salt>$<key> (see README, the web page)",
        ),
    })
    .optional(),
  /** Browsers following the live values at once; more are turned away until one closes. */
  max_clients: z.number().int().min(1).max(100).default(10),
});

export const HomeAssistantSchema = z.strictObject({
  statistics: z.boolean().default(false),
  url: z.string().optional(),
  token: z.string().optional(),
});

const port = z
  .string()
  .min(1)
  .regex(
    /^(\/|[A-Za-z]:|COM\d|tcp:\/\/[^:/]+:\d+$|file:.+)/,
    "expected a serial device (/dev/ttyUSB0), tcp://host:port or file:path",
  );

export const ShareSchema = z.strictObject({
  port: z.number().int().min(1).max(65535),
  /** Loopback by default: set 0.0.0.0 for programs on other machines. */
  host: z.string().min(1).default("127.0.0.1"),
  max_clients: z.number().int().min(1).max(64).default(8),
});

export const DsmrMeterSchema = z.strictObject({
  id,
  name: z.string().optional(),
  type: z.literal("dsmr"),
  port,
  baud: z.union([z.literal("auto"), z.literal(115200), z.literal(9600)]).default("auto"),
  /** Zone the meter's clock runs in; its S/W flag picks the offset on the repeated autumn hour. */
  timezone: z.string().default("Europe/Amsterdam"),
  /** Without a telegram for this long the meter counts as gone and the port is reopened. */
  timeout: seconds.default(30),
  /** Largest telegram accepted, in bytes; anything longer is dropped as garbage. */
  max_telegram_bytes: z.number().int().min(256).max(65536).default(8192),
  /** file: ports only: milliseconds between replayed telegrams, and whether to start over at the end. */
  replay_interval_ms: z.number().int().min(0).default(1000),
  replay_loop: z.boolean().default(false),
  /**
   * Encrypted P1 (Luxembourg Smarty and others): the meter's AES-128-GCM key, 32 hex digits, from the grid
   * operator. Without it an encrypted meter cannot be read.
   */
  key: hex16("the 32-hex-digit key your grid operator gave you").optional(),
  /** The authentication key (AAD) some grid operators hand out with the key, also 32 hex digits. */
  aad: hex16("the 32-hex-digit authentication key your grid operator gave you").optional(),
  /** Serve the meter's raw data on a TCP port for other programs, as a P1 splitter would. */
  share: ShareSchema.optional(),
});

/**
 * HAN port (Norway, Sweden, Denmark, Austria, Slovenia): DLMS/COSEM in HDLC frames (or wired M-Bus long frames in
 * Austria), plain or encrypted. Norway and Austria: 2400 baud, even parity (Kamstrup: none); Sweden and Slovenia:
 * 115200 8N1. "auto" tries them in turn until a frame passes its checks.
 */
export const HanMeterSchema = z.strictObject({
  id,
  name: z.string().optional(),
  type: z.literal("han"),
  port,
  baud: z.union([z.literal("auto"), z.literal(2400), z.literal(9600), z.literal(115200)]).default("auto"),
  /** Default even at 2400 baud, none at the others. */
  parity: z.enum(["none", "even"]).optional(),
  /** hdlc (the RJ45 HAN port), mbus (wired M-Bus long frames, some Austrian meters), or auto: whichever comes. */
  framing: z.enum(["auto", "hdlc", "mbus"]).default("auto"),
  /** Zone of the meter's clock, for meters that send their local time without its offset from UTC. */
  timezone: z
    .string()
    .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like Europe/Oslo")
    .default("Europe/Oslo"),
  /** Without a valid frame for this long the meter counts as gone and the port is reopened. */
  timeout: seconds.default(30),
  /** file: ports only: milliseconds between replayed frames, and whether to start over at the end. */
  replay_interval_ms: z.number().int().min(0).default(1000),
  replay_loop: z.boolean().default(false),
  /** Encrypted HAN (Austria and others): the meter's AES-128-GCM key, 32 hex digits, from the grid operator. */
  key: hex16("the 32-hex-digit key your grid operator gave you").optional(),
  /** The authentication key (AAD) some grid operators hand out with the key, also 32 hex digits. */
  aad: hex16("the 32-hex-digit authentication key your grid operator gave you").optional(),
  /** Serve the meter's raw data on a TCP port for other programs, as for a P1 meter. */
  share: ShareSchema.optional(),
});

/**
 * Rainforest EMU-2 / RAVEn: the USB stick, the same stick shared over the network by ser2net or a USB server
 * (tcp://host:port), or a capture. The Eagle gateways speak another protocol.
 */
export const RavenMeterSchema = z.strictObject({
  id,
  name: z.string().optional(),
  type: z.literal("raven"),
  port: z
    .string()
    .min(1)
    .regex(
      /^(\/|[A-Za-z]:|COM\d|tcp:\/\/[^:/]+:\d+$|tcp:\/\/\[[^\]]+\]:\d+$|file:.+)/,
      "expected a serial device (/dev/ttyACM0), tcp://host:port (ser2net) or file:path",
    ),
  /** The utility meter to read when the device is paired with several (MeterMacId, 16 hex digits). */
  meter_mac: z
    .string()
    .regex(/^(0x)?[0-9a-fA-F]{16}$/, "expected 16 hex digits, e.g. 0x000781000081fd17")
    .optional(),
  /**
   * Seconds between polls of demand, summation and price; 0 relies on what the device pushes by itself.
   * A pushed value postpones the poll, so polls only fill in what the device does not send.
   */
  demand_interval: seconds.default(10),
  summation_interval: seconds.default(60),
  price_interval: seconds.default(600),
  /** Seconds to wait for the reply to one command before that command counts as failed. */
  command_timeout: z.number().min(0.1).default(5),
  /** Without a valid fragment for this long the device counts as gone and the port is reopened. */
  timeout: seconds.default(60),
  /** file: ports only: milliseconds between replayed fragments, and whether to start over at the end. */
  replay_interval_ms: z.number().int().min(0).default(1000),
  replay_loop: z.boolean().default(false),
});

/**
 * Smart Meter Texas: the daily "Energy Data 15 Min Interval" email read over IMAP, and/or CSVs downloaded from the
 * portal and dropped in a folder. The data arrive a day late; they go to the archive and HA's long-term statistics.
 */
export const SmtMeterSchema = z
  .strictObject({
    id,
    name: z.string().optional(),
    type: z.literal("smt"),
    imap: z
      .strictObject({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(993),
        /** Implicit TLS (port 993). false is cleartext, for a server on the same machine only. */
        tls: z.boolean().default(true),
        user: z.string().min(1),
        /** With 2-step verification (Gmail, Yahoo, iCloud, Outlook) an app password, not the account's. */
        password: z.string().min(1),
        /** The address Smart Meter Texas's emails come from, exactly as in their From header. */
        sender: z.string().regex(/^[^@\s]+@[^@\s]+$/, "expected an email address"),
        mailbox: z.string().min(1).default("INBOX"),
        /** After import, move the email to this folder, or add this flag (e.g. \Seen); move wins when both are set. */
        move_to: z.string().min(1).optional(),
        flag: z.string().min(1).optional(),
        /** PEM file of a CA to trust for a server with a certificate of its own. */
        ca: z.string().min(1).optional(),
      })
      .optional(),
    /** Only this ESI ID is read when the emails or files list several premises. */
    esiid: z
      .string()
      .regex(/^'?[0-9A-Za-z]{1,32}$/, "expected the ESI ID as SMT prints it")
      .transform((v) => v.replace(/^'/, ""))
      .optional(),
    /** The zone of the CSV's dates and times (Central prevailing time for every Texas meter). */
    timezone: z
      .string()
      .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like America/Chicago")
      .default("America/Chicago"),
    /** Local time (in `timezone`) of the daily check; the email usually comes around 11:00. */
    check_at: z
      .string()
      .regex(/^([01]?\d|2[0-3]):[0-5]\d$/, "expected a time HH:MM")
      .default("11:30"),
    /** After check_at, while yesterday's data is still missing, the mailbox is checked again this often. */
    recheck_minutes: z.number().int().min(5).default(60),
    /** A folder watched for CSVs downloaded from the portal (also imported with `meter2mqtt import`). */
    folder: z.string().min(1).optional(),
  })
  .superRefine((m, ctx) => {
    if (!m.imap && !m.folder)
      ctx.addIssue({ code: "custom", path: ["imap"], message: "missing: set imap (the daily email), folder, or both" });
  });

/**
 * NISC SmartHub co-op portals (https://<coop>.smarthub.coop): 15- or 60-minute usage, and cost where the co-op gives
 * it, fetched every few hours into the archive and HA's long-term statistics (src/sources/smarthub/).
 */
export const SmarthubMeterSchema = z.strictObject({
  id,
  name: z.string().optional(),
  type: z.literal("smarthub"),
  base_url: z
    .string()
    .regex(/^https?:\/\/[^/\s?#@]+\/?$/, "expected the portal's address, like https://novec.smarthub.coop"),
  /** The portal login (an email address for most co-ops). */
  username: z.string().min(1),
  password: z.string().min(1),
  /** Read from the portal (user-data) when not set: the only electric location, else the account's primary one. */
  account: z.string().min(1).optional(),
  service_location: z.string().min(1).optional(),
  /** The co-op's zone: the portal's times are its wall clock. */
  timezone: z
    .string()
    .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like America/New_York")
    .default("America/New_York"),
  /** For accounts with two-factor login: the base32 secret the authenticator app was set up with. */
  totp_secret: z
    .string()
    .regex(/^[A-Za-z2-7=\s-]{16,}$/, "expected the base32 secret shown when two-factor login was set up")
    .optional(),
  /** Fetch every this many hours; each fetch reads the last refetch_days days again, so revised data replace old. */
  fetch_every_hours: z.number().int().min(1).max(24).default(6),
  refetch_days: z.number().int().min(1).max(45).default(3),
  /** The unit of the cost statistic (the portal does not say). */
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, "expected an ISO 4217 currency code like USD")
    .default("USD"),
});

export const MeterSchema = z.discriminatedUnion("type", [
  DsmrMeterSchema,
  HanMeterSchema,
  RavenMeterSchema,
  SmtMeterSchema,
  SmarthubMeterSchema,
]);

/**
 * The load advisor (src/loads/): a load the bridge recommends switching on when the meter exports enough and
 * off when it imports, shared out by priority. Delays and minimum times in seconds, powers in W.
 */
export const LoadSchema = z.strictObject({
  id,
  name: z.string().optional(),
  /** The configured meter whose grid power decides. */
  meter: id,
  /** What the load draws when on; counted against the surplus while it is on. */
  power_w: z.number().positive(),
  /** 1 is served first; equal priorities in the order listed. */
  priority: z.number().int().min(1).default(1),
  /** Surplus (export, counting what loads already on draw) needed to switch on; default power_w. */
  on_surplus_w: z.number().min(0).optional(),
  /** Import tolerated while on before switching off. */
  off_import_w: z.number().min(0).default(0),
  /** How long the condition must hold before switching; the count starts over when it breaks. */
  on_delay: seconds.default(60),
  off_delay: seconds.default(60),
  min_on: seconds.default(0),
  min_off: seconds.default(0),
  /** Whether the quarter-hour peak guard may switch it off (or keep it off). */
  peak_guard: z.boolean().default(false),
  /** What to recommend when the meter's data stop for fail_safe_after seconds. */
  fail_safe: z.enum(["off", "hold", "on"]).default("off"),
  fail_safe_after: z.number().min(1).default(60),
  /** Publish these payloads as the recommendation changes, for a relay Home Assistant does not drive. */
  command: z
    .strictObject({
      topic: z.string().regex(/^[^#+]+$/, "expected a topic without wildcards"),
      payload_on: z.string().default("ON"),
      payload_off: z.string().default("OFF"),
      retain: z.boolean().default(false),
    })
    .optional(),
});

/** The peak guard's limit per meter: keep the projected quarter-hour under max(limit_w, this month's peak). */
export const PeakGuardSchema = z.strictObject({
  meter: id,
  /** Flanders bills at least 2.5 kW whatever the month's peak, so staying below that saves nothing. */
  limit_w: z.number().min(0).default(2500),
});

export const ConfigSchema = z
  .strictObject({
    log_level: z.enum(["debug", "info", "warn", "error"]).default("info"),
    mqtt: MqttSchema.prefault({}),
    archive: ArchiveSchema.prefault({}),
    homeassistant: HomeAssistantSchema.prefault({}),
    meters: z.array(MeterSchema).min(1, "expected at least one meter"),
    loads: z.array(LoadSchema).default([]),
    peak_guard: z.array(PeakGuardSchema).default([]),
    /** Prices per kWh and daily charges, by name; each names its meters (src/tariffs/schema.ts). */
    tariffs: TariffsSchema.default({}),
    /** Line protocol to InfluxDB or VictoriaMetrics (src/outputs/influx/). */
    influx: InfluxSchema.optional(),
    /** The bridge's web server: `GET /health` (200 or 503) for Docker, systemd and the app's watchdog. */
    web: WebSchema.optional(),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.meters.forEach((m, i) => {
      if (seen.has(m.id))
        ctx.addIssue({ code: "custom", path: ["meters", i, "id"], message: `duplicate meter id "${m.id}"` });
      seen.add(m.id);
    });
    // The load advisor needs grid power as it happens; interval meters deliver yesterday's.
    const live = cfg.meters.filter((m) => m.type === "dsmr" || m.type === "han" || m.type === "raven").map((m) => m.id);
    const meters = live.join(", ") || "none configured";
    const loads = new Set<string>();
    cfg.loads.forEach((l, i) => {
      if (loads.has(l.id)) ctx.addIssue({ code: "custom", path: ["loads", i, "id"], message: "duplicate load id" });
      loads.add(l.id);
      if (!live.includes(l.meter))
        ctx.addIssue({
          code: "custom",
          path: ["loads", i, "meter"],
          message: `expected the id of a live meter: ${meters}`,
        });
    });
    const guarded = new Set<string>();
    cfg.peak_guard.forEach((g, i) => {
      if (!live.includes(g.meter))
        ctx.addIssue({
          code: "custom",
          path: ["peak_guard", i, "meter"],
          message: `expected the id of a live meter: ${meters}`,
        });
      else if (guarded.has(g.meter))
        ctx.addIssue({ code: "custom", path: ["peak_guard", i, "meter"], message: "meter listed twice" });
      guarded.add(g.meter);
    });
    checkTariffs(cfg.tariffs, cfg.meters, ctx);
  });

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
export type MeterConfig = Config["meters"][number];
export type DsmrMeterConfig = z.output<typeof DsmrMeterSchema>;
export type HanMeterConfig = z.output<typeof HanMeterSchema>;
export type RavenMeterConfig = z.output<typeof RavenMeterSchema>;
export type SmtMeterConfig = z.output<typeof SmtMeterSchema>;
export type SmarthubMeterConfig = z.output<typeof SmarthubMeterSchema>;
export type MqttConfig = Config["mqtt"];
export type ArchiveConfig = Config["archive"];
export type LoadConfig = Config["loads"][number];

/** Paths of values that must never be printed. */
export function secretsOf(cfg: Config): string[] {
  return [
    cfg.mqtt.password,
    cfg.homeassistant.token,
    cfg.influx?.token,
    cfg.influx?.password,
    ...cfg.meters.map((m) => (m.type === "smt" ? m.imap?.password : undefined)),
    ...cfg.meters.flatMap((m) => (m.type === "smarthub" ? [m.password, m.totp_secret] : [])),
    ...cfg.meters.flatMap((m) => (m.type === "dsmr" || m.type === "han" ? [m.key, m.aad] : [])),
  ].filter((s): s is string => typeof s === "string");
}
