/**
 * The hourly energy the archive keeps as readings arrive (energy_hours, sql/008) against the views it replaced, which
 * worked everything out from all readings at each query (sql/002 and 007, created here again as temporary views from
 * the migration files): two weeks of a live meter in Amsterdam around both clock changes of 2025, with a gap, a
 * replaced meter and a tariff. Then a late reading, and an archive made before 008 and upgraded.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import type { Reading } from "../src/model/types.js";
import { migrate, openWritable, sqlDir } from "../src/outputs/archive/db.js";
import { Archive } from "../src/outputs/archive/index.js";
import { queryReport } from "../src/reports/index.js";
import { writeCalendar } from "../src/tariffs/calendar.js";
import { calendarMeters } from "../src/tariffs/index.js";

process.env.TZ = "Europe/Amsterdam";

const STEP = 300_000;
/** Around the spring change (30 March) and the autumn one (26 October); each starts in the middle of an hour. */
const WEEKS = [
  [Date.parse("2025-03-26T08:07:00Z"), Date.parse("2025-04-02T17:00:00Z")],
  [Date.parse("2025-10-22T10:32:00Z"), Date.parse("2025-10-29T12:00:00Z")],
] as const;
const GAP = [Date.parse("2025-03-29T12:00:00Z"), Date.parse("2025-03-29T15:00:00Z")];
const RESET = Date.parse("2025-10-24T09:40:00Z");
/** A reading left out at first and archived later: in the gap. */
const LATE = Date.parse("2025-03-29T13:37:00Z");

/** Wh counted from the start up to each step: import by the hour of the day, export around noon. */
const COUNTED = ((): [number, number][] => {
  const out: [number, number][] = [];
  let imp = 0;
  let exp = 0;
  for (let u = WEEKS[0][0]; u <= WEEKS[1][1]; u += STEP) {
    out.push([imp, exp]);
    const hour = new Date(u).getUTCHours();
    imp += (150 + 40 * ((hour * 7) % 11)) / 12;
    exp += hour >= 10 && hour < 15 ? 90 : 0;
  }
  return out;
})();

/** The meter's registers (whole Wh) at `t`; after RESET a new meter counting from 0. */
function reading(t: number): Reading {
  const [imp, exp] = COUNTED[(t - WEEKS[0][0]) / STEP] as [number, number];
  const base = t < RESET ? 5_000_000 : 0;
  return {
    meterId: "home",
    time: t,
    values: {
      energy_import_kwh: Math.round(base + (t < RESET ? imp : imp / 3)) / 1000,
      energy_import_tariff1_kwh: Math.round(base / 2 + imp / 2) / 1000,
      energy_export_kwh: Math.round(exp) / 1000,
      power_import_w: 500,
      // The gas meter's value of 5 minutes before, reaching the meter 2.5 minutes late (no milliseconds, as DSMR).
      gas_m3:
        Math.round(700_000 + (COUNTED[Math.max(0, (t - WEEKS[0][0]) / STEP - 1)] as [number, number])[0] / 7) / 1000,
      gas_at: new Date(Math.floor((t - 150_000) / 300_000) * 300_000).toISOString().replace(".000Z", "Z"),
    },
  };
}

function* times(): Generator<number> {
  for (const [from, to] of WEEKS)
    for (let t = from; t <= to; t += STEP) if (!(t > (GAP[0] as number) && t <= (GAP[1] as number))) yield t;
}

const CONFIG = parseConfig({
  meters: [{ id: "home", type: "dsmr", port: "/dev/null", timezone: "Europe/Amsterdam" }],
  tariffs: {
    home: {
      meters: ["home"],
      currency: "EUR",
      import: [{ from: "07:00", to: "23:00", price: 0.3 }, { price: 0.2 }],
      export: 0.08,
      daily_charge: 0.5,
    },
  },
});

/** The views of 002 and 007 as they were, as temporary views named old_*. */
function oldViews(db: Database.Database): void {
  const names = [
    "energy_hourly",
    "energy_daily",
    "gas_hourly",
    "gas_daily",
    "report_hourly",
    "report_daily",
    "report_monthly",
  ];
  for (const file of ["002_views.sql", "007_tariffs_reports.sql"]) {
    let sql = readFileSync(join(sqlDir(), file), "utf8");
    for (const n of names) sql = sql.replace(new RegExp(`\\b${n}\\b`, "g"), `old_${n}`);
    for (const stmt of sql.split(/;\s*\n/)) {
      const view = stmt.slice(stmt.indexOf("CREATE VIEW"));
      if (/^CREATE VIEW old_/.test(view)) db.exec(view.replace("CREATE VIEW", "CREATE TEMP VIEW"));
    }
  }
}

const all = (db: Database.Database, sql: string): Record<string, unknown>[] =>
  db.prepare(sql).all() as Record<string, unknown>[];

let dir: string;
let path: string;
const now = Date.parse("2025-10-30T00:00:00Z");

async function archiveReadings(file: string, which: Iterable<number>): Promise<void> {
  const archive = new Archive({ enabled: true, path: file, interval: 0 });
  await archive.start();
  for (const t of which) archive.add(reading(t));
  await archive.stop();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "m2m-hours-"));
  path = join(dir, "a.sqlite");
  // Out of order on purpose: the second week first, then the first.
  const list = [...times()];
  await archiveReadings(path, [
    ...list.filter((t) => t >= WEEKS[1][0]),
    ...list.filter((t) => t < WEEKS[1][0] && t !== LATE),
  ]);
  const db = openWritable(path);
  const meter = calendarMeters(CONFIG)[0] as NonNullable<ReturnType<typeof calendarMeters>[0]>;
  writeCalendar(db, meter, WEEKS[0][0], WEEKS[1][1], now);
  db.close();
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function compare(db: Database.Database, late: boolean): void {
  oldViews(db);
  const hourly = all(db, "SELECT * FROM energy_hourly ORDER BY meter_id, hour");
  const old = all(db, "SELECT * FROM old_energy_hourly ORDER BY meter_id, hour");
  expect(hourly.length).toBe(old.length);
  expect(hourly.length).toBeGreaterThan(300);
  // The first hour: NULL before, now the energy since the first reading (08:07 to 08:57: 10 steps).
  const first = reading(WEEKS[0][0]).values;
  const lastOfFirst = reading(WEEKS[0][0] + 10 * STEP).values;
  expect(hourly[0]).toMatchObject({
    hour: "2025-03-26T08:00:00Z",
    import_kwh:
      Math.round(((lastOfFirst.energy_import_kwh as number) - (first.energy_import_kwh as number)) * 1e6) / 1e6,
  });
  expect(old[0]).toMatchObject({ hour: "2025-03-26T08:00:00Z", import_kwh: null });
  expect(hourly.slice(1)).toEqual(old.slice(1));
  // The reset hour is NULL in both, the hour after the gap carries the gap.
  expect(hourly.find((r) => r.hour === "2025-10-24T09:00:00Z")?.import_kwh).toBeNull();
  expect(hourly.some((r) => r.hour === "2025-03-29T13:00:00Z")).toBe(late);

  const firstDay = "2025-03-26";
  const daily = all(db, `SELECT * FROM energy_daily WHERE day > '${firstDay}' ORDER BY day`);
  expect(daily).toEqual(all(db, `SELECT * FROM old_energy_daily WHERE day > '${firstDay}' ORDER BY day`));
  expect(daily.map((r) => r.day)).toContain("2025-03-30");
  expect(daily.map((r) => r.day)).toContain("2025-10-26");
  const gas = all(db, "SELECT * FROM gas_hourly ORDER BY meter_id, hour");
  expect(gas.length).toBeGreaterThan(300);
  expect(gas).toEqual(all(db, "SELECT * FROM old_gas_hourly ORDER BY meter_id, hour"));
  expect(all(db, "SELECT * FROM gas_daily ORDER BY day")).toEqual(all(db, "SELECT * FROM old_gas_daily ORDER BY day"));

  const reports = all(db, `SELECT * FROM report_daily WHERE day > '${firstDay}' ORDER BY day`);
  expect(reports).toEqual(all(db, `SELECT * FROM old_report_daily WHERE day > '${firstDay}' ORDER BY day`));
  expect(reports.find((r) => r.day === "2025-03-30")?.day_hours).toBe(23);
  expect(reports.find((r) => r.day === "2025-10-26")?.day_hours).toBe(25);
  expect(reports.find((r) => r.day === "2025-10-26")?.complete).toBe(1);
  // What `report monthly` runs (the view with the days bounded) equals the view.
  const home = calendarMeters(CONFIG)[0] as NonNullable<ReturnType<typeof calendarMeters>[0]>;
  const months = queryReport(db, home, "monthly", { from: "2025-03-01", to: "2025-10-31" }, now);
  expect(months.map((r) => r.month)).toEqual(["2025-03", "2025-04", "2025-10"]);
  expect(months).toEqual(
    all(db, "SELECT * FROM report_monthly WHERE month BETWEEN '2025-03' AND '2025-10' ORDER BY month"),
  );
  expect(all(db, `SELECT * FROM report_monthly WHERE month = '2025-10'`)).toEqual(
    all(db, `SELECT * FROM old_report_monthly WHERE month = '2025-10'`),
  );
}

describe("energy_hours", () => {
  it("equals the old views' figures hour by hour, day by day and in the reports, across both clock changes", () => {
    const db = openWritable(path);
    try {
      compare(db, false);
    } finally {
      db.close();
    }
  });

  it("a reading archived late updates its hour and the one after it", async () => {
    const before = openWritable(path);
    const hour = (h: string) =>
      before.prepare("SELECT * FROM energy_hourly WHERE hour = ?").get(h) as Record<string, number>;
    expect(hour("2025-03-29T13:00:00Z")).toBeUndefined();
    const after = hour("2025-03-29T15:00:00Z").import_kwh as number;
    before.close();

    await archiveReadings(path, [LATE]);
    const db = openWritable(path);
    try {
      const late = db.prepare("SELECT * FROM energy_hourly WHERE hour = ?");
      const h13 = late.get("2025-03-29T13:00:00Z") as { import_kwh: number };
      const h15 = late.get("2025-03-29T15:00:00Z") as { import_kwh: number };
      expect(h13.import_kwh).toBeGreaterThan(0);
      expect(h15.import_kwh).toBeLessThan(after);
      expect(Math.round((h13.import_kwh + h15.import_kwh) * 1e6) / 1e6).toBe(after);
      compare(db, true);
    } finally {
      db.close();
    }
  });

  it("an archive made before them is filled when upgraded, with the same figures", () => {
    const old = join(dir, "sql-007");
    mkdirSync(old);
    for (const f of readdirSync(sqlDir())) if (f < "008") copyFileSync(join(sqlDir(), f), join(old, f));
    const file = join(dir, "old.sqlite");
    const db = openWritable(file);
    try {
      migrate(db, old);
      const insert = db.prepare(
        "INSERT INTO readings (meter_id, time, energy_import_kwh, energy_import_tariff1_kwh, energy_export_kwh, gas_m3, gas_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      );
      for (const t of [...times(), LATE]) {
        const v = reading(t).values;
        insert.run(
          "home",
          new Date(t).toISOString(),
          v.energy_import_kwh,
          v.energy_import_tariff1_kwh,
          v.energy_export_kwh,
          v.gas_m3,
          v.gas_at,
        );
      }
      expect(migrate(db, sqlDir())).toContain("008_energy_hours");
      const meter = calendarMeters(CONFIG)[0] as NonNullable<ReturnType<typeof calendarMeters>[0]>;
      writeCalendar(db, meter, WEEKS[0][0], WEEKS[1][1], now);
      compare(db, true);
      expect(db.prepare("SELECT count(*) AS n FROM energy_hours WHERE hours IS NULL").get()).toEqual({ n: 0 });
      // The same rows as the archive that kept them reading by reading.
      db.exec(`ATTACH '${path}' AS kept`);
      // (t_last: the newest reading, kept by the writer for the next batch; the upgrade leaves it to it.)
      const hours = (schema: string) =>
        all(db, `SELECT * FROM ${schema}.energy_hours ORDER BY hour`).map(({ t_last, ...r }) => r);
      expect(hours("main")).toEqual(hours("kept"));
      expect(all(db, "SELECT * FROM main.gas_hours ORDER BY hour")).toEqual(
        all(db, "SELECT * FROM kept.gas_hours ORDER BY hour"),
      );
    } finally {
      db.close();
    }
  });
});
