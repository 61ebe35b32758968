/**
 * Cost statistics of interval meters whose utility gives no cost (Smart Meter Texas): each hour's import priced by
 * the meter's tariff, quarter by quarter as the reports do (report_hourly), plus that hour's share of the daily
 * charge. They go to Home Assistant as `meter2mqtt:<meter>_cost`, the statistic SmartHub fills with the utility's
 * own cost, so the Energy dashboard is set up the same way for both.
 */
import type Database from "better-sqlite3";
import type { HourRow } from "../intervals/types.js";
import { migrate, openWritable, sqlDir } from "../outputs/archive/db.js";
import type { StatisticsArchive } from "../outputs/statistics/sync.js";
import { type CalendarMeter, type CalendarSpec, calendarSpec, firstData, fromSpec, writeCalendar } from "./calendar.js";

const HOUR_MS = 3_600_000;

/** Hourly cost of one meter in millionths of its currency (HourRow's `microKwh` carries them, as for SmartHub). */
export function tariffHourlyCost(db: Database.Database, meter: CalendarMeter, now: number): HourRow[] {
  const tariff = meter.tariff;
  if (!tariff) return [];
  // Data imported from before the calendar's first day (old CSVs) must be priced too.
  const first = firstData(db, meter.id);
  if (first !== undefined) writeCalendar(db, meter, first, now, now);
  const rows = db
    .prepare<[string]>(
      `SELECT hour, import_cost AS c FROM report_hourly WHERE meter_id = ? AND import_cost IS NOT NULL ORDER BY hour`,
    )
    .all(meter.id) as { hour: string; c: number }[];
  return rows.map((r) => {
    const hour = Date.parse(r.hour);
    return { hour, microKwh: Math.round((r.c + tariff.fixed(hour, hour + HOUR_MS)) * 1e6) };
  });
}

/** The cost hours as the archive's worker works them out, on its connection (src/outputs/archive/worker.ts). */
export function costStore(db: Database.Database) {
  return {
    tariffHourlyCost(spec: CalendarSpec, now: number): HourRow[] {
      return tariffHourlyCost(db, fromSpec(spec), now);
    },
  };
}
export type CostStore = ReturnType<typeof costStore>;

/** Where the cost hours are worked out: the archive's worker (Archive.call). */
export interface CostRunner {
  call(method: "tariffHourlyCost", ...args: Parameters<CostStore["tariffHourlyCost"]>): Promise<HourRow[]>;
}

/**
 * The statistics archive with the cost of the given meters computed from their tariffs; other meters' cost (the
 * utility's, SmartHub) comes from the archive as before. The calendar and the view run in the archive's worker when
 * given the archive (the bridge), or on a connection of their own to the file at `archive` (tools, tests): once a
 * day, after the data changed.
 */
export function withTariffCost(
  store: StatisticsArchive,
  archive: string | CostRunner,
  meters: readonly CalendarMeter[],
  now: () => number,
): StatisticsArchive {
  const priced = new Map(meters.filter((m) => m.tariff).map((m) => [m.id, m]));
  if (priced.size === 0) return store;
  return {
    ...store,
    hourlyCost: async (meterId) => {
      const meter = priced.get(meterId);
      if (!meter) return (await store.hourlyCost?.(meterId)) ?? [];
      if (typeof archive !== "string") return archive.call("tariffHourlyCost", calendarSpec(meter), now());
      const db = openWritable(archive);
      try {
        migrate(db, sqlDir());
        return tariffHourlyCost(db, meter, now());
      } finally {
        db.close();
      }
    },
  };
}
