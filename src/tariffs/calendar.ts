/**
 * The archive's calendar of local days and prices (table tariff_slots, sql/007): what the report views join with,
 * since SQLite cannot work out local days or time-of-use periods itself. See the table's comment for what is
 * rewritten when.
 */
import type Database from "better-sqlite3";
import { localMidnight, zoneOf } from "../intervals/time.js";
import { localDay, nextDay, QUARTER_MS, Tariff } from "./tariff.js";

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

/** What a meter's calendar is written from: when it changes, quarters from now on are written again. */
function fingerprint(meter: CalendarMeter): string {
  const t = meter.tariff;
  return JSON.stringify([meter.timezone, t ? [t.name, t.timezone, t.config] : null]);
}

/**
 * Writes the quarters of the whole local days from `from` to `to` (UTC ms, inclusive), only where they are missing:
 * a day already complete is not touched. Quarters from `now` on follow the configuration as it is: when it changed
 * since they were written (table calendar_state), they are deleted and written again. With `reprice` every quarter of
 * the range is rewritten with the current prices. Returns the quarters written or rewritten.
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
  const zone = zoneOf(meter.timezone);
  const t = meter.tariff;
  const written = iso(now);
  // A dynamic tariff's quarters are priced as the bridge priced them (dynamic_prices), else at the fallback.
  const archived = {
    import: t?.isDynamic("import") ? dynamicPrices(db, t.name, "import", start, end) : undefined,
    export: t?.isDynamic("export") ? dynamicPrices(db, t.name, "export", start, end) : undefined,
  };
  const priceOf = (tariff: Tariff, dir: "import" | "export", q: number): number =>
    archived[dir]?.get(q) ?? tariff.price(dir, q);
  const current = Math.floor(now / QUARTER_MS) * QUARTER_MS;
  const print = fingerprint(meter);
  return db.transaction((): number => {
    let n = 0;
    const state = db.prepare("SELECT fingerprint FROM calendar_state WHERE meter_id = ?").get(meter.id) as
      | { fingerprint: string }
      | undefined;
    if (state?.fingerprint !== print) {
      n += db.prepare("DELETE FROM tariff_slots WHERE meter_id = ? AND start >= ?").run(meter.id, iso(current)).changes;
      db.prepare(
        `INSERT INTO calendar_state (meter_id, fingerprint, changed_at) VALUES (?, ?, ?)
         ON CONFLICT (meter_id) DO UPDATE SET fingerprint = excluded.fingerprint, changed_at = excluded.changed_at`,
      ).run(meter.id, print, written);
    }
    const firstDay = localDay(zone, start);
    const lastDay = localDay(zone, end - 1);
    const have = new Map(
      (
        db
          .prepare(
            "SELECT day, count(*) AS n FROM tariff_slots WHERE meter_id = ? AND day BETWEEN ? AND ? GROUP BY day",
          )
          .all(meter.id, firstDay, lastDay) as { day: string; n: number }[]
      ).map((r) => [r.day, r.n]),
    );
    for (let dayStart = start; dayStart < end; ) {
      const day = localDay(zone, dayStart);
      const dayEnd = localMidnight(zone, nextDay(day));
      const quarters = (dayEnd - dayStart) / QUARTER_MS;
      if (opts.reprice || have.get(day) !== quarters) {
        for (let q = dayStart; q < dayEnd; q += QUARTER_MS) {
          const stmt = opts.reprice || q >= current ? replace : keep;
          n += stmt.run(
            meter.id,
            iso(q),
            day,
            t?.name ?? null,
            t?.currency ?? null,
            t ? priceOf(t, "import", q) : null,
            t ? priceOf(t, "export", q) : null,
            t ? t.dailyCharge : null,
            written,
          ).changes;
        }
      }
      dayStart = dayEnd;
    }
    return n;
  })();
}

/** The archived dynamic prices of a tariff's direction between two instants, by quarter start (UTC ms). */
function dynamicPrices(
  db: Database.Database,
  tariff: string,
  direction: "import" | "export",
  from: number,
  to: number,
): Map<number, number> {
  const rows = db
    .prepare<[string, string, string, string]>(
      "SELECT start, price FROM dynamic_prices WHERE tariff = ? AND direction = ? AND start >= ? AND start < ?",
    )
    .all(tariff, direction, iso(from), iso(to)) as { start: string; price: number }[];
  return new Map(rows.map((r) => [Date.parse(r.start), r.price]));
}

/** One settled quarter hour of a dynamic tariff, as the bridge sends it to the archive. */
export interface PriceRow {
  direction: "import" | "export";
  /** UTC ms */
  start: number;
  price: number;
  origin: "mqtt" | "home_assistant" | "fallback";
}

/**
 * Keeps the prices a dynamic tariff's quarter hours were priced at (dynamic_prices) and puts them in the calendar of
 * its meters, so that the reports price those quarters the same. Returns the rows written.
 */
export function recordPrices(
  db: Database.Database,
  tariff: string,
  meterIds: readonly string[],
  rows: readonly PriceRow[],
  now: number,
): number {
  const put = db.prepare(
    `INSERT INTO dynamic_prices (tariff, direction, start, price, origin, written_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (tariff, direction, start) DO UPDATE SET price = excluded.price, origin = excluded.origin,
       written_at = excluded.written_at`,
  );
  const slot = {
    import: db.prepare("UPDATE tariff_slots SET import_price = ? WHERE meter_id = ? AND start = ? AND tariff = ?"),
    export: db.prepare("UPDATE tariff_slots SET export_price = ? WHERE meter_id = ? AND start = ? AND tariff = ?"),
  };
  const written = iso(now);
  return db.transaction((): number => {
    for (const r of rows) {
      const start = iso(r.start);
      put.run(tariff, r.direction, start, r.price, r.origin, written);
      for (const id of meterIds) slot[r.direction].run(r.price, id, start, tariff);
    }
    return rows.length;
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

/** A CalendarMeter as it travels to the archive's worker (a Tariff's methods do not). */
export interface CalendarSpec {
  id: string;
  timezone: string;
  tariff?: { name: string; timezone: string; config: Tariff["config"] };
}

export function calendarSpec(m: CalendarMeter): CalendarSpec {
  const t = m.tariff;
  return { id: m.id, timezone: m.timezone, tariff: t && { name: t.name, timezone: t.timezone, config: t.config } };
}

export function fromSpec(s: CalendarSpec): CalendarMeter {
  const t = s.tariff;
  return { id: s.id, timezone: s.timezone, tariff: t && new Tariff(t.name, t.config, t.timezone) };
}

/** Brings one meter's calendar from its first data to the end of next month; returns the quarters written. */
export function refreshMeterCalendar(db: Database.Database, meter: CalendarMeter, now: number): number {
  return writeCalendar(db, meter, firstData(db, meter.id) ?? now, endOfNextMonth(meter.timezone, now), now);
}

/** The calendar as the archive's worker runs it, on its connection (src/outputs/archive/worker.ts). */
export function calendarStore(db: Database.Database) {
  return {
    refreshCalendar(spec: CalendarSpec, now: number): number {
      return refreshMeterCalendar(db, fromSpec(spec), now);
    },
    recordPrices(tariff: string, meterIds: string[], rows: PriceRow[], now: number): number {
      return recordPrices(db, tariff, meterIds, rows, now);
    },
  };
}
export type CalendarStore = ReturnType<typeof calendarStore>;
