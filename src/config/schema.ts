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
    .default("mqtt://127.0.0.1:1883")
    .describe("The broker: mqtt://host:1883, or mqtts://host:8883 for TLS (also ws://, wss://)."),
  username: z.string().optional().describe("The broker login, when it asks for one."),
  password: z.string().optional().describe("Its password; never logged."),
  client_id: z.string().optional().describe("The MQTT client id; default one made from the host name."),
  base_topic: topicPart
    .default("meter2mqtt")
    .describe(
      "The start of every state topic (<base_topic>/<meter>/state): letters, digits, _ and -, with / between levels.",
    ),
  discovery: z
    .boolean()
    .default(true)
    .describe("Announce the sensors to Home Assistant (MQTT discovery); false publishes the values only."),
  discovery_prefix: topicPart
    .default("homeassistant")
    .describe("Home Assistant's discovery prefix, as set in its MQTT integration."),
  min_interval: z
    .strictObject({
      energy: seconds.default(10).describe("Energy registers (kWh), at most every this many seconds."),
      power: seconds.default(5).describe("Power (W)."),
      demand: seconds.default(10).describe("Quarter-hour demand and peaks."),
      voltage: seconds.default(30).describe("Voltage (V)."),
      current: seconds.default(10).describe("Current (A)."),
      frequency: seconds.default(30).describe("Frequency (Hz)."),
      power_factor: seconds.default(30).describe("Power factor."),
      reactive_power: seconds.default(30).describe("Reactive power (var)."),
      cost: seconds.default(10).describe("Cost totals and the price, with a tariff."),
    })
    .prefault({})
    .describe(
      "Seconds between two publications of a value of each kind, so a meter that sends every second does not flood Home Assistant's recorder. A value that did not change is never sent again; kinds not listed (gas, water, heat, counters, times) go out as soon as they change.",
    ),
  reject_unauthorized: z
    .boolean()
    .default(true)
    .describe("Check the broker's TLS certificate; false accepts a self-signed one."),
});

export const ArchiveSchema = z.strictObject({
  enabled: z.boolean().default(true).describe("Keep the SQLite archive; interval meters (SMT, SmartHub) need it."),
  path: z
    .string()
    .default("./data/meter2mqtt.sqlite")
    .describe("The archive file, relative to the working directory; its folder is created."),
  interval: seconds
    .default(60)
    .describe("Keep a reading per meter at most every this many seconds, by the meter's clock (0 keeps every one)."),
  retention: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      "Days of raw readings kept; older ones are deleted every 6 hours (hourly energy, intervals and reports are kept for ever). Unset keeps all.",
    ),
});

export const WebSchema = z.strictObject({
  port: z.number().int().min(1).max(65535).describe("The port of the bridge's page and of GET /health."),
  host: z
    .string()
    .min(1)
    .default("127.0.0.1")
    .describe("The address to listen on: this machine only by default; 0.0.0.0 to reach it from your network."),
  // The app: only the Supervisor (172.30.32.2) reaches the page; GET /health stays open to the watchdog.
  ingress: z
    .boolean()
    .default(false)
    .describe("Answer only Home Assistant's ingress (the app sets it); others get 403, except GET /health."),
  auth: z
    .strictObject({
      user: z.string().min(1).describe("The user name the browser asks for."),
      password_hash: z
        .string()
        .regex(
          /^scrypt\$[A-Za-z0-9+/]{16,}={0,2}\$[A-Za-z0-9+/]{40,}={0,2}$/,
          "expected scrypt$<salt>$<key> (see docs/web-page.md)",
        )
        .describe(
          "scrypt$<salt>$<key> (base64), made by the one-line command in docs/web-page.md; the password itself is never stored.",
        ),
    })
    .optional()
    .describe("A user and password for the page (it can switch your loads' modes); recommended beyond this machine."),
  max_clients: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(10)
    .describe("Browsers following the live values at once; more are turned away until one closes."),
});

export const HomeAssistantSchema = z.strictObject({
  statistics: z
    .boolean()
    .default(false)
    .describe("Send the hourly energy (and cost) of SMT and SmartHub meters to Home Assistant's long-term statistics."),
  url: z
    .string()
    .optional()
    .describe("Home Assistant's websocket API, like ws://homeassistant.local:8123/api/websocket."),
  token: z.string().optional().describe("A long-lived access token (your Home Assistant profile page); never logged."),
});

const port = z
  .string()
  .min(1)
  .regex(
    /^(\/|[A-Za-z]:|COM\d|tcp:\/\/[^:/]+:\d+$|file:.+)/,
    "expected a serial device (/dev/ttyUSB0), tcp://host:port or file:path",
  );

export const ShareSchema = z.strictObject({
  port: z.number().int().min(1).max(65535).describe("The TCP port other programs read the raw data from."),
  host: z
    .string()
    .min(1)
    .default("127.0.0.1")
    .describe("The address to listen on: this machine only by default; 0.0.0.0 for programs on other machines."),
  max_clients: z.number().int().min(1).max(64).default(8).describe("Readers at once."),
});

const meterId = () =>
  id.describe("Lowercase letters, digits and _: used in MQTT topics and entity ids (sensor.<id>_energy_import_kwh).");
const meterName = () => z.string().optional().describe("The device name in Home Assistant; default the id.");
const replayInterval = (what: string) =>
  z.number().int().min(0).default(1000).describe(`file: ports only: milliseconds between replayed ${what}.`);
const replayLoop = () => z.boolean().default(false).describe("file: ports only: start over at the end of the capture.");
const key = () =>
  hex16("the 32-hex-digit key your grid operator gave you")
    .optional()
    .describe("Encrypted ports: the meter's AES-128-GCM key, 32 hex digits, from your grid operator; never logged.");
const aad = () =>
  hex16("the 32-hex-digit authentication key your grid operator gave you")
    .optional()
    .describe("The authentication key (AAD) some grid operators hand out with the key, also 32 hex digits.");
const share = () =>
  ShareSchema.optional().describe("Serve the port's raw data on a TCP port to other programs, as a P1 splitter would.");
const portDescription =
  "A serial device (/dev/ttyUSB0), tcp://host:port for a network dongle or ser2net, or file:capture for a capture.";

export const DsmrMeterSchema = z
  .strictObject({
    id: meterId(),
    name: meterName(),
    type: z.literal("dsmr").describe("dsmr: a P1 port (DSMR 2.2–5, Fluvius, Luxembourg Smarty, ESMR and others)."),
    port: port.describe(portDescription),
    baud: z
      .union([z.literal("auto"), z.literal(115200), z.literal(9600)])
      .default("auto")
      .describe(
        "115200 (DSMR 4/5, 8N1), 9600 (DSMR 2.2/3, 7E1), or auto: switches between them until a telegram passes its CRC.",
      ),
    timezone: z
      .string()
      .default("Europe/Amsterdam")
      .describe("The zone the meter's clock runs in; its S/W flag picks the offset on the repeated autumn hour."),
    timeout: seconds
      .default(30)
      .describe("Seconds without a valid telegram before the meter counts as gone and the port is reopened."),
    max_telegram_bytes: z
      .number()
      .int()
      .min(256)
      .max(65536)
      .default(8192)
      .describe("Largest telegram accepted, in bytes; anything longer is dropped as garbage."),
    replay_interval_ms: replayInterval("telegrams"),
    replay_loop: replayLoop(),
    key: key(),
    aad: aad(),
    share: share(),
  })
  .describe("A DSMR / P1 meter.");

export const HanMeterSchema = z
  .strictObject({
    id: meterId(),
    name: meterName(),
    type: z
      .literal("han")
      .describe(
        "han: a HAN port speaking DLMS/COSEM (Norway, Sweden, Denmark, Austria, Slovenia), plain or encrypted.",
      ),
    port: port.describe(portDescription),
    baud: z
      .union([z.literal("auto"), z.literal(2400), z.literal(9600), z.literal(115200)])
      .default("auto")
      .describe(
        "Norway and Austria 2400, Sweden and Slovenia 115200; auto tries them in turn until a frame passes its checks.",
      ),
    parity: z
      .enum(["none", "even"])
      .optional()
      .describe("Default even at 2400 baud (Kamstrup: set none), none at the others."),
    framing: z
      .enum(["auto", "hdlc", "mbus"])
      .default("auto")
      .describe(
        "hdlc (the RJ45 HAN port), mbus (wired M-Bus long frames, some Austrian meters), or auto: whichever comes.",
      ),
    timezone: z
      .string()
      .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like Europe/Oslo")
      .default("Europe/Oslo")
      .describe("The zone of the meter's clock, for meters that send their local time without its offset from UTC."),
    timeout: seconds
      .default(30)
      .describe("Seconds without a valid frame before the meter counts as gone and the port is reopened."),
    replay_interval_ms: replayInterval("frames"),
    replay_loop: replayLoop(),
    key: key(),
    aad: aad(),
    share: share(),
  })
  .describe("A HAN port meter (DLMS/COSEM in HDLC frames, or wired M-Bus long frames in Austria).");

// The Eagle gateways speak another protocol.
export const RavenMeterSchema = z
  .strictObject({
    id: meterId(),
    name: meterName(),
    type: z.literal("raven").describe("raven: a Rainforest EMU-2 or RAVEn USB stick paired with a utility meter."),
    port: z
      .string()
      .min(1)
      .regex(
        /^(\/|[A-Za-z]:|COM\d|tcp:\/\/[^:/]+:\d+$|tcp:\/\/\[[^\]]+\]:\d+$|file:.+)/,
        "expected a serial device (/dev/ttyACM0), tcp://host:port (ser2net) or file:path",
      )
      .describe("The device (/dev/ttyACM0), tcp://host:port for the stick shared by ser2net, or file:capture.xml."),
    meter_mac: z
      .string()
      .regex(/^(0x)?[0-9a-fA-F]{16}$/, "expected 16 hex digits, e.g. 0x000781000081fd17")
      .optional()
      .describe("Only for a device paired with several meters: the MeterMacId of the one to read, 16 hex digits."),
    demand_interval: seconds
      .default(10)
      .describe(
        "Seconds between polls of demand; 0 relies on what the device pushes by itself (a pushed value postpones the poll).",
      ),
    summation_interval: seconds.default(60).describe("Seconds between polls of the energy registers; 0: pushed only."),
    price_interval: seconds.default(600).describe("Seconds between polls of the price; 0: pushed only."),
    command_timeout: z
      .number()
      .min(0.1)
      .default(5)
      .describe("Seconds to wait for the reply to one command before that command counts as failed."),
    timeout: seconds
      .default(60)
      .describe("Seconds without a valid fragment before the device counts as gone and the port is reopened."),
    replay_interval_ms: replayInterval("fragments"),
    replay_loop: replayLoop(),
  })
  .describe("A Rainforest EMU-2 / RAVEn device.");

export const SmtMeterSchema = z
  .strictObject({
    id: meterId(),
    name: meterName(),
    type: z
      .literal("smt")
      .describe("smt: Smart Meter Texas, the daily 15-minute interval email and/or CSVs from its portal."),
    imap: z
      .strictObject({
        host: z.string().min(1).describe("The IMAP server of the mailbox SMT's email goes to, like imap.gmail.com."),
        port: z.number().int().min(1).max(65535).default(993).describe("The IMAP port."),
        tls: z
          .boolean()
          .default(true)
          .describe("Implicit TLS (port 993); false is cleartext, for a mail server on the same machine only."),
        user: z.string().min(1).describe("The mailbox's login, usually the email address."),
        password: z
          .string()
          .min(1)
          .describe("With 2-step verification (Gmail, Yahoo, iCloud, Outlook) an app password; never logged."),
        sender: z
          .string()
          .regex(/^[^@\s]+@[^@\s]+$/, "expected an email address")
          .describe("The address Smart Meter Texas's emails come from, exactly as in their From line."),
        mailbox: z.string().min(1).default("INBOX").describe("The mail folder the emails arrive in."),
        move_to: z
          .string()
          .min(1)
          .optional()
          .describe("After import, move the email to this mail folder (wins over flag when both are set)."),
        flag: z.string().min(1).optional().describe("After import, add this flag to the email (e.g. \\Seen)."),
        ca: z
          .string()
          .min(1)
          .optional()
          .describe("PEM file of a CA to trust, for a mail server with a certificate of its own."),
      })
      .optional()
      .describe("The mailbox SMT's daily email goes to."),
    esiid: z
      .string()
      .regex(/^'?[0-9A-Za-z]{1,32}$/, "expected the ESI ID as SMT prints it")
      .transform((v) => v.replace(/^'/, ""))
      .optional()
      .describe("Only this ESI ID is read when the emails or files list several premises; quote it in YAML."),
    timezone: z
      .string()
      .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like America/Chicago")
      .default("America/Chicago")
      .describe("The zone of the CSV's dates and times (Central prevailing time for every Texas meter)."),
    check_at: z
      .string()
      .regex(/^([01]?\d|2[0-3]):[0-5]\d$/, "expected a time HH:MM")
      .default("11:30")
      .describe("Local time (in timezone) of the daily check; the email usually comes around 11:00."),
    recheck_minutes: z
      .number()
      .int()
      .min(5)
      .default(60)
      .describe("After check_at, while yesterday's data are still missing, check the mailbox again this often."),
    folder: z
      .string()
      .min(1)
      .optional()
      .describe("A folder watched for CSVs downloaded from the portal (imported as they appear)."),
  })
  .superRefine((m, ctx) => {
    if (!m.imap && !m.folder)
      ctx.addIssue({ code: "custom", path: ["imap"], message: "missing: set imap (the daily email), folder, or both" });
  })
  .describe("A Smart Meter Texas meter: set imap, folder, or both.");

// Fetched by src/sources/smarthub/.
export const SmarthubMeterSchema = z
  .strictObject({
    id: meterId(),
    name: meterName(),
    type: z.literal("smarthub").describe("smarthub: a co-op's NISC SmartHub portal (https://<co-op>.smarthub.coop)."),
    base_url: z
      .string()
      .regex(/^https?:\/\/[^/\s?#@]+\/?$/, "expected the portal's address, like https://novec.smarthub.coop")
      .describe("The portal's address, without a path, like https://novec.smarthub.coop."),
    username: z.string().min(1).describe("The portal login (an email address for most co-ops)."),
    password: z.string().min(1).describe("The portal password; never logged."),
    account: z
      .string()
      .min(1)
      .optional()
      .describe("The account to read; default the one the portal's user data names."),
    service_location: z
      .string()
      .min(1)
      .optional()
      .describe("The service location to read; default the only electric one, else the account's primary one."),
    timezone: z
      .string()
      .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like America/New_York")
      .default("America/New_York")
      .describe("The co-op's zone: the portal's times are its wall clock."),
    totp_secret: z
      .string()
      .regex(/^[A-Za-z2-7=\s-]{16,}$/, "expected the base32 secret shown when two-factor login was set up")
      .optional()
      .describe("Only with two-factor login: the base32 secret the authenticator app was set up with, not a code."),
    fetch_every_hours: z.number().int().min(1).max(24).default(6).describe("Hours between two fetches."),
    refetch_days: z
      .number()
      .int()
      .min(1)
      .max(45)
      .default(3)
      .describe("Days read again at every fetch, so data the co-op revises replace what was stored."),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, "expected an ISO 4217 currency code like USD")
      .default("USD")
      .describe("The unit of the cost statistic (the portal does not say)."),
  })
  .describe("A NISC SmartHub co-op portal: usage, and cost where the co-op gives it, fetched every few hours.");

export const MeterSchema = z.discriminatedUnion("type", [
  DsmrMeterSchema,
  HanMeterSchema,
  RavenMeterSchema,
  SmtMeterSchema,
  SmarthubMeterSchema,
]);

export const LoadSchema = z
  .strictObject({
    id: id.describe("The load's id: entities are binary_sensor.load_<id>_recommended and so on."),
    name: z.string().optional().describe("Its display name in Home Assistant; default the id."),
    meter: id.describe("The id of the live meter (dsmr, han, raven) whose grid power decides."),
    power_w: z.number().positive().describe("What the load draws when on (W); counted as consumed while it is on."),
    priority: z.number().int().min(1).default(1).describe("1 is served first; equal priorities in the order listed."),
    on_surplus_w: z
      .number()
      .min(0)
      .optional()
      .describe("Export needed to switch on (W), counting what loads already on draw; default power_w."),
    off_import_w: z
      .number()
      .min(0)
      .default(0)
      .describe("Import tolerated while on before switching off (W); between the two nothing changes."),
    on_delay: seconds
      .default(60)
      .describe("Seconds the surplus must last before switching on; the count starts over when it breaks."),
    off_delay: seconds.default(60).describe("Seconds the import must last before switching off."),
    min_on: seconds.default(0).describe("Seconds the load stays on before it may switch off."),
    min_off: seconds.default(0).describe("Seconds the load stays off before it may switch on."),
    peak_guard: z
      .boolean()
      .default(false)
      .describe("Whether the quarter-hour peak guard may switch it off (or keep it off)."),
    fail_safe: z
      .enum(["off", "hold", "on"])
      .default("off")
      .describe("What to recommend when the meter's data stop for fail_safe_after seconds."),
    fail_safe_after: z.number().min(1).default(60).describe("Seconds without grid power before the fail-safe."),
    command: z
      .strictObject({
        topic: z
          .string()
          .regex(/^[^#+]+$/, "expected a topic without wildcards")
          .describe("The MQTT topic to publish to."),
        payload_on: z.string().default("ON").describe("The payload for on."),
        payload_off: z.string().default("OFF").describe("The payload for off."),
        retain: z.boolean().default(false).describe("Publish retained."),
      })
      .optional()
      .describe(
        "Publish the recommendation to a topic as it changes (and after each reconnect), for a relay Home Assistant does not drive.",
      ),
  })
  .describe("A load the bridge recommends switching on when the meter exports enough and off when it imports.");

export const PeakGuardSchema = z
  .strictObject({
    meter: id.describe("The id of a live meter."),
    limit_w: z
      .number()
      .min(0)
      .default(2500)
      .describe(
        "Keep the projected quarter-hour under max(limit_w, this month's peak); Flanders bills at least 2.5 kW.",
      ),
  })
  .describe("The peak guard of one meter.");

export const ConfigSchema = z
  .strictObject({
    log_level: z
      .enum(["debug", "info", "warn", "error"])
      .default("info")
      .describe("debug adds every telegram and publication; passwords and keys never appear."),
    mqtt: MqttSchema.prefault({}).describe("The MQTT broker and what is published."),
    archive: ArchiveSchema.prefault({}).describe("The SQLite archive of every reading."),
    homeassistant: HomeAssistantSchema.prefault({}).describe(
      "Home Assistant's websocket API, for the long-term statistics of interval meters.",
    ),
    meters: z
      .array(MeterSchema)
      .min(1, "expected at least one meter")
      .describe("The meters, one entry each; type picks the family and the keys it takes."),
    loads: z.array(LoadSchema).default([]).describe("The load advisor's loads."),
    peak_guard: z
      .array(PeakGuardSchema)
      .default([])
      .describe("Meters whose quarter-hour peak the load advisor keeps down (Belgium's capacity tariff)."),
    tariffs: TariffsSchema.default({}).describe("Prices per kWh and daily charges, by name; each names its meters."),
    influx: InfluxSchema.optional().describe("Every reading also as line protocol to InfluxDB or VictoriaMetrics."),
    web: WebSchema.optional().describe(
      "The bridge's page and GET /health (200 or 503) for Docker, systemd and the app's watchdog.",
    ),
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
    checkTariffs(cfg.tariffs, cfg.meters, ctx, cfg.homeassistant);
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
