/**
 * Reports against figures worked out by hand, for a week of data across a clock change each:
 *  - a live DSMR meter in Amsterdam, 27 March – 2 April 2025 (clocks forward on Sunday 30 March): readings every
 *    5 minutes from 10:00 local on the first day to 15:00 on the last, with the bridge down for two hours on the
 *    Saturday; a day/night tariff on weekdays, export paid, a daily charge;
 *  - a Smart Meter Texas meter in Chicago, 31 October – 6 November 2024 (clocks back on Sunday 3 November, a
 *    25-hour day), the last day only up to noon; an afternoon peak price.
 * The expected figures come from the generators' own hourly energy and the tariffs' prices, not from SQL. The views
 * are queried the way a user would (after the bridge wrote the calendar), through queryReport, and through the CLI.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DateTime } from "luxon";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { parseConfig } from "../src/config/load.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import { migrate, openWritable, sqlDir } from "../src/outputs/archive/db.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { queryReport, type Row, reportRange } from "../src/reports/index.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { calendarMeters, refreshCalendar } from "../src/tariffs/index.js";
import { smtCsv, smtDay, wh } from "./helpers/smt.js";

const ROOT = join(import.meta.dirname, "..");
const H = 3_600_000;
const AMS = "Europe/Amsterdam";
const CHI = "America/Chicago";

const CONFIG = {
  meters: [
    { id: "home", type: "dsmr", port: "/dev/ttyUSB0", timezone: AMS },
    { id: "texas", type: "smt", folder: "/tmp/none", timezone: CHI },
  ],
  tariffs: {
    home: {
      meters: ["home"],
      currency: "EUR",
      import: [{ from: "07:00", to: "23:00", days: ["mon", "tue", "wed", "thu", "fri"], price: 0.3 }, { price: 0.2 }],
      export: 0.08,
      daily_charge: 0.72,
    },
    texas: {
      meters: ["texas"],
      currency: "USD",
      import: [{ from: "14:00", to: "20:00", price: 0.25 }, { price: 0.11 }],
      export: 0.05,
      daily_charge: 0.33,
    },
  },
};

// ── the live meter ─────────────────────────────────────────────────────────────────────────────────────────────────
const START = Date.parse("2025-03-27T09:00:00Z"); // 10:00 CET
const END = Date.parse("2025-04-02T13:00:00Z"); // 15:00 CEST
const GAP = [Date.parse("2025-03-29T12:00:00Z"), Date.parse("2025-03-29T14:00:00Z")]; // readings after, up to and with
const local = (ms: number, zone: string) => DateTime.fromMillis(ms, { zone });
/** Wh in each UTC hour, from the local hour it is in. */
const importWh = (u: number) => 100 + 10 * local(u, AMS).hour;
const exportWh = (u: number) => (local(u, AMS).hour >= 11 && local(u, AMS).hour < 15 ? 200 : 0);
const homePrice = (u: number) => {
  const l = local(u, AMS);
  return l.weekday <= 5 && l.hour >= 7 && l.hour < 23 ? 0.3 : 0.2;
};
/** A register (whole Wh) at `t`: the hour's energy used evenly through it. */
function register(rate: (u: number) => number, t: number): number {
  let wh = 0;
  for (let u = START; u < t; u += H) wh += rate(u) * Math.min(1, (t - u) / H);
  return Math.round(wh);
}

interface Expected {
  day: string;
  imp: number;
  exp: number;
  hours: number;
  dayHours: number;
  cost: number;
}

function expectHome(): Map<string, Expected> {
  const out = new Map<string, Expected>();
  // Energy is known for every hour from the first reading to the last (the gap's too, from the registers).
  for (let u = START; u < END; u += H) {
    const day = local(u, AMS).toISODate() as string;
    const e = out.get(day) ?? { day, imp: 0, exp: 0, hours: 0, dayHours: 0, cost: 0.72 };
    e.imp += importWh(u) / 1000;
    e.exp += exportWh(u) / 1000;
    e.hours += 1;
    e.cost += (importWh(u) / 1000) * homePrice(u) - (exportWh(u) / 1000) * 0.08;
    out.set(day, e);
  }
  for (const e of out.values()) {
    const d = local(Date.parse(`${e.day}T12:00:00Z`), AMS).startOf("day");
    e.dayHours = d.plus({ days: 1 }).diff(d, "hours").hours;
  }
  return out;
}

// ── the interval meter ─────────────────────────────────────────────────────────────────────────────────────────────
const SMT_DAYS = ["2024-10-31", "2024-11-01", "2024-11-02", "2024-11-03", "2024-11-04", "2024-11-05", "2024-11-06"];
const smtRows = SMT_DAYS.flatMap((day) => {
  const rows = smtDay({ day, channels: ["Consumption", "Surplus Generation"] });
  // The last day only up to noon, as a portal download made at lunchtime.
  return day === "2024-11-06" ? rows.filter((r) => r.start === null || local(r.start, CHI).hour < 12) : rows;
});
const texasPrice = (ms: number) => (local(ms, CHI).hour >= 14 && local(ms, CHI).hour < 20 ? 0.25 : 0.11);

function expectTexas(): Map<string, Expected> {
  const out = new Map<string, Expected>();
  for (const r of smtRows) {
    if (r.start === null || r.kwh === "") continue;
    const day = local(r.start, CHI).toISODate() as string;
    const e = out.get(day) ?? { day, imp: 0, exp: 0, hours: 0, dayHours: 0, cost: 0.33 };
    const kwh = wh(r.kwh) / 1000;
    if (r.channel === "Consumption") {
      e.imp += kwh;
      e.hours += 0.25;
      e.cost += kwh * texasPrice(r.start);
    } else {
      e.exp += kwh;
      e.cost -= kwh * 0.05;
    }
    out.set(day, e);
  }
  for (const e of out.values()) e.dayHours = e.day === "2024-11-03" ? 25 : 24;
  return out;
}

function check(rows: Row[], expected: Map<string, Expected>): void {
  expect(rows.map((r) => r.day)).toEqual([...expected.keys()]);
  for (const r of rows) {
    const e = expected.get(String(r.day)) as Expected;
    const complete = e.hours === e.dayHours;
    expect(r.import_kwh).toBeCloseTo(e.imp, 6);
    expect(r.export_kwh).toBeCloseTo(e.exp, 6);
    expect(r.hours).toBe(e.hours);
    expect(r.day_hours).toBe(e.dayHours);
    expect(r.complete).toBe(complete ? 1 : 0);
    expect(r.avg_kwh_per_hour).toBeCloseTo(e.imp / e.hours, 6);
    expect(r.estimate_kwh).toBeCloseTo(complete ? e.imp : (e.imp / e.hours) * e.dayHours, 6);
    expect(r.cost).toBeCloseTo(e.cost, 6);
  }
}

describe("reports", () => {
  let dir: string;
  let path: string;
  let configFile: string;
  const config = parseConfig(CONFIG);
  const now = END + 60_000;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-report-"));
    path = join(dir, "archive.sqlite");
    configFile = join(dir, "config.json");
    writeFileSync(configFile, JSON.stringify({ ...CONFIG, archive: { path } }));
    const archive = new Archive({ enabled: true, path, interval: 0 });
    await archive.start();
    for (let t = START; t <= END; t += 300_000) {
      if (t > (GAP[0] as number) && t <= (GAP[1] as number)) continue;
      archive.add({
        meterId: "home",
        time: t,
        values: {
          energy_import_kwh: (10_000_000 + register(importWh, t)) / 1000,
          energy_export_kwh: (2_000_000 + register(exportWh, t)) / 1000,
        },
      });
    }
    await new IntervalPipeline(archive, new Bus()).ingest({
      meterId: "texas",
      timezone: CHI,
      intervals: parseSmtCsv(smtCsv(smtRows), { file: "t", meterId: "texas" }).intervals,
      receivedAt: Date.parse("2024-11-06T18:00:00Z"),
    });
    await archive.flush();
    await archive.stop();
    // What the bridge does at start: the calendar from each meter's first data to the end of next month.
    refreshCalendar(path, calendarMeters(config), now);
  }, 30_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("the daily view of a live meter equals the hand-computed week across the spring change", () => {
    const db = openArchiveReadOnly(path);
    const rows = db.prepare("SELECT * FROM report_daily WHERE meter_id = 'home' ORDER BY day").all() as Row[];
    db.close();
    check(rows, expectHome());
    expect(rows.map((r) => r.hours)).toEqual([14, 24, 24, 23, 24, 24, 15]);
    expect(rows.every((r) => r.currency === "EUR" && r.daily_charge === 0.72)).toBe(true);
  });

  it("the daily view of an interval meter equals the hand-computed week across the autumn change", () => {
    const db = openArchiveReadOnly(path);
    const rows = db.prepare("SELECT * FROM report_daily WHERE meter_id = 'texas' ORDER BY day").all() as Row[];
    db.close();
    check(rows, expectTexas());
    expect(rows.map((r) => r.hours)).toEqual([24, 24, 24, 25, 24, 24, 12]);
  });

  it("monthly sums the days, with the month's own length in hours for the estimate", () => {
    const db = openWritable(path);
    migrate(db, sqlDir());
    const home = calendarMeters(config).find((m) => m.id === "home")!;
    const range = reportRange("monthly", AMS, now, "2025-03", "2025-04");
    expect(range).toEqual({ from: "2025-03-01", to: "2025-04-30" });
    const rows = queryReport(db, home, "monthly", range, now);
    db.close();
    const days = [...expectHome().values()];
    const march = days.filter((d) => d.day < "2025-04");
    const april = days.filter((d) => d.day >= "2025-04");
    expect(rows.map((r) => [r.month, r.days, r.month_hours])).toEqual([
      ["2025-03", 5, 743],
      ["2025-04", 2, 720],
    ]);
    for (const [r, ds, len] of [
      [rows[0], march, 743],
      [rows[1], april, 720],
    ] as const) {
      const imp = ds.reduce((a, d) => a + d.imp, 0);
      const hours = ds.reduce((a, d) => a + d.hours, 0);
      expect(r?.import_kwh).toBeCloseTo(imp, 6);
      expect(r?.hours).toBe(hours);
      expect(r?.estimate_kwh).toBeCloseTo((imp / hours) * len, 6);
      expect(r?.cost).toBeCloseTo(
        ds.reduce((a, d) => a + d.cost, 0),
        6,
      );
    }
  });

  it("keeps past prices when the tariff changes, until asked to reprice", () => {
    const db = openWritable(path);
    const changed = parseConfig({
      ...CONFIG,
      tariffs: { ...CONFIG.tariffs, texas: { ...CONFIG.tariffs.texas, import: 1, daily_charge: 0 } },
    });
    const texas = calendarMeters(changed).find((m) => m.id === "texas")!;
    const range = { from: "2024-11-04", to: "2024-11-04" };
    const kept = queryReport(db, texas, "daily", range, now);
    expect(kept[0]?.cost).toBeCloseTo(expectTexas().get("2024-11-04")!.cost, 6);
    const repriced = queryReport(db, texas, "daily", range, now, { reprice: true });
    const e = expectTexas().get("2024-11-04")!;
    expect(repriced[0]?.cost).toBeCloseTo(e.imp - e.exp * 0.05, 6);
    // Back to the configured prices for the tests after this one.
    queryReport(db, calendarMeters(config).find((m) => m.id === "texas")!, "daily", range, now, { reprice: true });
    db.close();
  });

  it("the CLI prints the same figures as CSV and as a table", () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: ROOT, encoding: "utf8" });
    const csv = run([
      "report",
      "daily",
      "--config",
      configFile,
      "--meter",
      "texas",
      "--from",
      "2024-10-31",
      "--to",
      "2024-11-06",
      "--format",
      "csv",
    ]);
    expect(csv.stderr).toBe("");
    expect(csv.status).toBe(0);
    const [head, ...lines] = csv.stdout.trim().split("\n");
    const cols = (head as string).split(",");
    const rows = lines.map((l) => {
      const cells = l.split(",");
      return Object.fromEntries(
        cols.map((c, i) => [c, c === "day" || c === "meter_id" || c === "currency" ? cells[i] : Number(cells[i])]),
      );
    }) as Row[];
    check(rows, expectTexas());

    const table = run([
      "report",
      "daily",
      "--config",
      configFile,
      "--meter",
      "home",
      "--from",
      "2025-03-27",
      "--to",
      "2025-04-02",
    ]);
    expect(table.status).toBe(0);
    const out = table.stdout.split("\n");
    expect(out[1]).toMatch(/^day\s+import kWh\s+hours\s+kWh\/h\s+24h est\. kWh\s+export kWh\s+cost EUR$/);
    const sunday = expectHome().get("2025-03-30")!;
    expect(out.find((l) => l.startsWith("2025-03-30"))?.split(/\s+/)).toEqual([
      "2025-03-30",
      sunday.imp.toFixed(3),
      "23.00",
      (sunday.imp / 23).toFixed(3),
      sunday.imp.toFixed(3),
      sunday.exp.toFixed(3),
      sunday.cost.toFixed(2),
    ]);
    const first = expectHome().get("2025-03-27")!;
    expect(out.find((l) => l.startsWith("2025-03-27"))).toContain(`${((first.imp / 14) * 24).toFixed(3)}*`);
  }, 30_000);
});
