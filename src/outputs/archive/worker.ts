import { statSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import type Database from "better-sqlite3";
import { calendarStore } from "../../tariffs/calendar.js";
import { costStore } from "../../tariffs/statistics.js";
import { migrate, missingColumns, openWritable, sqlDir } from "./db.js";
import { type GasRead, gasKeeper, hourKeeper, hourOf, type NewReadings, REGISTERS } from "./hours.js";
import { intervalStore } from "./intervals.js";
import { maintenanceStore } from "./maintenance.js";
import type { ArchiveStore, Batch, FromWorker, MeterRow, ToWorker, WorkerInit } from "./protocol.js";

/**
 * The archive's only writer. It owns the connection, so a slow commit or WAL checkpoint stalls this
 * thread and never the serial reader on the main one.
 */

const port = parentPort;
if (!port) throw new Error("archive worker must run in a worker thread");
const init = workerData as WorkerInit;
const send = (m: FromWorker): void => port.postMessage(m);
/** Year 9999, as the archive's times go (src/outputs/archive/index.ts). */
const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function prepare(db: Database.Database): (batch: Batch) => number {
  const columns = [...init.numberColumns, ...init.stringColumns];
  const quoted = ["meter_id", "time", ...columns].map((c) => `"${c}"`);
  const insert = db.prepare(
    `INSERT OR IGNORE INTO readings (${quoted.join(", ")}) VALUES (${quoted.map(() => "?").join(", ")})`,
  );
  const upsertMeter = db.prepare(
    `INSERT INTO meters (id, name, type, manufacturer, model, serial_number, sw_version)
     VALUES (@id, @name, @type, @manufacturer, @model, @serial_number, @sw_version)
     ON CONFLICT (id) DO UPDATE SET
       name = coalesce(excluded.name, name),
       type = coalesce(excluded.type, type),
       manufacturer = coalesce(excluded.manufacturer, manufacturer),
       model = coalesce(excluded.model, model),
       serial_number = coalesce(excluded.serial_number, serial_number),
       sw_version = coalesce(excluded.sw_version, sw_version)`,
  );
  const seen = db.prepare(
    `INSERT INTO meters (id, first_seen, last_seen) VALUES (?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET
       first_seen = min(coalesce(first_seen, excluded.first_seen), excluded.first_seen),
       last_seen = max(coalesce(last_seen, excluded.last_seen), excluded.last_seen)`,
  );
  const nNum = init.numberColumns.length;
  const nStr = init.stringColumns.length;
  const params: (string | number | null)[] = new Array(2 + nNum + nStr).fill(null);
  const hours = hourKeeper(db);
  const gasHours = gasKeeper(db);
  const gasM3 = init.numberColumns.indexOf("gas_m3");
  const registerAt = REGISTERS.map(([c]) => init.numberColumns.indexOf(c));
  const gasAt = init.stringColumns.indexOf("gas_at");
  const count = db.prepare("UPDATE meters SET readings = readings + ? WHERE id = ?");
  const retentionMs = init.retentionDays ? init.retentionDays * 86_400_000 : undefined;

  return db.transaction((b: Batch): number => {
    for (const m of b.meters as MeterRow[]) upsertMeter.run(m);
    let inserted = 0;
    const span = new Map<string, [number, number]>();
    /** Hours (UTC ms) that gained readings with a register, per meter, and what those bring. */
    const touched = new Map<string, Map<number, NewReadings>>();
    /** Gas hours (UTC ms, of the gas meter's own reading time) that gained readings, per meter. */
    const gasTouched = new Map<string, Map<number, GasRead>>();
    /** Readings stored, per meter. */
    const perMeter = new Map<string, number>();
    for (let i = 0; i < b.count; i++) {
      const meterId = b.meterIds[i] as string;
      const t = b.times[i] as number;
      params[0] = meterId;
      params[1] = new Date(t).toISOString();
      for (let c = 0; c < nNum; c++) {
        const v = b.numbers[i * nNum + c] as number;
        params[2 + c] = Number.isNaN(v) ? null : v;
      }
      for (let c = 0; c < nStr; c++) params[2 + nNum + c] = b.strings[i * nStr + c] ?? null;
      const changes = insert.run(params).changes;
      inserted += changes;
      if (changes > 0) {
        perMeter.set(meterId, (perMeter.get(meterId) ?? 0) + 1);
        const g = gasM3 >= 0 && gasAt >= 0 ? params[2 + gasM3] : null;
        const at = typeof g === "number" ? params[2 + nNum + gasAt] : null;
        const atMs = typeof at === "string" ? Date.parse(at) : Number.NaN;
        if (typeof g === "number" && Number.isFinite(atMs) && atMs >= 0 && atMs <= MAX_TIME_MS) {
          // The archive's own time format, as strftime('%Y-%m-%dT%H:%M:%fZ') writes it in gas_hourly.
          const read = { at: new Date(atMs).toISOString(), gas: g };
          let byHour = gasTouched.get(meterId);
          if (!byHour) gasTouched.set(meterId, (byHour = new Map()));
          const hour = hourOf(atMs);
          const had = byHour.get(hour);
          if (!had || read.at > had.at) byHour.set(hour, read);
        }
        let any = false;
        for (const k of registerAt) if (k >= 0 && params[2 + k] !== null) any = true;
        if (any) {
          let byHour = touched.get(meterId);
          if (!byHour) touched.set(meterId, (byHour = new Map()));
          const hour = hourOf(t);
          const time = params[1] as string;
          const got = byHour.get(hour);
          const values = registerAt.map((k) => (k >= 0 ? (params[2 + k] as number | null) : null));
          if (!got)
            byHour.set(hour, {
              first: time,
              last: time,
              registers: values,
              at: values.map((v) => (v === null ? null : time)),
            });
          else {
            if (time < got.first) got.first = time;
            if (time > got.last) got.last = time;
            // Each register's value of the newest reading that has it.
            values.forEach((v, r) => {
              const at = got.at[r];
              if (v !== null && (at === null || at === undefined || time > at)) {
                got.registers[r] = v;
                got.at[r] = time;
              }
            });
          }
        }
      }
      const s = span.get(meterId);
      if (!s) span.set(meterId, [t, t]);
      else {
        if (t < s[0]) s[0] = t;
        if (t > s[1]) s[1] = t;
      }
    }
    // Hours whose raw readings retention has deleted keep their energy: a late reading there changes nothing.
    const kept = retentionMs === undefined ? Number.NEGATIVE_INFINITY : Date.now() - retentionMs;
    for (const [id, byHour] of touched) {
      for (const h of byHour.keys()) if (h < kept) byHour.delete(h);
      hours.update(id, byHour);
    }
    for (const [id, byHour] of gasTouched) {
      for (const h of byHour.keys()) if (h < kept) byHour.delete(h);
      gasHours.update(id, byHour);
    }
    for (const [id, [first, last]] of span) {
      seen.run(id, new Date(first).toISOString(), new Date(last).toISOString());
      const n = perMeter.get(id);
      if (n) count.run(n, id);
    }
    return inserted;
  });
}

let db: Database.Database | undefined;
let write: ((batch: Batch) => number) | undefined;
let store: ArchiveStore | undefined;
try {
  db = openWritable(init.path);
  const migrations = migrate(db, sqlDir());
  const missing = missingColumns(db, [...init.numberColumns, ...init.stringColumns]);
  if (missing.length > 0) {
    throw new Error(`the readings table lacks the columns ${missing.join(", ")}: add a migration under sql/`);
  }
  write = prepare(db);
  const path = init.path;
  const fileSize = (): number => {
    let bytes = 0;
    for (const f of [path, `${path}-wal`])
      try {
        bytes += statSync(f).size;
      } catch {}
    return bytes;
  };
  store = { ...intervalStore(db), ...calendarStore(db), ...costStore(db), ...maintenanceStore(db, fileSize) };
  send({ type: "ready", migrations });
} catch (err) {
  try {
    db?.close();
  } catch {}
  db = undefined;
  send({ type: "fatal", error: `cannot open the archive at ${init.path}: ${errorText(err)}` });
  port.close();
}

port.on("message", (m: ToWorker) => {
  if (m.type === "batch") {
    if (!write) return;
    const started = performance.now();
    try {
      const inserted = write(m.batch);
      send({ type: "done", seq: m.batch.seq, inserted, ms: performance.now() - started });
    } catch (err) {
      send({ type: "failed", seq: m.batch.seq, error: errorText(err) });
    }
  } else if (m.type === "call") {
    // Calls run in arrival order with the batches, on the one connection: a read sees every write posted before it.
    try {
      if (!store) throw new Error("the archive is not open");
      const fn = store[m.method] as (...args: unknown[]) => unknown;
      send({ type: "reply", id: m.id, ok: true, value: fn(...m.args) });
    } catch (err) {
      send({ type: "reply", id: m.id, ok: false, error: errorText(err) });
    }
  } else if (m.type === "close") {
    try {
      // Cheap upkeep SQLite recommends before closing a long-lived connection; it refreshes planner stats.
      db?.pragma("optimize");
      db?.close();
    } catch {}
    db = undefined;
    write = undefined;
    store = undefined;
    send({ type: "closed" });
    port.close();
  }
});
