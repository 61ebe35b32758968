import type Database from "better-sqlite3";
import type { BookedHour, DayRow, HourRow, IntervalBatchRows } from "../../intervals/types.js";

/**
 * The interval tables of the archive (sql/004_intervals.sql): revisions, imports, the IMAP cursor and the
 * statistics bookkeeping. Runs where the connection is, in the archive worker (the one writer); tests and
 * benchmarks may also use it on a connection of their own.
 */

const iso = (ms: number): string => new Date(ms).toISOString();
/** kWh as an integer count of µkWh: sums over a year of intervals stay exact. */
const MICRO = "CAST(round(energy_kwh * 1000000) AS INTEGER)";

export interface ImportCounts {
  revisions: number;
  changed: number;
  firstChanged: string | null;
  seenBefore: boolean;
}

export function intervalStore(db: Database.Database) {
  const predecessor = db.prepare<[string, string, string, string, string]>(
    `SELECT energy_kwh AS e, quality AS q, cost AS c, revised_at AS ra, received_at AS rc
       FROM interval_revisions
      WHERE meter_id = ? AND start = ? AND direction = ? AND (revised_at, received_at) <= (?, ?)
      ORDER BY revised_at DESC, received_at DESC LIMIT 1`,
  );
  const successor = db.prepare<[string, string, string, string, string]>(
    `SELECT 1 FROM interval_revisions
      WHERE meter_id = ? AND start = ? AND direction = ? AND (revised_at, received_at) > (?, ?) LIMIT 1`,
  );
  const insert = db.prepare(
    `INSERT INTO interval_revisions
       (meter_id, start, direction, revised_at, received_at, end, day, energy_kwh, quality, cost, origin, imported_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const meterZone = db.prepare(
    `INSERT INTO meters (id, timezone) VALUES (?, ?)
     ON CONFLICT (id) DO UPDATE SET timezone = excluded.timezone`,
  );
  const originSeen = db.prepare<[string, string]>(`SELECT 1 FROM interval_imports WHERE meter_id = ? AND origin = ?`);
  const originInsert = db.prepare(
    `INSERT OR IGNORE INTO interval_imports (meter_id, origin, received_at, imported_at, intervals, revisions, errors)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const cursorGet = db.prepare<[string, string, string]>(
    `SELECT uidvalidity AS uidValidity, last_uid AS lastUid FROM imap_cursors
      WHERE meter_id = ? AND account = ? AND mailbox = ?`,
  );
  const cursorSet = db.prepare(
    `INSERT INTO imap_cursors (meter_id, account, mailbox, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (meter_id, account, mailbox) DO UPDATE SET
       uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, updated_at = excluded.updated_at`,
  );
  const hourly = db.prepare<[string, string]>(
    `SELECT substr(start, 1, 13) AS h, coalesce(sum(${MICRO}), 0) AS micro
       FROM intervals_current WHERE meter_id = ? AND direction = ? GROUP BY h ORDER BY h`,
  );
  // Only intervals with a cost: a co-op that gives none leaves no hours, and so no cost statistic at all.
  const hourlyCost = db.prepare<[string]>(
    `SELECT substr(start, 1, 13) AS h, sum(CAST(round(cost * 1000000) AS INTEGER)) AS micro
       FROM intervals_current WHERE meter_id = ? AND cost IS NOT NULL GROUP BY h ORDER BY h`,
  );
  const days = db.prepare<[string, string]>(
    `SELECT day, direction, count(energy_kwh) AS readings, coalesce(sum(${MICRO}), 0) AS micro, max(end) AS lastEnd,
            CAST(round(total((julianday(end) - julianday(start)) * 1440) FILTER (WHERE energy_kwh IS NOT NULL)) AS INTEGER)
              AS minutes
       FROM intervals_current WHERE meter_id = ? AND day >= ? GROUP BY day, direction ORDER BY day`,
  );
  const newestEnd = db.prepare<[string]>(`SELECT max(end) AS e FROM interval_revisions WHERE meter_id = ?`);
  const lastDay = db.prepare<[string]>(`SELECT max(day) AS d FROM interval_revisions WHERE meter_id = ?`);
  const booked = db.prepare<[string]>(
    `SELECT hour, state_kwh AS s, sum_kwh AS t FROM statistics_imported WHERE statistic_id = ? ORDER BY hour`,
  );
  const unbook = db.prepare<[string, string]>(`DELETE FROM statistics_imported WHERE statistic_id = ? AND hour >= ?`);
  const book = db.prepare(
    `INSERT INTO statistics_imported (statistic_id, hour, state_kwh, sum_kwh, imported_at) VALUES (?, ?, ?, ?, ?)`,
  );
  const meters = db.prepare(
    `SELECT DISTINCT i.meter_id AS id, m.timezone AS tz
       FROM interval_imports i LEFT JOIN meters m ON m.id = i.meter_id ORDER BY i.meter_id`,
  );

  const importBatch = db.transaction((b: IntervalBatchRows): ImportCounts => {
    const seenBefore = b.origin !== null && originSeen.get(b.meterId, b.origin) !== undefined;
    let revisions = 0;
    let changed = 0;
    let firstChanged: string | null = null;
    for (const r of b.rows) {
      const before = predecessor.get(b.meterId, r.start, r.direction, r.revisedAt, b.receivedAt) as
        | { e: number | null; q: string; c: number | null; ra: string; rc: string }
        | undefined;
      // The same revision again, or a revision that repeats the one before it: nothing new to store.
      if (
        before &&
        ((before.ra === r.revisedAt && before.rc === b.receivedAt) ||
          (before.e === r.energyKwh && before.q === r.quality && before.c === r.cost))
      )
        continue;
      insert.run(
        b.meterId,
        r.start,
        r.direction,
        r.revisedAt,
        b.receivedAt,
        r.end,
        r.day,
        r.energyKwh,
        r.quality,
        r.cost,
        b.origin,
        b.importedAt,
      );
      revisions++;
      // An older revision arriving late is history; only one with nothing newer becomes the current value.
      if (successor.get(b.meterId, r.start, r.direction, r.revisedAt, b.receivedAt) === undefined) {
        changed++;
        if (firstChanged === null || r.start < firstChanged) firstChanged = r.start;
      }
    }
    meterZone.run(b.meterId, b.timezone);
    if (b.origin !== null)
      originInsert.run(
        b.meterId,
        b.origin,
        b.receivedAt,
        b.importedAt,
        b.rows.length + (b.earlier?.intervals ?? 0),
        revisions + (b.earlier?.revisions ?? 0),
        b.errors,
      );
    const c = b.cursor;
    if (c) cursorSet.run(c.meterId, c.account, c.mailbox, c.uidValidity, c.lastUid, b.importedAt);
    return { revisions, changed, firstChanged, seenBefore };
  });

  const bookHours = db.transaction((statisticId: string, from: number, rows: BookedHour[], at: string): void => {
    unbook.run(statisticId, iso(from));
    for (const r of rows) book.run(statisticId, iso(r.hour), r.stateMicro / 1e6, r.sumMicro / 1e6, at);
  });

  return {
    importBatch,

    imapCursor(meterId: string, account: string, mailbox: string): { uidValidity: string; lastUid: number } | null {
      return (cursorGet.get(meterId, account, mailbox) as { uidValidity: string; lastUid: number } | undefined) ?? null;
    },

    imported(meterId: string, origin: string): boolean {
      return originSeen.get(meterId, origin) !== undefined;
    },

    /** Every UTC hour with current intervals of one direction, oldest first; an hour without readings is 0. */
    hourly(meterId: string, direction: "import" | "export"): HourRow[] {
      const out: HourRow[] = [];
      for (const r of hourly.iterate(meterId, direction) as Iterable<{ h: string; micro: number }>)
        out.push({ hour: Date.parse(`${r.h}:00:00Z`), microKwh: r.micro });
      return out;
    },

    /** Every UTC hour with current intervals that carry a cost (SmartHub), oldest first; in millionths of the currency. */
    hourlyCost(meterId: string): HourRow[] {
      const out: HourRow[] = [];
      for (const r of hourlyCost.iterate(meterId) as Iterable<{ h: string; micro: number }>)
        out.push({ hour: Date.parse(`${r.h}:00:00Z`), microKwh: r.micro });
      return out;
    },

    /** Per civil day and direction from `fromDay` on (the meter's zone). */
    days(meterId: string, fromDay: string): DayRow[] {
      return (
        days.all(meterId, fromDay) as {
          day: string;
          direction: "import" | "export";
          readings: number;
          micro: number;
          lastEnd: string;
          minutes: number;
        }[]
      ).map((r) => ({
        day: r.day,
        direction: r.direction,
        readings: r.readings,
        minutes: r.minutes,
        microKwh: r.micro,
        lastEnd: Date.parse(r.lastEnd),
      }));
    },

    newest(meterId: string): { end: number; day: string } | null {
      const e = (newestEnd.get(meterId) as { e: string | null }).e;
      const d = (lastDay.get(meterId) as { d: string | null }).d;
      return e && d ? { end: Date.parse(e), day: d } : null;
    },

    booked(statisticId: string): BookedHour[] {
      return (booked.all(statisticId) as { hour: string; s: number; t: number }[]).map((r) => ({
        hour: Date.parse(r.hour),
        stateMicro: Math.round(r.s * 1e6),
        sumMicro: Math.round(r.t * 1e6),
      }));
    },

    /** Replaces what is recorded as sent from hour `from` on. */
    book(statisticId: string, from: number, rows: BookedHour[], at: string): void {
      bookHours(statisticId, from, rows, at);
    },

    /** Meters that have imported intervals, with their zone. */
    intervalMeters(): { id: string; timezone: string | null }[] {
      return (meters.all() as { id: string; tz: string | null }[]).map((m) => ({ id: m.id, timezone: m.tz }));
    },
  };
}

export type IntervalStore = ReturnType<typeof intervalStore>;
