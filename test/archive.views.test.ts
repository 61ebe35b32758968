import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Reading } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { ManualClock } from "../src/util/clock.js";
import type { Logger } from "../src/util/log.js";

// The daily views use the local date of the process running the query: pin a zone that is not UTC
// (UTC+1 on this date), so that a view grouping by UTC date would fail.
const ZONE = "Europe/Amsterdam";
process.env.TZ = ZONE;

/**
 * A synthetic day for two meters, with consumption known per hour:
 * - "home": a reading every 10 s from 00:00:00Z to 24:00:00Z; tariff 1 before 07:00Z and tariff 2 after;
 *   solar export around noon; the meter is replaced at 13:30Z (every register starts again at 0); no
 *   readings after 18:00:00Z up to and including 20:00:00Z; gas read every 5 minutes and reaching the
 *   meter 2.5 minutes late (gas_at lags `time`).
 * - "flat": a reading every minute, a steady 500 Wh per hour, an export register that never moves.
 */
const DAY = Date.UTC(2024, 2, 5);
const H = 3_600_000;
const TARIFF2_FROM = 7 * H;
const RESET_AT = 13.5 * H;
const GAP_FROM = 18 * H;
const GAP_TO = 20 * H;

// Wh per hour, by UTC hour.
const IMPORT_WH = [
  310, 280, 250, 240, 260, 330, 520, 1210, 940, 610, 350, 220, 180, 400, 570, 440, 630, 880, 1350, 1120, 970, 810, 660,
  450,
];
const EXPORT_WH = [0, 0, 0, 0, 0, 0, 0, 0, 0, 120, 850, 1400, 1900, 2100, 1600, 700, 150, 0, 0, 0, 0, 0, 0, 0];
// dm³ per hour; multiples of 12 so that every 5-minute gas reading is a whole dm³.
const GAS_DM3 = [5, 4, 3, 3, 3, 4, 9, 12, 8, 5, 3, 2, 2, 2, 3, 4, 6, 10, 11, 9, 8, 7, 6, 5].map((k) => k * 12);

const BASE = { imp1: 10_123_456, imp2: 8_765_432, exp1: 1_234_567, exp2: 2_345_678, gas: 4_321_987 }; // Wh, dm³

/** What a steady rate per hour adds up to between 00:00Z and `ms` after it. */
function cumulative(rates: number[], ms: number): number {
  const h = Math.floor(ms / H);
  let sum = 0;
  for (let i = 0; i < h && i < rates.length; i++) sum += rates[i] as number;
  if (h < rates.length) sum += ((rates[h] as number) * (ms - h * H)) / H;
  return sum;
}

/** A register of the home meter in kWh (whole Wh, as a meter shows it): the new meter counts from 0. */
function register(base: number, counted: (ms: number) => number, ms: number): number {
  const wh = ms < RESET_AT ? base + counted(ms) : counted(ms) - counted(RESET_AT);
  return Math.round(wh) / 1000;
}

const tariff1 = (rates: number[]) => (ms: number) => cumulative(rates, Math.min(ms, TARIFF2_FROM));
const tariff2 = (rates: number[]) => (ms: number) =>
  cumulative(rates, ms) - cumulative(rates, Math.min(ms, TARIFF2_FROM));

function homeReading(ms: number): Reading {
  const imp1 = register(BASE.imp1, tariff1(IMPORT_WH), ms);
  const imp2 = register(BASE.imp2, tariff2(IMPORT_WH), ms);
  const exp1 = register(BASE.exp1, tariff1(EXPORT_WH), ms);
  const exp2 = register(BASE.exp2, tariff2(EXPORT_WH), ms);
  const gasAt = Math.max(0, Math.floor((ms - 150_000) / 300_000) * 300_000);
  return {
    meterId: "home",
    time: DAY + ms,
    values: {
      energy_import_kwh: Math.round((imp1 + imp2) * 1000) / 1000,
      energy_import_tariff1_kwh: imp1,
      energy_import_tariff2_kwh: imp2,
      energy_export_kwh: Math.round((exp1 + exp2) * 1000) / 1000,
      energy_export_tariff1_kwh: exp1,
      energy_export_tariff2_kwh: exp2,
      tariff: ms < TARIFF2_FROM ? 1 : 2,
      power_import_w: IMPORT_WH[Math.min(23, Math.floor(ms / H))] as number,
      gas_m3: Math.round(BASE.gas + cumulative(GAS_DM3, gasAt)) / 1000,
      // As DSMR decoders write it: no milliseconds.
      gas_at: new Date(DAY + gasAt).toISOString().replace(".000Z", "Z"),
    },
  };
}

function flatReading(ms: number): Reading {
  return {
    meterId: "flat",
    time: DAY + ms,
    values: { energy_import_kwh: Math.round(5_000_000 + (500 * ms) / H) / 1000, energy_export_kwh: 12.5 },
  };
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;
const hourKey = (h: number): string => new Date(DAY + h * H).toISOString().replace(".000Z", "Z");
const localDay = new Intl.DateTimeFormat("en-CA", {
  timeZone: ZONE,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
});

type EnergyRow = Record<string, string | number | null>;
const ENERGY_COLUMNS = [
  "import_kwh",
  "import_tariff1_kwh",
  "import_tariff2_kwh",
  "import_tariff3_kwh",
  "import_tariff4_kwh",
  "export_kwh",
  "export_tariff1_kwh",
  "export_tariff2_kwh",
  "export_tariff3_kwh",
  "export_tariff4_kwh",
  "net_kwh",
];

function nullRow(meter: string, h: number): EnergyRow {
  const row: EnergyRow = { meter_id: meter, hour: hourKey(h) };
  for (const c of ENERGY_COLUMNS) row[c] = null;
  return row;
}

/** The hourly energy the home meter's day must give, from the rates and the documented rules. */
function expectedHomeHourly(): EnergyRow[] {
  // The first reading (00:00:00Z) ends the hour before; a meter's first hour counts from its first reading: 0.
  const zero = { import_kwh: 0, import_tariff1_kwh: 0, import_tariff2_kwh: 0, export_kwh: 0 };
  const rows: EnergyRow[] = [
    { ...nullRow("home", -1), ...zero, export_tariff1_kwh: 0, export_tariff2_kwh: 0, net_kwh: 0 },
  ];
  for (let h = 0; h < 24; h++) {
    if (h === 18 || h === 19) continue; // no readings: no row
    if (h === 13) {
      rows.push(nullRow("home", h)); // the registers went down: meter replaced
      continue;
    }
    // The first hour after the gap carries the gap's energy.
    const hours = h === 20 ? [18, 19, 20] : [h];
    const sum = (rates: number[], tariff: 1 | 2): number =>
      hours.filter((x) => (tariff === 1 ? x < 7 : x >= 7)).reduce((s, x) => s + (rates[x] as number), 0) / 1000;
    const imp1 = sum(IMPORT_WH, 1);
    const imp2 = sum(IMPORT_WH, 2);
    const exp1 = sum(EXPORT_WH, 1);
    const exp2 = sum(EXPORT_WH, 2);
    rows.push({
      ...nullRow("home", h),
      import_kwh: round6(imp1 + imp2),
      import_tariff1_kwh: round6(imp1),
      import_tariff2_kwh: round6(imp2),
      export_kwh: round6(exp1 + exp2),
      export_tariff1_kwh: round6(exp1),
      export_tariff2_kwh: round6(exp2),
      net_kwh: round6(imp1 + imp2 - exp1 - exp2),
    });
  }
  return rows;
}

function expectedFlatHourly(): EnergyRow[] {
  const rows = [{ ...nullRow("flat", -1), import_kwh: 0, export_kwh: 0, net_kwh: 0 }];
  for (let h = 0; h < 24; h++) rows.push({ ...nullRow("flat", h), import_kwh: 0.5, export_kwh: 0, net_kwh: 0.5 });
  return rows;
}

/** Sums hourly rows per local day: a column is NULL when all its hours are. */
function daily(hourly: EnergyRow[], columns: string[]): EnergyRow[] {
  const days = new Map<string, EnergyRow>();
  for (const row of hourly) {
    const day = localDay.format(new Date(row.hour as string));
    const key = `${row.meter_id}|${day}`;
    const acc = days.get(key) ?? { meter_id: row.meter_id as string, day };
    for (const c of columns) {
      const v = row[c] as number | null;
      const prev = (acc[c] as number | null | undefined) ?? null;
      acc[c] = v === null ? prev : round6((prev ?? 0) + v);
    }
    days.set(key, acc);
  }
  return [...days.values()];
}

function expectedGasHourly(): EnergyRow[] {
  const m3 = (dm3: number): number => round6(dm3 / 1000);
  const g = (h: number): number => GAS_DM3[h] as number;
  const rows: EnergyRow[] = [{ meter_id: "home", hour: hourKey(-1), gas_m3: null }];
  for (let h = 0; h < 24; h++) {
    let dm3: number;
    if (h === 18) continue; // no gas reading times in (18:00, 19:00]
    if (h === 17)
      dm3 = (g(17) * 55) / 60; // the 18:00 gas value would have arrived at 18:02:30, in the gap
    else if (h === 19) dm3 = (g(17) * 5) / 60 + g(18) + g(19);
    else if (h === 23)
      dm3 = (g(23) * 55) / 60; // at 24:00:00 the newest gas value is from 23:55
    else dm3 = g(h);
    rows.push({ meter_id: "home", hour: hourKey(h), gas_m3: m3(dm3) });
  }
  return rows;
}

let dir: string;
let db: Database.Database;
const { log } = ((): { log: Logger } => {
  const noop = (): void => {};
  const l: Logger = { debug: noop, info: noop, warn: noop, error: noop, child: () => l };
  return { log: l };
})();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "m2m-archive-views-"));
  const path = join(dir, "archive.sqlite");
  const archive = new Archive({ enabled: true, path, interval: 0 }, { clock: new ManualClock(DAY), log });
  await archive.start();
  for (let ms = 0; ms <= 24 * H; ms += 10_000) {
    if (ms <= GAP_FROM || ms > GAP_TO) archive.add(homeReading(ms));
    if (ms % 60_000 === 0) archive.add(flatReading(ms));
  }
  await archive.stop();
  expect(archive.stats.written).toBe(8641 - 720 + 1441);
  db = openArchiveReadOnly(path);
});

afterAll(() => {
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("energy_hourly", () => {
  it("gives each hour's energy per register, with the tariff switch, the reset and the gap", () => {
    const actual = db.prepare("SELECT * FROM energy_hourly WHERE meter_id = 'home' ORDER BY hour").all();
    expect(actual).toEqual(expectedHomeHourly());
  });

  it("keeps meters apart", () => {
    const actual = db.prepare("SELECT * FROM energy_hourly WHERE meter_id = 'flat' ORDER BY hour").all();
    expect(actual).toEqual(expectedFlatHourly());
  });

  it("counts a reading on the hour as the end of the hour before", () => {
    // 07:00:00Z is the last reading of hour 06 and the tariff 1 register stops there: hour 06 has all
    // of its tariff 1 energy and hour 07 none.
    const rows = db
      .prepare(
        "SELECT hour, import_tariff1_kwh AS t1, import_tariff2_kwh AS t2 FROM energy_hourly WHERE meter_id = 'home' AND hour IN (?, ?) ORDER BY hour",
      )
      .all(hourKey(6), hourKey(7));
    expect(rows).toEqual([
      { hour: hourKey(6), t1: 0.52, t2: 0 },
      { hour: hourKey(7), t1: 0, t2: 1.21 },
    ]);
  });
});

describe("energy_daily", () => {
  it("sums the hours per local day of the process's time zone", () => {
    const actual = db.prepare("SELECT * FROM energy_daily ORDER BY meter_id, day").all();
    const expected = daily([...expectedFlatHourly(), ...expectedHomeHourly()], ENERGY_COLUMNS);
    expect(actual).toEqual(expected);
    // In UTC+1 the hour 2024-03-04T23:00Z is local 2024-03-05 and 2024-03-05T23:00Z is local 2024-03-06.
    const home = actual.filter((r) => (r as EnergyRow).meter_id === "home") as EnergyRow[];
    expect(home.map((r) => r.day)).toEqual(["2024-03-05", "2024-03-06"]);
    expect(home[1]?.import_kwh).toBe(IMPORT_WH[23]! / 1000);
  });
});

describe("gas", () => {
  it("gives gas per hour of the gas meter's own reading time", () => {
    const actual = db.prepare("SELECT * FROM gas_hourly ORDER BY meter_id, hour").all();
    expect(actual).toEqual(expectedGasHourly());
  });

  it("sums gas per local day", () => {
    const actual = db.prepare("SELECT * FROM gas_daily ORDER BY meter_id, day").all();
    expect(actual).toEqual(daily(expectedGasHourly(), ["gas_m3"]));
  });
});

describe("readings_latest", () => {
  it("has the newest reading of each meter", () => {
    const rows = db.prepare("SELECT meter_id, time, energy_import_kwh FROM readings_latest ORDER BY meter_id").all();
    const end = new Date(DAY + 24 * H).toISOString();
    expect(rows).toEqual([
      { meter_id: "flat", time: end, energy_import_kwh: flatReading(24 * H).values.energy_import_kwh },
      { meter_id: "home", time: end, energy_import_kwh: homeReading(24 * H).values.energy_import_kwh },
    ]);
  });
});
