import type { IANAZone } from "luxon";
import { localMidnight, zoneOf } from "../intervals/time.js";
import type { PriceFeed } from "./dynamic.js";
import {
  type AnyPriceConfig,
  isDynamic,
  type PeriodConfig,
  periodMatches,
  type TariffConfig,
  WEEKDAYS,
} from "./schema.js";

export type Direction = "import" | "export";

export const QUARTER_MS = 900_000;
const DAY_MS = 86_400_000;

/** Date.getUTCDay() (0 = Sunday) to our weekday names. */
const BY_UTC_DAY = [WEEKDAYS[6], ...WEEKDAYS.slice(0, 6)] as const;

/** The civil date of `ms` in `zone`, YYYY-MM-DD. */
export function localDay(zone: IANAZone, ms: number): string {
  return new Date(ms + zone.offset(ms) * 60_000).toISOString().slice(0, 10);
}

export function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
}

/**
 * One tariff in one zone. Prices are constant over each quarter hour (the schema only takes quarter-hour
 * boundaries, and every zone's offset is a whole number of quarters, so local quarters are UTC quarters).
 * Energy between two readings is spread evenly over the time between them: for readings seconds apart that is
 * exact, and after a gap it is the best guess there is.
 */
export class Tariff {
  readonly zone: IANAZone;
  readonly currency: string;
  readonly dailyCharge: number;
  private readonly cache = { import: { q: Number.NaN, p: 0 }, export: { q: Number.NaN, p: 0 } };
  private readonly feeds: Partial<Record<Direction, PriceFeed>> = {};

  constructor(
    readonly name: string,
    readonly config: TariffConfig,
    readonly timezone: string,
  ) {
    this.zone = zoneOf(timezone);
    this.currency = config.currency;
    this.dailyCharge = config.daily_charge;
  }

  get pricesExport(): boolean {
    return this.config.export !== undefined;
  }

  /** Whether a direction's price comes from a source (`type: dynamic`) rather than this file. */
  isDynamic(direction: Direction): boolean {
    return isDynamic(this.config[direction]);
  }

  /** Where the running bridge gets a dynamic direction's prices; without one its `fallback` applies. */
  attach(direction: Direction, feed: PriceFeed): void {
    this.feeds[direction] = feed;
  }

  feed(direction: Direction): PriceFeed | undefined {
    return this.feeds[direction];
  }

  /**
   * The price of a quarter hour that has ended, never to change again (a dynamic price may change while its
   * quarter is under way); for a fixed price the same as price().
   */
  settledPrice(direction: Direction, ms: number): number {
    const feed = this.feeds[direction];
    return feed ? feed.settle(Math.floor(ms / QUARTER_MS) * QUARTER_MS).price : this.price(direction, ms);
  }

  /** Price per kWh at `ms`; export is 0 when the tariff does not price it. */
  price(direction: Direction, ms: number): number {
    const feed = this.feeds[direction];
    if (feed) return feed.price(ms).price;
    const q = Math.floor(ms / QUARTER_MS);
    const c = this.cache[direction];
    if (c.q === q) return c.p;
    c.q = q;
    c.p = priceAt(this.config[direction], this.zone, q * QUARTER_MS);
    return c.p;
  }

  /** What `kwh` used evenly between `from` and `to` costs; with no time between, at the price at `to`. */
  energyCost(direction: Direction, kwh: number, from: number, to: number): number {
    if (kwh === 0) return 0;
    let cost = 0;
    forEachQuarter(from, to, (start, share) => {
      cost += share * this.price(direction, start);
    });
    return kwh * cost;
  }

  /** The daily charge accrued between two instants: each local day's charge spread over its 23, 24 or 25 hours. */
  fixed(from: number, to: number): number {
    if (this.dailyCharge === 0 || !(to > from)) return 0;
    let share = 0;
    let t = from;
    while (t < to) {
      const day = localDay(this.zone, t);
      const start = localMidnight(this.zone, day);
      const end = localMidnight(this.zone, nextDay(day));
      const stop = Math.min(to, end);
      share += (stop - t) / (end - start);
      t = stop;
    }
    return this.dailyCharge * share;
  }
}

/**
 * Energy used evenly between two instants, quarter hour by quarter hour: `each` gets the start of every quarter the
 * time touches and the share of the time in it; with no time between, the quarter of `to` and share 1.
 */
export function forEachQuarter(from: number, to: number, each: (start: number, share: number) => void): void {
  if (!(to > from)) {
    each(Math.floor(to / QUARTER_MS) * QUARTER_MS, 1);
    return;
  }
  for (let t = from; t < to; ) {
    const start = Math.floor(t / QUARTER_MS) * QUARTER_MS;
    const end = Math.min(to, start + QUARTER_MS);
    each(start, (end - t) / (to - from));
    t = end;
  }
}

function priceAt(p: AnyPriceConfig | undefined, zone: IANAZone, ms: number): number {
  if (p === undefined) return 0;
  if (typeof p === "number") return p;
  // A dynamic price with no source attached (tools, the archive's worker): the archive's prices or the fallback.
  if (isDynamic(p)) return p.fallback;
  const wall = ms + zone.offset(ms) * 60_000;
  const weekday = BY_UTC_DAY[new Date(wall).getUTCDay()] as (typeof WEEKDAYS)[number];
  const minute = Math.floor((((wall % DAY_MS) + DAY_MS) % DAY_MS) / 60_000);
  const period = p.find((x: PeriodConfig) => periodMatches(x, weekday, minute));
  // The schema makes the periods cover the week; a hole would be a bug, and 0 would hide it in the figures.
  if (!period) throw new Error(`no tariff period covers ${weekday} minute ${minute}`);
  return period.price;
}

/** The system's own zone: the fallback for meters and tariffs that name none. */
export function systemZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** Each configured meter's tariff, in the zone it applies in (the tariff's, else the meter's, else the system's). */
export function tariffsByMeter(cfg: {
  tariffs: Record<string, TariffConfig>;
  meters: readonly { id: string; timezone?: string }[];
}): Map<string, Tariff> {
  const out = new Map<string, Tariff>();
  for (const [name, t] of Object.entries(cfg.tariffs))
    for (const id of t.meters) {
      const meter = cfg.meters.find((m) => m.id === id);
      if (!meter) continue;
      out.set(id, new Tariff(name, t, t.timezone ?? meter.timezone ?? systemZone()));
    }
  return out;
}

/** The zone a meter's days are counted in: its tariff's, else its own, else the system's. */
export function meterZone(
  meter: { id: string; timezone?: string },
  tariffs: ReadonlyMap<string, Tariff> | undefined,
): string {
  return tariffs?.get(meter.id)?.timezone ?? meter.timezone ?? systemZone();
}
