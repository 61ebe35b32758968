import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ArchiveConfig } from "../src/config/schema.js";
import { ARCHIVE_COLUMNS } from "../src/model/quantities.js";
import type { Reading } from "../src/model/types.js";
import { sqlDir } from "../src/outputs/archive/db.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { ManualClock } from "../src/util/clock.js";
import type { Logger } from "../src/util/log.js";

const T0 = Date.UTC(2024, 2, 5, 12, 0, 0);

function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const put =
    (level: string) =>
    (m: string | (() => string)): void => {
      lines.push(`${level} ${typeof m === "function" ? m() : m}`);
    };
  const log: Logger = {
    debug: put("debug"),
    info: put("info"),
    warn: put("warn"),
    error: put("error"),
    child: () => log,
  };
  return { log, lines };
}

async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let dir: string;
let path: string;
const open: Archive[] = [];
const dbs: Database.Database[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "m2m-archive-"));
  path = join(dir, "sub", "archive.sqlite");
});
afterEach(async () => {
  for (const db of dbs.splice(0)) db.close();
  await Promise.all(open.splice(0).map((a) => a.stop()));
  rmSync(dir, { recursive: true, force: true });
});

function archive(cfg: Partial<ArchiveConfig> = {}, clock = new ManualClock(T0)) {
  const { log, lines } = captureLog();
  const a = new Archive({ enabled: true, path, interval: 0, ...cfg }, { clock, log });
  open.push(a);
  return { a, lines, clock };
}

function reader(): Database.Database {
  const db = openArchiveReadOnly(path);
  dbs.push(db);
  return db;
}

/** A second writable connection, standing in for a user or a failing disk. */
function tamper(): Database.Database {
  const db = new Database(path);
  db.pragma("busy_timeout = 5000");
  dbs.push(db);
  return db;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const count = (db: Database.Database): number =>
  (db.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n;

describe("schema", () => {
  it("has one readings column per ARCHIVE_COLUMNS entry, with the catalogue's type", async () => {
    const { a } = archive();
    await a.start();
    const info = reader().pragma("table_info(readings)") as { name: string; type: string; pk: number }[];
    const actual = Object.fromEntries(info.map((c) => [c.name, c.type]));
    const expected: Record<string, string> = { meter_id: "TEXT", time: "TEXT" };
    for (const q of ARCHIVE_COLUMNS) expected[q.name] = q.type === "number" ? "REAL" : "TEXT";
    expect(actual).toEqual(expected);
    expect(info.filter((c) => c.pk > 0).map((c) => c.name)).toEqual(["meter_id", "time"]);
    const sql = (reader().prepare("SELECT sql FROM sqlite_master WHERE name = 'readings'").get() as { sql: string })
      .sql;
    expect(sql).toMatch(/WITHOUT ROWID/);
  });

  it("applies each migration once, in name order, and opens the database in WAL mode", async () => {
    const first = archive();
    await first.a.start();
    await first.a.stop();
    const second = archive();
    await second.a.start();
    await second.a.stop();
    const files = readdirSync(sqlDir())
      .filter((f) => f.endsWith(".sql"))
      .sort();
    expect(files.length).toBeGreaterThanOrEqual(2);
    const db = reader();
    const rows = db.prepare("SELECT version FROM schema_migrations ORDER BY rowid").all() as { version: string }[];
    expect(rows.map((r) => r.version)).toEqual(files.map((f) => f.replace(/\.sql$/, "")));
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    const views = db.prepare("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name").all();
    expect(views.map((v) => (v as { name: string }).name)).toEqual([
      "energy_daily",
      "energy_hourly",
      "gas_daily",
      "gas_hourly",
      "intervals_current",
      "intervals_daily",
      "intervals_hourly",
      "readings_latest",
      "report_daily",
      "report_hourly",
      "report_monthly",
    ]);
  });

  it("rejects start() with the path in the message when the directory cannot be created", async () => {
    writeFileSync(join(dir, "file"), "");
    const { log } = captureLog();
    const a = new Archive({ enabled: true, path: join(dir, "file", "x.sqlite"), interval: 0 }, { log });
    await expect(a.start()).rejects.toThrow(/cannot open the archive at .*file\/x\.sqlite/);
    await a.stop();
  });
});

describe("rows", () => {
  it("keeps one reading per meter per interval, by reading time, restarting when the time goes back", async () => {
    const { a } = archive({ interval: 60 });
    await a.start();
    const s = (sec: number): number => T0 + sec * 1000;
    // A reading with nothing the archive stores must not use up the interval.
    a.add({ meterId: "a", time: s(-5), values: { frames_received: 3 } });
    for (const sec of [0, 30, 59.999, 60, 61, 119, 120.5, 10, 70, 75]) {
      a.add({ meterId: "a", time: s(sec), values: { power_import_w: sec } });
    }
    // Another meter has its own interval.
    for (let sec = 5; sec <= 185; sec += 10) a.add({ meterId: "b", time: s(sec), values: { power_import_w: sec } });
    await a.flush();
    const rows = reader().prepare("SELECT meter_id, time FROM readings ORDER BY meter_id, time").all();
    expect(rows).toEqual([
      ...[0, 10, 60, 70, 120.5].map((sec) => ({ meter_id: "a", time: iso(s(sec)) })),
      ...[5, 65, 125, 185].map((sec) => ({ meter_id: "b", time: iso(s(sec)) })),
    ]);
    expect(a.stats).toMatchObject({ queued: 0, written: 9 });
  });

  it("keeps every reading with interval 0 and stores times as ISO UTC with milliseconds", async () => {
    const { a } = archive({ interval: 0 });
    await a.start();
    for (let i = 0; i < 7; i++) a.add({ meterId: "m", time: T0 + i * 137, values: { energy_import_kwh: i } });
    await a.flush();
    const times = reader().prepare("SELECT time FROM readings ORDER BY time").pluck().all();
    expect(times).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => iso(T0 + i * 137)));
    expect(times[1]).toBe("2024-03-05T12:00:00.137Z");
  });

  it("stores catalogue values by name and skips bad ones without throwing", async () => {
    const { a, lines } = archive();
    await a.start();
    a.add({
      meterId: "m",
      time: T0,
      values: {
        energy_import_kwh: 1234.567,
        power_import_w: Number.NaN,
        power_export_w: Number.POSITIVE_INFINITY,
        voltage_l1_v: "230.1" as unknown as number,
        gas_m3: 55.5,
        gas_at: "2024-03-05T11:55:00Z",
        water_at: 17 as unknown as string,
        not_a_quantity: 5,
        frames_received: 10,
      },
    });
    for (let i = 1; i <= 3; i++)
      a.add({ meterId: "m", time: T0 + i * 1000, values: { power_import_w: Number.NaN, tariff: 2 } });
    expect(() => a.add(null as unknown as Reading)).not.toThrow();
    expect(() => a.add({ meterId: "m", time: Number.NaN, values: { tariff: 1 } })).not.toThrow();
    expect(() => a.add({ meterId: "m", time: T0 + 9000 } as Reading)).not.toThrow();
    expect(() => a.add({ meterId: "", time: T0, values: { tariff: 1 } })).not.toThrow();
    await a.flush();
    const row = reader()
      .prepare(
        "SELECT energy_import_kwh, power_import_w, power_export_w, voltage_l1_v, gas_m3, gas_at, water_at FROM readings WHERE time = ?",
      )
      .get(iso(T0));
    expect(row).toEqual({
      energy_import_kwh: 1234.567,
      power_import_w: null,
      power_export_w: null,
      voltage_l1_v: null,
      gas_m3: 55.5,
      gas_at: "2024-03-05T11:55:00Z",
      water_at: null,
    });
    expect(count(reader())).toBe(4);
    // One line per meter and quantity, not one per reading.
    expect(lines.filter((l) => l.includes("power_import_w=NaN"))).toHaveLength(1);
    expect(lines.some((l) => l.includes("power_export_w=Infinity"))).toBe(true);
    expect(lines.some((l) => l.includes("voltage_l1_v=230.1"))).toBe(true);
  });

  it("stores nothing twice when the same readings are replayed", async () => {
    const readings: Reading[] = [];
    for (let i = 0; i < 1200; i++) readings.push({ meterId: "m", time: T0 + i * 1000, values: { power_import_w: i } });
    const first = archive();
    await first.a.start();
    for (const r of readings) first.a.add(r);
    await first.a.stop();
    expect(first.a.stats.written).toBe(1200);

    const second = archive();
    await second.a.start();
    for (const r of readings) second.a.add({ ...r, values: { power_import_w: -1 } });
    second.a.add({ meterId: "m", time: T0 + 1200 * 1000, values: { power_import_w: 1200 } });
    await second.a.stop();
    expect(second.a.stats).toMatchObject({ queued: 0, written: 1 });
    const db = reader();
    expect(count(db)).toBe(1201);
    // The first write wins: a replay does not overwrite what was stored.
    expect(db.prepare("SELECT sum(power_import_w) FROM readings").pluck().get()).toBe((1200 * 1201) / 2);
  });

  it("describes meters and tracks the span of their archived readings", async () => {
    const { a } = archive();
    await a.start();
    a.upsertMeter({ id: "home", name: "Home", type: "dsmr", manufacturer: "Landis+Gyr" });
    a.add({ meterId: "home", time: T0 + 60_000, values: { tariff: 1 } });
    a.add({ meterId: "home", time: T0 + 120_000, values: { tariff: 2 } });
    a.add({ meterId: "other", time: T0, values: { tariff: 1 } });
    await a.flush();
    a.upsertMeter({ id: "home", type: "dsmr", serialNumber: "E0031003", swVersion: "5.0", meterId: "home" });
    a.add({ meterId: "home", time: T0 - 60_000, values: { tariff: 1 } });
    await a.flush();
    const meters = reader().prepare("SELECT * FROM meters ORDER BY id").all();
    expect(meters).toEqual([
      {
        id: "home",
        name: "Home",
        type: "dsmr",
        manufacturer: "Landis+Gyr",
        model: null,
        serial_number: "E0031003",
        sw_version: "5.0",
        first_seen: iso(T0 - 60_000),
        last_seen: iso(T0 + 120_000),
        timezone: null,
        readings: 3,
      },
      {
        id: "other",
        name: null,
        type: null,
        manufacturer: null,
        model: null,
        serial_number: null,
        sw_version: null,
        first_seen: iso(T0),
        last_seen: iso(T0),
        timezone: null,
        readings: 1,
      },
    ]);
    const latest = reader().prepare("SELECT meter_id, time, tariff FROM readings_latest ORDER BY meter_id").all();
    expect(latest).toEqual([
      { meter_id: "home", time: iso(T0 + 120_000), tariff: 2 },
      { meter_id: "other", time: iso(T0), tariff: 1 },
    ]);
  });
});

describe("batching and shutdown", () => {
  it("posts a batch after a second of the injected clock or at 500 rows", async () => {
    const { a, clock } = archive();
    await a.start();
    for (let i = 0; i < 499; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { tariff: 1 } });
    await new Promise((r) => setTimeout(r, 100));
    expect(a.stats.batches).toBe(0);
    a.add({ meterId: "m", time: T0 + 499_000, values: { tariff: 1 } });
    await until(() => a.stats.batches === 1, "the 500-row batch");
    expect(a.stats.written).toBe(500);

    a.add({ meterId: "m", time: T0 + 500_000, values: { tariff: 1 } });
    clock.advance(999);
    await new Promise((r) => setTimeout(r, 100));
    expect(a.stats.batches).toBe(1);
    clock.advance(1);
    await until(() => a.stats.batches === 2, "the timed batch");
    expect(a.stats).toMatchObject({ queued: 0, written: 501 });
  });

  it("stop() writes everything queued, closes the database and is idempotent", async () => {
    const { a } = archive();
    await a.start();
    for (let i = 0; i < 1234; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { power_import_w: i } });
    a.upsertMeter({ id: "m", type: "dsmr" });
    const stopping = a.stop();
    expect(a.stop()).toBe(stopping);
    await stopping;
    await a.stop();
    await a.flush();
    a.add({ meterId: "m", time: T0 + 5_000_000, values: { power_import_w: 1 } });
    expect(a.stats).toMatchObject({ queued: 0, written: 1234 });
    // The last connection closing checkpoints and removes the WAL: the worker closed the database.
    expect(existsSync(`${path}-wal`)).toBe(false);
    const db = reader();
    expect(count(db)).toBe(1234);
    expect(db.prepare("SELECT type FROM meters WHERE id = 'm'").pluck().get()).toBe("dsmr");
  });

  it("writes what was added before start() once started", async () => {
    const { a } = archive();
    for (let i = 0; i < 10; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { tariff: 1 } });
    const flushed = a.flush();
    await a.start();
    await flushed;
    expect(count(reader())).toBe(10);
  });
});

describe("failures", () => {
  const failing = `CREATE TRIGGER fail BEFORE INSERT ON readings BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END`;

  it("keeps the rows of a failed batch and retries until it is written", async () => {
    const { a, clock, lines } = archive();
    await a.start();
    for (let i = 0; i < 100; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { power_import_w: i } });
    await a.flush();
    const db = tamper();
    db.exec(failing);

    for (let i = 100; i < 300; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { power_import_w: i } });
    let flushed = false;
    const flushing = a.flush().then(() => (flushed = true));
    await until(() => a.stats.failedBatches === 1, "the first failure");
    // More readings arrive during the outage.
    for (let i = 300; i < 400; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { power_import_w: i } });
    clock.advance(60_000);
    await until(() => a.stats.failedBatches === 2, "the retry to fail too");
    expect(flushed).toBe(false);
    expect(a.stats.queued).toBe(300);

    db.exec("DROP TRIGGER fail");
    clock.advance(60_000);
    await flushing;
    await a.flush();
    expect(a.stats).toMatchObject({ queued: 0, written: 400 });
    expect(count(reader())).toBe(400);
    expect(reader().prepare("SELECT sum(power_import_w) FROM readings").pluck().get()).toBe((399 * 400) / 2);
    expect(lines.some((l) => l.startsWith("warn") && l.includes("simulated disk failure"))).toBe(true);
  });

  it("drops the oldest rows beyond 100k waiting, with a log line, and writes the rest", async () => {
    const { a, clock, lines } = archive();
    await a.start();
    const db = tamper();
    db.exec(failing);
    const total = 101_500;
    for (let i = 0; i < total; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { tariff: 1 } });
    await until(() => a.stats.failedBatches >= 1, "a failure");
    expect(a.stats.queued).toBeLessThanOrEqual(100_000);
    expect(a.stats.queued).toBeGreaterThanOrEqual(100_000 - 500);
    const dropped = lines.filter((l) => l.startsWith("error") && l.includes("dropped the oldest"));
    expect(dropped.length).toBeGreaterThanOrEqual(1);

    db.exec("DROP TRIGGER fail");
    const kept = a.stats.queued;
    clock.advance(60_000);
    await a.flush();
    const r = reader();
    expect(count(r)).toBe(kept);
    // The newest readings survived, the oldest went.
    expect(r.prepare("SELECT max(time) FROM readings").pluck().get()).toBe(iso(T0 + (total - 1) * 1000));
    expect(r.prepare("SELECT min(time) FROM readings").pluck().get()).toBe(iso(T0 + (total - kept) * 1000));
  });

  it("gives up on a batch that still fails on stop, so shutdown ends", async () => {
    const { a, lines } = archive();
    await a.start();
    tamper().exec(failing);
    for (let i = 0; i < 10; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { tariff: 1 } });
    await a.stop();
    expect(a.stats.queued).toBe(0);
    expect(a.stats.failedBatches).toBeGreaterThanOrEqual(3);
    expect(lines.some((l) => l.startsWith("error") && l.includes("10 rows not archived"))).toBe(true);
  });
});

describe("the main thread", () => {
  it("keeps ticking while the worker spends a long time on a batch", async () => {
    const { a } = archive();
    await a.start();
    // Each insert now burns a few ms of CPU inside SQLite (counting, not allocating, so the worker does not
    // contend with this thread for the allocator): a 300-row batch takes about a second.
    tamper().exec(`
      CREATE VIEW burn AS WITH RECURSIVE c (x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
        SELECT count(*) FROM c;
      CREATE TRIGGER slow AFTER INSERT ON readings BEGIN SELECT * FROM burn; END;
    `);
    let last = performance.now();
    let maxGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    const started = performance.now();
    try {
      for (let i = 0; i < 300; i++) a.add({ meterId: "m", time: T0 + i * 1000, values: { power_import_w: i } });
      await a.flush();
    } finally {
      clearInterval(ticker);
    }
    const writeMs = performance.now() - started;
    expect(count(reader())).toBe(300);
    // Had the batch been written on this thread, one tick would have waited the whole write.
    expect(writeMs).toBeGreaterThan(500);
    expect(maxGap).toBeLessThan(200);
  });
});
