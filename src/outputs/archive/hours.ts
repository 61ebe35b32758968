import type Database from "better-sqlite3";

/**
 * Keeps the table energy_hours (sql/008_energy_hours.sql) up to date: each hour readings were stored in gets its
 * registers again from the readings of that hour (a primary-key range, ≤ a few hundred rows), and its energy and the
 * next hour's are worked out again from the registers. Runs in the archive's writer, in the batch's transaction, and
 * after the migration that fills the table from an existing archive.
 */

const HOUR_MS = 3_600_000;

/** The register columns of readings and their short names in energy_hours. */
export const REGISTERS = [
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

/** What the readings just stored bring to one hour: their first and last time, each register's newest value. */
export interface NewReadings {
  first: string;
  last: string;
  /** In REGISTERS order; null where none of them has the register. */
  registers: (number | null)[];
  /** When each of those values was read. */
  at: (string | null)[];
}

export interface HourKeeper {
  /** Brings the given hours of a meter (by the UTC ms of their starts) and the hours after them up to date. */
  update(meterId: string, hours: ReadonlyMap<number, NewReadings>): void;
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
  const last = db.prepare<{ m: string; h: string; t0: string; t1: string }>(
    `UPDATE energy_hours SET t_last = (SELECT time FROM readings
       WHERE meter_id = @m AND time > @t0 AND time <= @t1 AND ${anyRegister} ORDER BY time DESC LIMIT 1)
     WHERE meter_id = @m AND hour = @h`,
  );
  const stored = db.prepare<[string, string]>(
    `SELECT t_last, ${REGISTERS.map(([, s]) => `r_${s}`).join(", ")} FROM energy_hours WHERE meter_id = ? AND hour = ?`,
  );
  const append = db.prepare(
    `UPDATE energy_hours SET ${REGISTERS.map(([, s]) => `r_${s} = ?`).join(", ")}, t_last = ? WHERE meter_id = ? AND hour = ?`,
  );
  const drop = db.prepare<{ m: string; h: string; t0: string; t1: string }>(
    `DELETE FROM energy_hours WHERE meter_id = @m AND hour = @h
       AND NOT EXISTS (SELECT 1 FROM readings WHERE meter_id = @m AND time > @t0 AND time <= @t1 AND ${anyRegister})`,
  );
  const next = db.prepare<[string, string]>(
    "SELECT hour FROM energy_hours WHERE meter_id = ? AND hour > ? ORDER BY hour LIMIT 1",
  );
  // The energy: registers minus the previous hour's with registers, or in a meter's first hour minus the first value
  // in the hour. A register that went down gives NULL, unless the meter was replaced in between (see `replaced`). `hours`: since that previous hour, or from
  // the first reading with a register to the last in the first hour.
  const first = (c: string): string =>
    `(SELECT ${c} FROM readings WHERE meter_id = x.meter_id AND time > x.t0 AND time <= x.t1 AND ${c} IS NOT NULL ORDER BY time LIMIT 1)`;
  // A replaced meter (meter_replacements, sql/021) between the previous hour and this one: the old meter's last
  // register minus the previous hour's, plus the new meter's from 0, as Home Assistant books it.
  const replaced = (c: string): string =>
    `(SELECT json_extract(before_json, '$.${c}') FROM meter_replacements WHERE meter_id = x.meter_id
       AND time > strftime('%Y-%m-%dT%H:00:00.000Z', p.hour, '+1 hour') AND time <= x.t1 ORDER BY time DESC LIMIT 1)`;
  const span = (dir: "ASC" | "DESC"): string =>
    `(SELECT time FROM readings WHERE meter_id = x.meter_id AND time > x.t0 AND time <= x.t1 AND ${anyRegister} ORDER BY time ${dir} LIMIT 1)`;
  const energy = db.prepare<{ m: string; h: string }>(
    `UPDATE energy_hours AS c SET
       ${REGISTERS.map(([, s, out]) => `${out} = CASE WHEN d.${s} >= 0 THEN round(d.${s}, 6) END`).join(",\n ")},
       net_kwh = CASE WHEN d.imp >= 0 AND d.exp >= 0 THEN round(d.imp - d.exp, 6) END,
       hours = d.hours
     FROM (
       SELECT
         ${REGISTERS.map(
           ([c, s]) => `CASE WHEN p.hour IS NULL THEN x.r_${s} - ${first(c)}
             WHEN x.r_${s} < p.r_${s} AND ${replaced(c)} IS NOT NULL THEN (${replaced(c)} - p.r_${s}) + x.r_${s}
             ELSE x.r_${s} - p.r_${s} END AS ${s}`,
         ).join(",\n ")},
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
      for (const ms of [...hours.keys()].sort((a, b) => a - b)) {
        const got = hours.get(ms) as NewReadings;
        const p = { m: meterId, h: hourKey(ms), t0: timeKey(ms), t1: timeKey(ms + HOUR_MS) };
        const had = stored.get(meterId, p.h) as Record<string, number | string | null> | undefined;
        if (had && typeof had.t_last === "string" && got.first > had.t_last) {
          // Newer than all the hour had: each register's newest value is theirs where they have it.
          const values = REGISTERS.map(([, s], i) => got.registers[i] ?? (had[`r_${s}`] as number | null));
          append.run(...values, got.last, meterId, p.h);
        } else {
          if (registers.run(p).changes === 0) drop.run(p);
          last.run(p);
        }
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

/** The newest gas reading of an hour among those just stored: its normalised time and value. */
export interface GasRead {
  at: string;
  gas: number;
}

export interface GasKeeper {
  /** Takes each gas hour's newest reading among those just stored, and works the hours and the next ones out again. */
  update(meterId: string, hours: ReadonlyMap<number, GasRead>): void;
  completePending(): number;
}

/**
 * Keeps gas_hours (sql/011_gas_hours.sql), the same way for the gas register. An hour's gas value is that of its
 * newest gas reading time (gas_at), so the readings just stored only change it when one of them is newer than the
 * one the hour has: no reading is read back. A meter's first hour has nothing to subtract from (NULL), as before.
 */
export function gasKeeper(db: Database.Database): GasKeeper {
  const upsert = db.prepare(
    `INSERT INTO gas_hours (meter_id, hour, at, r_gas, pending) VALUES (?, ?, ?, ?, 1)
     ON CONFLICT (meter_id, hour) DO UPDATE SET at = excluded.at, r_gas = excluded.r_gas, pending = 1
     WHERE excluded.at > gas_hours.at`,
  );
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
      for (const ms of [...hours.keys()].sort((a, b) => a - b)) {
        const r = hours.get(ms) as GasRead;
        const h = hourKey(ms);
        if (upsert.run(meterId, h, r.at, r.gas).changes === 0) continue;
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
