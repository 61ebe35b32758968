import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Reading } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import type { Logger } from "../src/util/log.js";

const READINGS = 100_000;
/** Readings handed over per turn of the event loop, as a busy source would. */
const PER_TICK = 50;
const TICK_MS = 2;

/** A DSMR 5 telegram's worth of values (Belgian capacity tariff and gas included). */
function dsmrReading(i: number, t0: number): Reading {
  const time = t0 + i * 1000;
  const kwh = (x: number): number => Math.round(x * 1000) / 1000;
  const values: Record<string, number | string> = {
    energy_import_kwh: kwh(20_000 + i * 0.0004),
    energy_import_tariff1_kwh: kwh(12_000 + i * 0.0002),
    energy_import_tariff2_kwh: kwh(8_000 + i * 0.0002),
    energy_export_kwh: kwh(3_000 + i * 0.0001),
    energy_export_tariff1_kwh: kwh(1_000 + i * 0.00005),
    energy_export_tariff2_kwh: kwh(2_000 + i * 0.00005),
    power_import_w: 1000 + (i % 700),
    power_export_w: 0,
    power_net_w: 1000 + (i % 700),
    tariff: (i >> 10) % 2 ? 2 : 1,
    power_failures: 4,
    long_power_failures: 2,
    demand_quarter_hour_w: 1800 + (i % 300),
    demand_month_peak_w: 4200,
    demand_month_peak_at: "2024-03-02T18:15:00Z",
    gas_m3: kwh(4000 + Math.floor(i / 300) * 0.012),
    gas_at: new Date(t0 + Math.floor(i / 300) * 300_000).toISOString().replace(".000Z", "Z"),
  };
  for (const p of [1, 2, 3]) {
    values[`power_import_l${p}_w`] = 300 + ((i + p) % 250);
    values[`power_export_l${p}_w`] = 0;
    values[`voltage_l${p}_v`] = 229 + ((i * p) % 30) / 10;
    values[`current_l${p}_a`] = 1 + ((i + p) % 20) / 10;
    values[`voltage_sags_l${p}`] = 1;
    values[`voltage_swells_l${p}`] = 0;
  }
  return { meterId: "bench", time, values };
}

/**
 * Writes 100k full DSMR readings through Archive (keep-interval 0) and reports the throughput end to
 * end (first add() to flush() resolved) and how long the main thread's event loop was ever held up
 * meanwhile, which is what a serial reader on that thread would feel.
 */
export async function benchArchive(): Promise<Record<string, string | number>> {
  const dir = mkdtempSync(join(tmpdir(), "m2m-bench-archive-"));
  const path = join(dir, "bench.sqlite");
  const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet };
  const archive = new Archive({ enabled: true, path, interval: 0 }, { log: quiet });
  try {
    await archive.start();
    const t0 = Date.UTC(2024, 2, 1);
    // Made as they are handed over, like a decoder does: a prebuilt array of 100k readings would put
    // old-generation garbage collections into the stall figure.
    const batch: Reading[] = [];

    let maxStall = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      maxStall = Math.max(maxStall, now - last - TICK_MS);
      last = now;
    }, TICK_MS);

    let addMs = 0;
    const started = performance.now();
    for (let i = 0; i < READINGS; i += PER_TICK) {
      batch.length = 0;
      for (let j = i; j < Math.min(i + PER_TICK, READINGS); j++) batch.push(dsmrReading(j, t0));
      const a = performance.now();
      for (const r of batch) archive.add(r);
      addMs += performance.now() - a;
      await new Promise((r) => setImmediate(r));
    }
    await archive.flush();
    const elapsed = performance.now() - started;
    clearInterval(ticker);
    await archive.stop();

    const db = openArchiveReadOnly(path);
    const q = performance.now();
    const days = db.prepare("SELECT count(*) FROM energy_daily").pluck().get() as number;
    const dailyMs = performance.now() - q;
    const stored = db.prepare("SELECT count(*) FROM readings").pluck().get() as number;
    db.close();
    if (stored !== READINGS) throw new Error(`stored ${stored} of ${READINGS} readings`);

    return {
      readings: READINGS,
      values_per_reading: Object.keys(dsmrReading(0, t0).values).length,
      rows_per_s: Math.round(READINGS / (elapsed / 1000)),
      max_main_thread_stall_ms: Number(maxStall.toFixed(1)),
      add_us_per_reading: Number(((addMs * 1000) / READINGS).toFixed(2)),
      batches: archive.stats.batches,
      bytes_per_row: Math.round(statSync(path).size / READINGS),
      energy_daily_ms: Math.round(dailyMs),
      energy_daily_rows: days,
      dir: tmpdir(),
    };
  } finally {
    await archive.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
