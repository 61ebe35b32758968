import { IANAZone } from "luxon";
import { z } from "zod";
import { parsePath } from "./dynamic.js";

/**
 * Tariffs in the configuration: a top-level map of named tariffs, each naming the meters it prices. Kept out of the
 * meter entries so one contract can price several meters, and a meter type added later needs no tariff key of its own.
 *
 *   tariffs:
 *     home:
 *       meters: [home]
 *       currency: EUR
 *       import:                       # a flat price (import: 0.30), or periods by local time, first match wins
 *         - {from: "07:00", to: "23:00", days: [mon, tue, wed, thu, fri], price: 0.31}
 *         - {price: 0.22}             # the rest
 *       export: 0.07
 *       daily_charge: 0.65
 */

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/**
 * Local times on quarter hours: every interval source (15-minute SMT and SmartHub data) and the report calendar
 * (sql/007) work in quarters, and no time-of-use tariff we know of switches between them.
 */
const clock = z
  .string()
  .regex(/^(([01]\d|2[0-3]):(00|15|30|45)|24:00)$/, 'expected a local time "HH:MM" on a quarter hour, e.g. "07:00"');

const price = z.number().min(-100).max(100);

export const PeriodSchema = z
  .strictObject({
    from: clock
      .optional()
      .describe(
        'Start of the period, local time on a quarter hour ("07:00"); with `to`, or neither for the whole day.',
      ),
    to: clock
      .optional()
      .describe('End of the period (not included); before `from` runs past midnight, "24:00" is the day\'s end.'),
    days: z
      .array(z.enum(WEEKDAYS))
      .min(1)
      .optional()
      .describe("Weekdays the period applies on (mon … sun, the weekday of the moment priced); default every day."),
    price: price.describe("Per kWh, in the tariff's currency."),
  })
  .superRefine((p, ctx) => {
    if ((p.from === undefined) !== (p.to === undefined))
      ctx.addIssue({
        code: "custom",
        path: [p.from === undefined ? "from" : "to"],
        message: "missing: set both from and to, or neither (the whole day)",
      });
    else if (p.from !== undefined && p.from === p.to)
      ctx.addIssue({ code: "custom", path: ["to"], message: "expected a time other than from" });
  });

/** A flat price per kWh, or periods by local time (first match wins; together they must cover the whole week). */
export const PriceSchema = z.union([price, z.array(PeriodSchema).min(1)], {
  error: "expected a price per kWh (a number) or a list of periods ({from, to, days, price})",
});

const entityId = z
  .string()
  .regex(/^[a-z0-9_]+\.[a-z0-9_]+$/, "expected an entity id like sensor.nordpool_kwh_nl_eur_3_10_021");

/**
 * A price that changes by the hour or quarter hour (Nord Pool, ENTSO-E, Tibber, EPEX…), read from an MQTT topic or
 * a Home Assistant entity. Each quarter hour is priced with what the source gave for it; when the source falls
 * silent for longer than `stale_after_minutes`, `fallback` is used until it speaks again.
 */
export const DynamicPriceSchema = z
  .strictObject({
    mqtt: z
      .strictObject({
        topic: z
          .string()
          .min(1)
          .max(256)
          .regex(/^[^#+]+$/, "expected one topic, without the wildcards + and #")
          .describe("Topic whose messages carry the price: a number, or JSON (see `path`)."),
        path: z
          .string()
          .max(200)
          .refine((p) => parsePath(p) !== undefined, {
            message: 'expected a path like price, data.current.total, prices[0].value or "{{ value_json.price }}"',
          })
          .optional()
          .describe(
            'Where the price is in a JSON message, e.g. "price", "data.current.total" or "{{ value_json.price }}"; a list of {start, price} there is read as the prices of the coming hours.',
          ),
      })
      .optional()
      .describe("Read the price from this MQTT topic on the bridge's broker."),
    entity: entityId
      .optional()
      .describe("Read the price from this Home Assistant entity's state (e.g. a Nord Pool or ENTSO-E sensor)."),
    attribute: z
      .string()
      .max(100)
      .optional()
      .describe(
        "The entity's attribute holding the day's price list (e.g. raw_today, prices_today, prices); without it the usual ones are looked for.",
      ),
    multiply: z
      .number()
      .min(-1000)
      .max(1000)
      .default(1)
      .describe("Factor applied to the source's number, e.g. 0.001 for a price per MWh, or 1.21 to add 21 % VAT."),
    add: z
      .number()
      .min(-100)
      .max(100)
      .default(0)
      .describe("Added per kWh after multiplying: the supplier's margin, energy tax, grid fee."),
    fallback: price.describe("Price per kWh used while the source has given none for the quarter hour."),
    stale_after_minutes: z
      .number()
      .int()
      .min(15)
      .max(2880)
      .default(90)
      .describe("Minutes without a new price after which the last one is no longer trusted and `fallback` is used."),
  })
  .superRefine((d, ctx) => {
    if ((d.mqtt === undefined) === (d.entity === undefined))
      ctx.addIssue({ code: "custom", path: [], message: "expected one price source: `mqtt: {topic}` or `entity`" });
    if (d.attribute !== undefined && d.entity === undefined)
      ctx.addIssue({ code: "custom", path: ["attribute"], message: "an attribute is read from `entity` only" });
  });

/** The price of a dynamic tariff: a source, or a fixed price or periods (export is often fixed). */
const PRICE_FORMS =
  "expected a price per kWh (a number) or a list of periods ({from, to, days, price}); with type: dynamic, a price source ({mqtt: {topic}, fallback} or {entity, fallback})";

export const DynamicOrFixedSchema = z.union([DynamicPriceSchema, price, z.array(PeriodSchema).min(1)], {
  // An object can only be a price source: say what is wrong with it rather than list every form a price takes.
  error: (iss) => {
    const input = iss.input;
    const first = (iss as { errors?: { path: PropertyKey[]; message: string }[][] }).errors?.[0]?.[0];
    if (input !== null && typeof input === "object" && !Array.isArray(input) && first)
      return `${first.path.length > 0 ? `${first.path.map(String).join(".")}: ` : ""}${first.message}`;
    return PRICE_FORMS;
  },
});

export const TariffSchema = z.strictObject({
  /** `fixed` (a price or periods) or `dynamic` (a price from MQTT or Home Assistant, per quarter hour). */
  type: z
    .enum(["fixed", "dynamic"])
    .default("fixed")
    .describe(
      "`fixed`: prices in this file (a number or periods). `dynamic`: `import` (and `export`) name a price source.",
    ),
  meters: z.array(z.string().min(1)).min(1).describe("Ids of the meters this tariff prices (one tariff per meter)."),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, "expected an ISO 4217 currency code like EUR or USD")
    .describe("ISO 4217 code (EUR, USD…): the unit of the cost sensors, as Home Assistant's Energy dashboard expects."),
  timezone: z
    .string()
    .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like Europe/Amsterdam")
    .optional()
    .describe("Zone of the periods' local times and of the days; default the meter's `timezone`, else the system's."),
  import: DynamicOrFixedSchema.describe(
    "What a kWh taken from the grid costs: a number, periods by local time (first match wins, covering the whole week), or with `type: dynamic` a price source.",
  ),
  export: DynamicOrFixedSchema.optional().describe(
    "What a kWh delivered to the grid earns, in the same forms; without it, export is not priced.",
  ),
  daily_charge: z
    .number()
    .min(0)
    .default(0)
    .describe("A fixed charge per day (standing charge, grid fee), spread evenly over the day's hours."),
  /**
   * Belgium's capacity tariff: the grid operator's price per kW of peak demand per year, the minimum peak it bills
   * (2.5 kW in Flanders), and whether the month's peak or the average of the last 12 months' is billed.
   */
  capacity: z
    .strictObject({
      price_per_kw_year: z
        .number()
        .min(0)
        .max(10_000)
        .describe("The grid operator's price per kW of peak demand per year, in the tariff's currency."),
      minimum_kw: z.number().min(0).max(100).default(2.5).describe("The lowest peak billed (2.5 kW in Flanders)."),
      average: z
        .enum(["month", "12_months"])
        .default("12_months")
        .describe("`month`: each month's own peak is billed; `12_months`: the average of the last 12 months' peaks."),
    })
    .optional()
    .describe("Belgium's capacity tariff: turns the monthly peak demand into the month's capacity charge."),
});

export const TariffsSchema = z.record(
  z.string().regex(/^[a-z0-9_]{1,64}$/, "expected lowercase letters, digits and _"),
  TariffSchema,
);

export type TariffConfig = z.output<typeof TariffSchema>;
export type PriceConfig = z.output<typeof PriceSchema>;
export type DynamicPriceConfig = z.output<typeof DynamicPriceSchema>;
export type AnyPriceConfig = z.output<typeof DynamicOrFixedSchema>;

/** Whether a configured price is a dynamic source rather than a number or periods. */
export function isDynamic(p: AnyPriceConfig | undefined): p is DynamicPriceConfig {
  return typeof p === "object" && p !== null && !Array.isArray(p);
}
export type PeriodConfig = z.output<typeof PeriodSchema>;

const minutes = (t: string): number => Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5));

/** Whether a period applies at `minute` (0…1439) of a local `weekday`. */
export function periodMatches(p: PeriodConfig, weekday: Weekday, minute: number): boolean {
  if (p.days && !p.days.includes(weekday)) return false;
  if (p.from === undefined || p.to === undefined) return true;
  const from = minutes(p.from);
  const to = minutes(p.to);
  return from < to ? minute >= from && minute < to : minute >= from || minute < to;
}

/** The first quarter hour of the week (e.g. "sat 23:00") that no period covers, or undefined when all are. */
export function uncovered(periods: readonly PeriodConfig[]): string | undefined {
  for (const day of WEEKDAYS)
    for (let m = 0; m < 1440; m += 15)
      if (!periods.some((p) => periodMatches(p, day, m)))
        return `${day} ${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  return undefined;
}

type Ctx = z.RefinementCtx;

/** Checks across the configuration: meters that exist, one tariff per meter, periods covering the week. */
export function checkTariffs(
  tariffs: Record<string, TariffConfig>,
  meters: readonly { id: string }[],
  ctx: Pick<Ctx, "addIssue">,
  homeassistant: { url?: string; token?: string } = {},
): void {
  const ids = meters.map((m) => m.id);
  const priced = new Map<string, string>();
  for (const [name, t] of Object.entries(tariffs)) {
    t.meters.forEach((id, i) => {
      const path = ["tariffs", name, "meters", i];
      if (!ids.includes(id))
        ctx.addIssue({ code: "custom", path, message: `expected the id of a configured meter: ${ids.join(", ")}` });
      else if (priced.has(id))
        ctx.addIssue({ code: "custom", path, message: `meter "${id}" already has the tariff "${priced.get(id)}"` });
      priced.set(id, name);
    });
    for (const dir of ["import", "export"] as const) {
      const p = t[dir];
      if (isDynamic(p) && t.type !== "dynamic")
        ctx.addIssue({
          code: "custom",
          path: ["tariffs", name, dir],
          message: "a price source needs `type: dynamic` on the tariff",
        });
      if (t.type === "dynamic" && isDynamic(p) && p.entity && !(homeassistant.url && homeassistant.token))
        ctx.addIssue({
          code: "custom",
          path: ["tariffs", name, dir, "entity"],
          message: "a price from Home Assistant needs homeassistant.url and homeassistant.token (the app sets both)",
        });
      if (dir === "import" && t.type === "dynamic" && !isDynamic(p))
        ctx.addIssue({
          code: "custom",
          path: ["tariffs", name, dir],
          message:
            "a dynamic tariff reads its import price from a source: `{mqtt: {topic}, fallback}` or `{entity, fallback}`",
        });
      if (!Array.isArray(p)) continue;
      const gap = uncovered(p);
      if (gap)
        ctx.addIssue({
          code: "custom",
          path: ["tariffs", name, dir],
          message: `no period covers ${gap}: add a last period with only a price for the rest`,
        });
    }
  }
}
