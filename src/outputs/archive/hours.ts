import type Database from "better-sqlite3";

/**
 * Keeps the table energy_hours (sql/008_energy_hours.sql) up to date: each hour readings were stored in gets its
 * registers again from the readings of that hour (a primary-key range, ≤ a few hundred rows), and its energy and the
 * next hour's are worked out again from the registers. Runs in the archive's writer, in the batch's transaction, and
 * after the migration that fills the table from an existing archive.
 */

const HOUR_MS = 3_600_000;

/** The register columns of readings and their short names in energy_hours. */
const REGISTERS = [
  ["energy_import_kwh", "imp", "import_kwh"],
  ["energy_import_tariff1_kwh", "imp1", "import_tariff1_kwh"],
  ["energy_import_tariff2_kwh", "imp2", "import_tariff2_kwh"],
  ["energy_import_tariff3_kwh", "imp3", "import_tariff3_kwh"],
  ["energy_import_tariff4_kwh", "imp4", "import_tariff4_kwh"],
  ["energy_export_kwh", "exp", "export_kwh"],
  ["energy_export_tariff1_kwh", "exp1", "export_tariff1_kwh"],
  ["energy_export_tariff2_kwh", "exp2", "export_tariff2_kwh"],
  ["energy_export_tariff3_kwh", "exp3", "export_tariff3_kwh"],
  ["energy_export_tariff4_kwh", "exp4", "export_tariff4_kwh"],
] as const;

/** UTC ms of the start of the hour a reading at `t` counts in: a reading exactly on the hour ends the hour before. */
export function hourOf(t: number): number {
  const h = Math.floor(t / HOUR_MS) * HOUR_MS;
  return h === t ? h - HOUR_MS : h;
}

/** energy_hours.hour of an hour's start. */
export const hourKey = (ms: number): string => `${new Date(ms).toISOString().slice(0, 13)}:00:00Z`;
const timeKey = (ms: number): string => new Date(ms).toISOString();

export interface HourKeeper {
  /** Brings the given hours of a meter (UTC ms of their starts) and the hours after them up to date. */
  update(meterId: string, hours: Iterable<number>): void;
  /** Works out the energy of rows left with `hours` NULL (after the migration); returns how many. */
  completePending(): number;
}

export function hourKeeper(db: Database.Database): HourKeeper {
  const anyRegister = `coalesce(${REGISTERS.map(([c]) => c).join(", ")}) IS NOT NULL`;
  // Each register's last value in (t0, t1]: one descending primary-key walk per register, stopping at its first value.
  const registers = db.prepare<{ m: string; h: string; t0: string; t1: string }>(
    `INSERT INTO energy_hours (meter_id, hour, ${REGISTERS.map(([, s]) => `r_${s}`).join(", ")})
     SELECT @m, @h, ${REGISTERS.map(
       ([c]) =>
         `(SELECT ${c} FROM readings WHERE meter_id = @m AND time > @t0 AND time <= @t1 AND ${c} IS NOT NULL ORDER BY time DESC LIMIT 1)`,
     ).join(",\n ")}
     WHERE EXISTS (SELECT 1 FROM readings WHERE meter_id = @m AND time > @t0 AND time <= @t1 AND ${anyRegister})
     ON CONFLICT (meter_id, hour) DO UPDATE SET ${REGISTERS.map(([, s]) => `r_${s} = excluded.r_${s}`).join(", ")}`,
  );
  const drop = db.prepare<{ m: string; h: string; t0: string; t1: string }>(
    `DELETE FROM energy_hours WHERE meter_id = @m AND hour = @h
       AND NOT EXISTS (SELECT 1 FROM readings WHERE meter_id = @m AND time > @t0 AND time <= @t1 AND ${anyRegister})`,
  );
  const next = db.prepare<[string, string]>(
    "SELECT hour FROM energy_hours WHERE meter_id = ? AND hour > ? ORDER BY hour LIMIT 1",
  );
  // The energy: registers minus the previous hour's with registers, or in a meter's first hour minus the first value
  // in the hour. A register that went down (a replaced meter) gives NULL. `hours`: since that previous hour, or from
  // the first reading with a register to the last in the first hour.
  const first = (c: string): string =>
    `(SELECT ${c} FROM readings WHERE meter_id = x.meter_id AND time > x.t0 AND time <= x.t1 AND ${c} IS NOT NULL ORDER BY time LIMIT 1)`;
  const span = (dir: "ASC" | "DESC"): string =>
    `(SELECT time FROM readings WHERE meter_id = x.meter_id AND time > x.t0 AND time <= x.t1 AND ${anyRegister} ORDER BY time ${dir} LIMIT 1)`;
  const energy = db.prepare<{ m: string; h: string }>(
    `UPDATE energy_hours AS c SET
       ${REGISTERS.map(([, s, out]) => `${out} = CASE WHEN d.${s} >= 0 THEN round(d.${s}, 6) END`).join(",\n ")},
       net_kwh = CASE WHEN d.imp >= 0 AND d.exp >= 0 THEN round(d.imp - d.exp, 6) END,
       hours = d.hours
     FROM (
       SELECT
         ${REGISTERS.map(([c, s]) => `CASE WHEN p.hour IS NULL THEN x.r_${s} - ${first(c)} ELSE x.r_${s} - p.r_${s} END AS ${s}`).join(",\n ")},
         CASE WHEN p.hour IS NULL THEN (julianday(${span("DESC")}) - julianday(${span("ASC")})) * 24
           ELSE (julianday(x.hour) - julianday(p.hour)) * 24 END AS hours
       FROM (SELECT *, substr(hour, 1, 13) || ':00:00.000Z' AS t0, strftime('%Y-%m-%dT%H:00:00.000Z', hour, '+1 hour') AS t1
               FROM energy_hours WHERE meter_id = @m AND hour = @h) x
       LEFT JOIN energy_hours p ON p.meter_id = x.meter_id
         AND p.hour = (SELECT max(q.hour) FROM energy_hours q WHERE q.meter_id = x.meter_id AND q.hour < x.hour)
     ) d
     WHERE c.meter_id = @m AND c.hour = @h`,
  );
  const pending = db.prepare("SELECT meter_id AS m, hour AS h FROM energy_hours WHERE hours IS NULL");

  return {
    update(meterId, hours) {
      const redo = new Set<string>();
      for (const ms of hours) {
        const p = { m: meterId, h: hourKey(ms), t0: timeKey(ms), t1: timeKey(ms + HOUR_MS) };
        if (registers.run(p).changes === 0) drop.run(p);
        redo.add(p.h);
        const after = next.get(meterId, p.h) as { hour: string } | undefined;
        if (after) redo.add(after.hour);
      }
      for (const h of redo) energy.run({ m: meterId, h });
    },
    completePending() {
      const rows = pending.all() as { m: string; h: string }[];
      db.transaction(() => {
        for (const r of rows) energy.run(r);
      })();
      return rows.length;
    },
  };
}

/** How far from a gas hour its readings are looked for by `time`: the gas value reaches the meter minutes to an hour late. */
const GAS_BEFORE_MS = HOUR_MS;
const GAS_AFTER_MS = 5 * HOUR_MS;

/**
 * Keeps gas_hours (sql/011_gas_hours.sql), the same way for the gas register: each gas hour (of the gas meter's own
 * reading time) that readings were stored for gets its newest gas value again, found among the readings stored from
 * an hour before it to five hours after (by `time`, the primary key), and its gas and the next hour's are worked out
 * again. A meter's first hour has nothing to subtract from (NULL), as before.
 */
export function gasKeeper(db: Database.Database): HourKeeper {
  const normal = "strftime('%Y-%m-%dT%H:%M:%fZ', gas_at)";
  const latest = db.prepare<{ m: string; w0: string; w1: string; t0: string; t1: string }>(
    `SELECT at, gas_m3 AS g FROM (
       SELECT ${normal} AS at, gas_m3 FROM readings
        WHERE meter_id = @m AND time > @w0 AND time <= @w1 AND gas_at IS NOT NULL AND gas_m3 IS NOT NULL)
     WHERE at > @t0 AND at <= @t1 ORDER BY at DESC LIMIT 1`,
  );
  const upsert = db.prepare(
    `INSERT INTO gas_hours (meter_id, hour, at, r_gas, pending) VALUES (?, ?, ?, ?, 1)
     ON CONFLICT (meter_id, hour) DO UPDATE SET at = excluded.at, r_gas = excluded.r_gas, pending = 1`,
  );
  const drop = db.prepare<[string, string]>("DELETE FROM gas_hours WHERE meter_id = ? AND hour = ?");
  const next = db.prepare<[string, string]>(
    "SELECT hour FROM gas_hours WHERE meter_id = ? AND hour > ? ORDER BY hour LIMIT 1",
  );
  const gas = db.prepare<{ m: string; h: string }>(
    `UPDATE gas_hours AS c SET gas_m3 = CASE WHEN d.g >= 0 THEN round(d.g, 6) END, pending = 0
     FROM (
       SELECT x.r_gas - p.r_gas AS g
       FROM (SELECT * FROM gas_hours WHERE meter_id = @m AND hour = @h) x
       LEFT JOIN gas_hours p ON p.meter_id = x.meter_id
         AND p.hour = (SELECT max(q.hour) FROM gas_hours q WHERE q.meter_id = x.meter_id AND q.hour < x.hour)
     ) d
     WHERE c.meter_id = @m AND c.hour = @h`,
  );
  const pending = db.prepare("SELECT meter_id AS m, hour AS h FROM gas_hours WHERE pending = 1");
  return {
    update(meterId, hours) {
      const redo = new Set<string>();
      for (const ms of hours) {
        const h = hourKey(ms);
        const found = latest.get({
          m: meterId,
          w0: timeKey(ms - GAS_BEFORE_MS),
          w1: timeKey(ms + GAS_AFTER_MS),
          t0: timeKey(ms),
          t1: timeKey(ms + HOUR_MS),
        }) as { at: string; g: number } | undefined;
        if (found) upsert.run(meterId, h, found.at, found.g);
        else drop.run(meterId, h);
        redo.add(h);
        const after = next.get(meterId, h) as { hour: string } | undefined;
        if (after) redo.add(after.hour);
      }
      for (const h of redo) gas.run({ m: meterId, h });
    },
    completePending() {
      const rows = pending.all() as { m: string; h: string }[];
      db.transaction(() => {
        for (const r of rows) gas.run(r);
      })();
      return rows.length;
    },
  };
}
