import { z } from "zod";

/**
 * The one schema for configuration: types, defaults and validation all come from here.
 * The YAML file (standalone) and /data/options.json (add-on) have this same shape.
 */

const id = z
  .string()
  .regex(/^[a-z0-9_]{1,64}$/, "expected lowercase letters, digits and _ (it is used in MQTT topics and entity ids)");

const seconds = z.number().min(0);

export const MqttSchema = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|ssl):\/\//, "expected a URL like mqtt://host:1883 or mqtts://host:8883")
    .default("mqtt://127.0.0.1:1883"),
  username: z.string().optional(),
  password: z.string().optional(),
  client_id: z.string().optional(),
  base_topic: z
    .string()
    .regex(/^[^#+]+$/, "expected a topic without wildcards")
    .default("meter2mqtt"),
  discovery: z.boolean().default(true),
  discovery_prefix: z.string().default("homeassistant"),
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
    })
    .prefault({}),
  reject_unauthorized: z.boolean().default(true),
});

export const ArchiveSchema = z.strictObject({
  enabled: z.boolean().default(true),
  path: z.string().default("./data/meter2mqtt.sqlite"),
  /** Keep a reading per meter at most every this many seconds (0 keeps every one). */
  interval: seconds.default(60),
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
});

/** Rainforest EMU-2 / RAVEn: USB serial only (no TCP; the Eagle gateways speak another protocol), or a capture. */
export const RavenMeterSchema = z.strictObject({
  id,
  name: z.string().optional(),
  type: z.literal("raven"),
  port: z
    .string()
    .min(1)
    .regex(/^(\/|[A-Za-z]:|COM\d|file:.+)/, "expected a serial device (/dev/ttyACM0) or file:path"),
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

export const MeterSchema = z.discriminatedUnion("type", [DsmrMeterSchema, RavenMeterSchema]);

export const ConfigSchema = z
  .strictObject({
    log_level: z.enum(["debug", "info", "warn", "error"]).default("info"),
    mqtt: MqttSchema.prefault({}),
    archive: ArchiveSchema.prefault({}),
    homeassistant: HomeAssistantSchema.prefault({}),
    meters: z.array(MeterSchema).min(1, "expected at least one meter"),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.meters.forEach((m, i) => {
      if (seen.has(m.id))
        ctx.addIssue({ code: "custom", path: ["meters", i, "id"], message: `duplicate meter id "${m.id}"` });
      seen.add(m.id);
    });
  });

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
export type MeterConfig = Config["meters"][number];
export type DsmrMeterConfig = z.output<typeof DsmrMeterSchema>;
export type RavenMeterConfig = z.output<typeof RavenMeterSchema>;
export type MqttConfig = Config["mqtt"];
export type ArchiveConfig = Config["archive"];

/** Paths of values that must never be printed. */
export function secretsOf(cfg: Config): string[] {
  return [cfg.mqtt.password, cfg.homeassistant.token].filter((s): s is string => typeof s === "string");
}
