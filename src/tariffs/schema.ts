import { IANAZone } from "luxon";
import { z } from "zod";

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
    /** Start (inclusive) and end (exclusive) of the period, local time; `to` before `from` runs past midnight. */
    from: clock.optional(),
    to: clock.optional(),
    /** Weekdays the period applies on (the weekday of the moment priced); default every day. */
    days: z.array(z.enum(WEEKDAYS)).min(1).optional(),
    /** Per kWh, in the tariff's currency. */
    price,
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

export const TariffSchema = z.strictObject({
  /** Ids of the meters this tariff prices. */
  meters: z.array(z.string().min(1)).min(1),
  /** ISO 4217 code: the unit of the cost sensors, which Home Assistant's Energy dashboard compares with its own. */
  currency: z.string().regex(/^[A-Z]{3}$/, "expected an ISO 4217 currency code like EUR or USD"),
  /** Zone of the periods' local times; default the meter's `timezone`, else the system's. */
  timezone: z
    .string()
    .refine((tz) => IANAZone.isValidZone(tz), "expected an IANA time zone like Europe/Amsterdam")
    .optional(),
  import: PriceSchema,
  /** What delivering a kWh earns; without it, export is not priced. */
  export: PriceSchema.optional(),
  /** A fixed charge per day (standing charge, grid fee), accrued evenly over the day's hours. */
  daily_charge: z.number().min(0).default(0),
  /**
   * Belgium's capacity tariff: the grid operator's price per kW of peak demand per year, the minimum peak it bills
   * (2.5 kW in Flanders), and whether the month's peak or the average of the last 12 months' is billed.
   */
  capacity: z
    .strictObject({
      price_per_kw_year: z.number().min(0).max(10_000),
      minimum_kw: z.number().min(0).max(100).default(2.5),
      average: z.enum(["month", "12_months"]).default("12_months"),
    })
    .optional(),
});

export const TariffsSchema = z.record(
  z.string().regex(/^[a-z0-9_]{1,64}$/, "expected lowercase letters, digits and _"),
  TariffSchema,
);

export type TariffConfig = z.output<typeof TariffSchema>;
export type PriceConfig = z.output<typeof PriceSchema>;
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
