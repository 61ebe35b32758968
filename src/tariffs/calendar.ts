/**
 * The archive's calendar of local days and prices (table tariff_slots, sql/007): what the report views join with,
 * since SQLite cannot work out local days or time-of-use periods itself. See the table's comment for what is
 * rewritten when.
 */
import type Database from "better-sqlite3";
import { dayFinder } from "../intervals/pipeline.js";
import { localMidnight, zoneOf } from "../intervals/time.js";
import { localDay, nextDay, QUARTER_MS, type Tariff } from "./tariff.js";

export interface CalendarMeter {
  id: string;
  /** Zone of the meter's days. */
  timezone: string;
  tariff?: Tariff;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** UTC ms of the local midnights that start the days `from` is in and that follows the day `to` is in. */
export function wholeDays(timezone: string, from: number, to: number): { start: number; end: number } {
  const zone = zoneOf(timezone);
  return {
    start: localMidnight(zone, localDay(zone, from)),
    end: localMidnight(zone, nextDay(localDay(zone, Math.max(from, to)))),
  };
}

/**
 * Writes the quarters of the whole local days from `from` to `to` (UTC ms, inclusive). Quarters from `now` on, or
 * all of them with `reprice`, get the current prices; earlier ones are only added where missing. Returns the
 * quarters written or rewritten.
 */
export function writeCalendar(
  db: Database.Database,
  meter: CalendarMeter,
  from: number,
  to: number,
  now: number,
  opts: { reprice?: boolean } = {},
): number {
  const { start, end } = wholeDays(meter.timezone, from, to);
  const columns = "(meter_id, start, day, tariff, currency, import_price, export_price, daily_charge, written_at)";
  const keep = db.prepare(`INSERT OR IGNORE INTO tariff_slots ${columns} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const replace = db.prepare(
    `INSERT INTO tariff_slots ${columns} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (meter_id, start) DO UPDATE SET day = excluded.day, tariff = excluded.tariff,
       currency = excluded.currency, import_price = excluded.import_price, export_price = excluded.export_price,
       daily_charge = excluded.daily_charge, written_at = excluded.written_at`,
  );
  const dayOf = dayFinder(meter.timezone);
  const t = meter.tariff;
  const written = iso(now);
  const current = Math.floor(now / QUARTER_MS) * QUARTER_MS;
  return db.transaction((): number => {
    let n = 0;
    for (let q = start; q < end; q += QUARTER_MS) {
      const stmt = opts.reprice || q >= current ? replace : keep;
      n += stmt.run(
        meter.id,
        iso(q),
        dayOf(q),
        t?.name ?? null,
        t?.currency ?? null,
        t ? t.price("import", q) : null,
        t ? t.price("export", q) : null,
        t ? t.dailyCharge : null,
        written,
      ).changes;
    }
    return n;
  })();
}

/** When a meter's archived data begins (readings or intervals), or undefined when it has none. */
export function firstData(db: Database.Database, meterId: string): number | undefined {
  const r = db.prepare<[string]>("SELECT min(time) AS t FROM readings WHERE meter_id = ?").get(meterId) as {
    t: string | null;
  };
  const i = db.prepare<[string]>("SELECT min(start) AS t FROM interval_revisions WHERE meter_id = ?").get(meterId) as {
    t: string | null;
  };
  const times = [r.t, i.t].filter((x): x is string => x !== null).map((x) => Date.parse(x));
  return times.length > 0 ? Math.min(...times) : undefined;
}

/** The last instant of the month after the one `ms` is in, local time: how far ahead the bridge keeps the calendar. */
export function endOfNextMonth(timezone: string, ms: number): number {
  const day = localDay(zoneOf(timezone), ms);
  const y = Number(day.slice(0, 4));
  const m = Number(day.slice(5, 7));
  const firstAfter = new Date(Date.UTC(y, m + 1, 1)).toISOString().slice(0, 10);
  return localMidnight(zoneOf(timezone), firstAfter) - 1;
}
