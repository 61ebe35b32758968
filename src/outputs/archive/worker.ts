import { statSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import type Database from "better-sqlite3";
import { calendarStore } from "../../tariffs/calendar.js";
import { costStore } from "../../tariffs/statistics.js";
import { migrate, missingColumns, openWritable, sqlDir } from "./db.js";
import { gasKeeper, hourKeeper, hourOf } from "./hours.js";
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
  const gasAt = init.stringColumns.indexOf("gas_at");
  const count = db.prepare("UPDATE meters SET readings = readings + ? WHERE id = ?");
  const retentionMs = init.retentionDays ? init.retentionDays * 86_400_000 : undefined;

  return db.transaction((b: Batch): number => {
    for (const m of b.meters as MeterRow[]) upsertMeter.run(m);
    let inserted = 0;
    const span = new Map<string, [number, number]>();
    /** Hours (UTC ms) that gained readings, per meter. */
    const touched = new Map<string, Set<number>>();
    /** Gas hours (UTC ms, of the gas meter's own reading time) that gained readings, per meter. */
    const gasTouched = new Map<string, Set<number>>();
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
        const at = gasM3 >= 0 && gasAt >= 0 && params[2 + gasM3] !== null ? params[2 + nNum + gasAt] : null;
        const atMs = typeof at === "string" ? Date.parse(at) : Number.NaN;
        if (Number.isFinite(atMs)) {
          const g = gasTouched.get(meterId);
          if (g) g.add(hourOf(atMs));
          else gasTouched.set(meterId, new Set([hourOf(atMs)]));
        }
        const set = touched.get(meterId);
        if (set) set.add(hourOf(t));
        else touched.set(meterId, new Set([hourOf(t)]));
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
    for (const [id, set] of touched)
      hours.update(
        id,
        [...set].filter((h) => h >= kept).sort((a, b) => a - b),
      );
    for (const [id, set] of gasTouched)
      gasHours.update(
        id,
        [...set].filter((h) => h >= kept).sort((a, b) => a - b),
      );
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
