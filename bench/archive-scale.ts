/**
 * The archive at scale, for `npm run bench` (issue 13). Prints figures, asserts nothing.
 *   1. An archive of two meter-years of 1-minute readings (1,051,200 rows), built once and cached under the temp
 *      folder: written as an archive made before the hourly table (migrations up to 007), then upgraded, which
 *      times the upgrade's backfill. Then a one-day and a one-year `report daily` (queryReport, what the CLI runs,
 *      calendar check included) and one day from each view.
 *   2. The main thread's longest stall while the archive's worker prices the calendar of 100 meters with a tariff
 *      (the first time, then a daily refresh), with each of the 100 meters sending a reading a second meanwhile.
 *   3. Peak RSS of `meter2mqtt import` of a 150 MB Smart Meter Texas CSV (generated once, cached), in a process of
 *      its own (the built CLI when it is newer than the sources).
 * Aims (issue 13): one-day report < 20 ms, a year < 200 ms, stalls < 20 ms, import RSS < 200 MB.
 */

import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseConfig } from "../src/config/load.js";
import { migrate, openReadOnly, openWritable, sqlDir } from "../src/outputs/archive/db.js";
import { Archive } from "../src/outputs/archive/index.js";
import { queryReport } from "../src/reports/index.js";
import { writeCalendar } from "../src/tariffs/calendar.js";
import { calendarMeters, TariffService } from "../src/tariffs/index.js";
import { ManualClock } from "../src/util/clock.js";
import { BATCH_HEAP_FLAGS } from "../src/util/heap.js";
import type { Logger } from "../src/util/log.js";
import { smtCsv, smtDay } from "../test/helpers/smt.js";

const ROOT = join(import.meta.dirname, "..");
const CACHE = join(tmpdir(), "meter2mqtt-bench-cache");
/** Bump when the cached archive's content changes. */
const VERSION = "scale-v1";
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const YEAR_START = Date.parse("2025-01-01T00:00:00Z");
const MINUTES = 365 * 1440;
const NOW = Date.parse("2026-01-15T12:00:00Z");
const METERS = ["home", "cabin"] as const;

const CONFIG = parseConfig({
  meters: [
    { id: "home", type: "dsmr", port: "/dev/null", timezone: "Europe/Amsterdam" },
    { id: "cabin", type: "dsmr", port: "/dev/null", timezone: "Europe/Amsterdam" },
  ],
  tariffs: {
    home: {
      meters: ["home"],
      currency: "EUR",
      import: [{ from: "07:00", to: "23:00", days: ["mon", "tue", "wed", "thu", "fri"], price: 0.3 }, { price: 0.2 }],
      export: 0.08,
      daily_charge: 0.72,
    },
  },
});

const since = (t0: number): number => performance.now() - t0;
const fmt = (x: number): string => (x < 10 ? x.toFixed(2) : x.toFixed(0));

/** The median time of `runs` calls after one warm-up. */
function timed(runs: number, fn: () => unknown): { ms: number; result: unknown } {
  let result = fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    result = fn();
    times.push(since(t0));
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)] as number, result };
}

/** Builds (or finds) the two-meter-year archive; returns its path and, when built now, the build figures. */
export function scaleArchive(): { path: string; built?: Record<string, string> } {
  mkdirSync(CACHE, { recursive: true });
  const path = join(CACHE, `${VERSION}.sqlite`);
  if (existsSync(path)) return { path };
  const building = join(CACHE, `${VERSION}.building.sqlite`);
  for (const f of [building, `${building}-wal`, `${building}-shm`]) rmSync(f, { force: true });
  // An archive as it was before 008: the readings, then the upgrade fills the hourly table from them.
  const old = mkdtempSync(join(tmpdir(), "m2m-sql007-"));
  for (const f of readdirSync(sqlDir())) if (f < "008") copyFileSync(join(sqlDir(), f), join(old, f));
  const db = openWritable(building);
  const t0 = performance.now();
  migrate(db, old);
  rmSync(old, { recursive: true, force: true });
  const insert = db.prepare(
    `INSERT INTO readings (meter_id, time, energy_import_kwh, energy_import_tariff1_kwh, energy_import_tariff2_kwh,
       energy_export_kwh, energy_export_tariff1_kwh, energy_export_tariff2_kwh, power_import_w, power_export_w,
       voltage_l1_v, current_l1_a, gas_m3, gas_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const state = METERS.map((_, k) => ({ imp1: 10_000 + k * 1000, imp2: 8_000, exp1: 1_000, exp2: 2_000, gas: 4_000 }));
  const round3 = (x: number): number => Math.round(x * 1000) / 1000;
  for (let from = 0; from < MINUTES; from += 1440) {
    db.transaction(() => {
      for (let i = from; i < from + 1440; i++) {
        const t = YEAR_START + i * 60_000;
        const hour = new Date(t).getUTCHours();
        const sun = hour >= 9 && hour < 16 ? Math.sin(((hour - 9) / 7) * Math.PI) : 0;
        const iso = new Date(t).toISOString();
        const gasAt = new Date(Math.floor(t / 300_000) * 300_000).toISOString().replace(".000Z", "Z");
        METERS.forEach((id, k) => {
          const s = state[k] as (typeof state)[number];
          const w = 250 + 200 * Math.sin((i % 1440) / 229) ** 2 + k * 50;
          const night = hour < 6 || hour >= 22;
          if (night) s.imp1 += w / 60_000;
          else s.imp2 += w / 60_000;
          if (sun > 0) s.exp2 += (sun * 1500) / 60_000;
          if (i % 5 === 0) s.gas += 0.002 + (night ? 0 : 0.004);
          const imp1 = round3(s.imp1);
          const imp2 = round3(s.imp2);
          const exp1 = round3(s.exp1);
          const exp2 = round3(s.exp2);
          const gas = round3(s.gas);
          insert.run(
            id,
            iso,
            round3(imp1 + imp2),
            imp1,
            imp2,
            round3(exp1 + exp2),
            exp1,
            exp2,
            Math.round(w),
            0,
            230.1,
            w / 230,
            gas,
            gasAt,
          );
        });
      }
    })();
  }
  const writeMs = since(t0);
  const t1 = performance.now();
  migrate(db, sqlDir());
  const upgradeMs = since(t1);
  const t2 = performance.now();
  for (const m of calendarMeters(CONFIG)) writeCalendar(db, m, YEAR_START, YEAR_START + 365 * 86_400_000 - 1, NOW);
  const calendarMs = since(t2);
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  renameSync(building, path);
  return {
    path,
    built: {
      "readings written (2 meter-years, 1 a minute)": `${(METERS.length * MINUTES).toLocaleString("en")} in ${(writeMs / 1000).toFixed(1)} s`,
      "upgrade of that archive (008: hourly table backfill)": `${(upgradeMs / 1000).toFixed(1)} s`,
      "calendar of the year, both meters (first time)": `${(calendarMs / 1000).toFixed(1)} s`,
    },
  };
}

export function queries(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  out["archive (cached under the temp folder)"] = `${(statSync(path).size / 1e6).toFixed(0)} MB, ${path}`;
  const db = openWritable(path);
  try {
    migrate(db, sqlDir());
    const home = calendarMeters(CONFIG).find((m) => m.id === "home") as ReturnType<typeof calendarMeters>[number];
    const day = timed(9, () => queryReport(db, home, "daily", { from: "2025-06-18", to: "2025-06-18" }, NOW));
    const year = timed(5, () => queryReport(db, home, "daily", { from: "2025-01-01", to: "2025-12-31" }, NOW));
    const months = timed(5, () => queryReport(db, home, "monthly", { from: "2025-01-01", to: "2025-12-31" }, NOW));
    out["report daily, one day (aim < 20 ms)"] = `${fmt(day.ms)} ms (${(day.result as unknown[]).length} row)`;
    out["report daily, one year (aim < 200 ms)"] = `${fmt(year.ms)} ms (${(year.result as unknown[]).length} rows)`;
    out["report monthly, one year"] = `${fmt(months.ms)} ms (${(months.result as unknown[]).length} rows)`;
    const h0 = "2025-06-17T22:00:00Z";
    const h1 = "2025-06-18T21:00:00Z";
    const views: [string, string][] = [
      ["energy_hourly", `SELECT * FROM energy_hourly WHERE meter_id = 'home' AND hour BETWEEN '${h0}' AND '${h1}'`],
      ["energy_daily", `SELECT * FROM energy_daily WHERE meter_id = 'home' AND day = '2025-06-18'`],
      ["gas_hourly", `SELECT * FROM gas_hourly WHERE meter_id = 'home' AND hour BETWEEN '${h0}' AND '${h1}'`],
      ["gas_daily", `SELECT * FROM gas_daily WHERE meter_id = 'home' AND day = '2025-06-18'`],
      ["report_hourly", `SELECT * FROM report_hourly WHERE meter_id = 'home' AND day = '2025-06-18'`],
      ["report_daily", `SELECT * FROM report_daily WHERE meter_id = 'home' AND day = '2025-06-18'`],
      ["report_monthly (a month)", `SELECT * FROM report_monthly WHERE meter_id = 'home' AND month = '2025-06'`],
      ["intervals_daily", `SELECT * FROM intervals_daily WHERE meter_id = 'home' AND day = '2025-06-18'`],
      ["readings_latest", "SELECT * FROM readings_latest"],
    ];
    process.env.TZ = "Europe/Amsterdam";
    for (const [name, sql] of views) {
      const stmt = db.prepare(sql);
      const r = timed(3, () => stmt.all());
      out[`one day of ${name}`] = `${fmt(r.ms)} ms (${(r.result as unknown[]).length} rows)`;
    }
  } finally {
    db.close();
  }
  return out;
}

/** 100 meters with a tariff, a month of data each: the calendar priced in the worker while readings flow. */
export async function calendarStall(): Promise<Record<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), "m2m-bench-cal-"));
  const path = join(dir, "a.sqlite");
  const ids = Array.from({ length: 100 }, (_, i) => `m${String(i).padStart(3, "0")}`);
  const config = parseConfig({
    archive: { path, interval: 0 },
    meters: ids.map((id) => ({ id, type: "dsmr", port: "/dev/null", timezone: "Europe/Amsterdam" })),
    tariffs: {
      flat: {
        meters: ids,
        currency: "EUR",
        import: [{ from: "07:00", to: "23:00", price: 0.3 }, { price: 0.2 }],
        daily_charge: 0.5,
      },
    },
  });
  let now = Date.parse("2026-01-15T12:00:00Z");
  const clock = new ManualClock(now);
  const archive = new Archive(config.archive, { clock, log: quiet });
  const out: Record<string, string> = {};
  try {
    await archive.start();
    // Each meter's first reading a month ago: the calendar runs from there to the end of next month.
    for (const id of ids) archive.add({ meterId: id, time: now - 31 * 86_400_000, values: { energy_import_kwh: 1 } });
    await archive.flush();
    for (const [label, advance] of [
      ["first time, 100 meters × 3 months", 0],
      ["daily, a day later", 86_400_000],
    ] as const) {
      now += advance;
      clock.advance(advance);
      const tariffs = new TariffService(config, { clock, log: quiet });
      const delay = monitorEventLoopDelay({ resolution: 1 });
      let flowing = true;
      let readings = 0;
      // Every meter sends a reading a second: one of the 100 every 10 ms.
      const flow = (async () => {
        let t = now;
        let k = 0;
        while (flowing) {
          t += 10;
          archive.add({
            meterId: ids[k++ % ids.length] as string,
            time: t,
            values: { energy_import_kwh: 2, power_import_w: 500 },
          });
          readings++;
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      // The same flow without the calendar first: what the machine's own load gives (other processes, GC).
      const base = monitorEventLoopDelay({ resolution: 1 });
      base.enable();
      await new Promise((r) => setTimeout(r, 3000));
      base.disable();
      delay.enable();
      const t0 = performance.now();
      tariffs.startCalendar(archive);
      await tariffs.calendarDone;
      const took = since(t0);
      delay.disable();
      tariffs.stop();
      flowing = false;
      await flow;
      await archive.flush();
      out[`calendar refresh, ${label}`] =
        `main thread's longest stall ${(delay.max / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms (aim < 20 ms; without the calendar ${(base.max / 1e6).toFixed(1)} ms, p99 ${(base.percentile(99) / 1e6).toFixed(1)} ms); worker ${(took / 1000).toFixed(1)} s, ${readings.toLocaleString("en")} readings archived meanwhile`;
    }
    await archive.stop();
    const db = openReadOnly(path);
    const slots = db.prepare("SELECT count(*) FROM tariff_slots").pluck().get() as number;
    db.close();
    out["calendar of 100 meters"] =
      `${slots.toLocaleString("en")} quarter hours, archive ${(statSync(path).size / 1e6).toFixed(0)} MB`;
  } finally {
    await archive.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** A 150 MB SMT CSV (both channels, day after day), generated once into the cache. */
async function bigCsv(): Promise<string> {
  const path = join(CACHE, "smt-150mb.csv");
  if (existsSync(path)) return path;
  const tmp = `${path}.part`;
  const out = createWriteStream(tmp);
  let bytes = 0;
  let first = true;
  for (let t = Date.UTC(2000, 0, 1); bytes < 150e6; t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    let text = smtCsv(smtDay({ day, channels: ["Consumption", "Surplus Generation"] }));
    if (!first) text = text.slice(text.indexOf("\n") + 1);
    first = false;
    bytes += Buffer.byteLength(text);
    if (!out.write(text)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error) => (err ? reject(err) : resolve())));
  renameSync(tmp, path);
  return path;
}

export async function importRss(): Promise<Record<string, string>> {
  const csv = await bigCsv();
  const dir = mkdtempSync(join(tmpdir(), "m2m-bench-import-"));
  try {
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        log_level: "warn",
        archive: { path: join(dir, "a.sqlite") },
        meters: [{ id: "texas", type: "smt", folder: dir, timezone: "America/Chicago" }],
      }),
    );
    // The built CLI (npm run bench builds first) when it is at least as new as the sources, else the sources.
    const dist = join(ROOT, "dist", "sources", "smt", "import.js");
    const source = join(ROOT, "src", "sources", "smt", "files.ts");
    const built = existsSync(dist) && statSync(dist).mtimeMs >= statSync(source).mtimeMs;
    const script = join(dir, "import.mjs");
    writeFileSync(
      script,
      [
        `const m = await import(${JSON.stringify(built ? dist : join(ROOT, "src", "sources", "smt", "import.ts"))});`,
        `const code = await m.runImport(["--config", ${JSON.stringify(config)}, ${JSON.stringify(csv)}]);`,
        `process.stderr.write("RSS " + process.resourceUsage().maxRSS + " " + code + "\\n");`,
        "process.exit(code);",
      ].join("\n"),
    );
    const t0 = performance.now();
    // With the heap flags `meter2mqtt import` runs itself with (src/util/heap.ts).
    const r = spawnSync(process.execPath, [...BATCH_HEAP_FLAGS, ...(built ? [] : ["--import", "tsx"]), script], {
      cwd: ROOT,
      encoding: "utf8",
      maxBuffer: 64 << 20,
    });
    const took = since(t0);
    const m = /RSS (\d+) (\d+)/.exec(r.stderr);
    const label = `import of a 150 MB SMT CSV (own process as the CLI runs it, ${built ? "built" : "sources via tsx"})`;
    if (!m) return { [label]: `failed: ${r.stderr.trim().split("\n").slice(-3).join(" ")}` };
    return {
      [label]: `peak RSS ${(Number(m[1]) / 1024).toFixed(0)} MiB (aim < 200 MB), ${(took / 1000).toFixed(0)} s; ${r.stdout.trim().split("\n").at(-1)}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchArchiveScale(): Promise<Record<string, string>> {
  const { path, built } = scaleArchive();
  return { ...built, ...queries(path), ...(await calendarStall()), ...(await importRss()) };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, "/bench/"))) {
  benchArchiveScale().then(
    (r) => {
      for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(58)} ${v}`);
      process.exit(0);
    },
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
