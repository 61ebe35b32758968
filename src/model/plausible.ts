/**
 * One value check for everything imported (SMT CSVs and emails, SmartHub answers, the interval pipeline behind
 * them): a value must be a finite number within what a meter can plausibly report, and a time must fall in a sane
 * window. A portal bug (`y: 1e308`, `x: 9e18`) then costs one rejected point, counted and reported, instead of
 * "Infinity kWh imported" in a report or an import that gives up on the whole file.
 */

const HOUR_MS = 3_600_000;

/** No smart meter interval data predate this. */
export const EARLIEST_TIME_MS = Date.UTC(2000, 0, 1);
/**
 * How far past the importer's clock a time may lie: an answer for today may run to the end of the co-op's day
 * (up to 14 hours ahead of UTC), and the clock of the machine may be a little behind.
 */
export const FUTURE_SLACK_MS = 2 * 24 * HOUR_MS;

export interface Range {
  min: number;
  max: number;
  unit: string;
}

/**
 * Plausible bounds per quantity. Energy and cost of an interval are per hour of the interval they cover (a day
 * may hold 24 times an hour's worth): 10,000 kWh an hour is a 10 MW connection, far above any account a
 * residential portal serves. Both may be negative (net metering: export, a credit). Registers and live values
 * are included for sources that want the same check.
 */
export const PLAUSIBLE = {
  interval_energy_kwh_per_hour: { min: -10_000, max: 10_000, unit: "kWh an hour" },
  interval_cost_per_hour: { min: -100_000, max: 100_000, unit: "an hour" },
  energy_register_kwh: { min: 0, max: 1e10, unit: "kWh" },
  power_w: { min: -1e7, max: 1e7, unit: "W" },
  voltage_v: { min: 0, max: 1000, unit: "V" },
  current_a: { min: -1e4, max: 1e4, unit: "A" },
  volume_m3: { min: 0, max: 1e9, unit: "m³" },
} as const satisfies Record<string, Range>;

export type PlausibleQuantity = keyof typeof PLAUSIBLE;

/** Why `value` is not plausible for `quantity` (per hour when `hours` is given), or undefined when it is. */
export function checkValue(quantity: PlausibleQuantity, value: unknown, hours?: number): string | undefined {
  if (typeof value !== "number") return `${describe(value)} is not a number`;
  if (!Number.isFinite(value)) return `${describe(value)} is not a finite number`;
  const r: Range = PLAUSIBLE[quantity];
  const scaled = hours !== undefined && hours > 0 ? value / hours : value;
  if (scaled < r.min || scaled > r.max)
    return `${describe(value)} is out of the plausible range (${r.min} to ${r.max} ${r.unit})`;
  return undefined;
}

/** Why `ms` is not a sane time for imported data (before 2000, or days past `now`), or undefined. */
export function checkTime(ms: unknown, now: number): string | undefined {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return `${describe(ms)} is not a time`;
  if (ms < EARLIEST_TIME_MS) return `${describeTime(ms)} is before 2000`;
  if (ms > now + FUTURE_SLACK_MS) return `${describeTime(ms)} is in the future`;
  return undefined;
}

/** Why an interval's times, energy or cost are not plausible, or undefined when they all are. */
export function checkInterval(
  i: { start: number; end: number; energyKwh: number | null; cost?: number | null },
  now: number,
): string | undefined {
  const start = checkTime(i.start, now);
  if (start) return `start ${start}`;
  const end = checkTime(i.end, now);
  if (end) return `end ${end}`;
  if (i.end <= i.start) return "end is not after start";
  const hours = (i.end - i.start) / HOUR_MS;
  if (i.energyKwh !== null) {
    const why = checkValue("interval_energy_kwh_per_hour", i.energyKwh, hours);
    if (why) return `energy ${why}`;
  }
  if (i.cost !== undefined && i.cost !== null) {
    const why = checkValue("interval_cost_per_hour", i.cost, hours);
    if (why) return `cost ${why}`;
  }
  return undefined;
}

/** A value as it goes into a rejection reason: JSON, and short. */
function describe(v: unknown): string {
  if (typeof v === "number") return String(v);
  const json = JSON.stringify(v) ?? String(v);
  return json.length > 40 ? `${json.slice(0, 40)}…` : json;
}

function describeTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}
