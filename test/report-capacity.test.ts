/**
 * Belgium's capacity tariff in `meter2mqtt report`, against figures worked out by hand for a fixture archive of a
 * Belgian meter in Brussels: month peaks of 9.9 kW in March 2025, 3.0 kW in December 2025, 2.0 kW in January 2026
 * (under the 2.5 kW minimum), 2.2 then 4.1 kW in February, and 3.4 kW so far in March 2026, the report made on
 * 15 March 2026 at noon. The first reading of March (00:05 local, still 28 February in UTC) already has the new
 * month's register back at 1 kW. The same fixture with the month's peak billed and with the 12-month average; the
 * running month's charge equals the live sensor's.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DateTime } from "luxon";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { migrate, openWritable, sqlDir } from "../src/outputs/archive/db.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { queryReport, type Row, reportRange, toTable } from "../src/reports/index.js";
import { capacityTransform } from "../src/tariffs/capacity.js";
import { calendarMeters } from "../src/tariffs/index.js";

const zone = "Europe/Brussels";
const PRICE = 53.2573; // per kW per year
const local = (iso: string): number => DateTime.fromISO(iso, { zone }).toMillis();
const NOW = local("2026-03-15T12:00:00");
const cents = (x: number): number => Math.round(x * 100) / 100;

/** Days with readings every hour (from `from` to `to` o'clock) and the month-peak register then, W. */
const DAYS: { day: string; peakW: (hour: number) => number; to?: number }[] = [
  { day: "2025-03-10", peakW: () => 9900 },
  { day: "2025-12-10", peakW: () => 3000 },
  { day: "2026-01-10", peakW: () => 2000 },
  { day: "2026-02-03", peakW: () => 2200 },
  { day: "2026-02-20", peakW: (h) => (h < 10 ? 2200 : 4100) },
  { day: "2026-02-28", peakW: () => 4100 },
  { day: "2026-03-01", peakW: () => 1000 },
  { day: "2026-03-14", peakW: (h) => (h < 18 ? 2900 : 3400) },
  { day: "2026-03-15", peakW: () => 3400, to: 12 },
];

const config = (average: "month" | "12_months") =>
  parseConfig({
    meters: [
      { id: "be", type: "dsmr", port: "/dev/ttyUSB0", timezone: zone },
      { id: "nl", type: "dsmr", port: "/dev/ttyUSB1", timezone: zone },
    ],
    tariffs: {
      fluvius: {
        meters: ["be"],
        currency: "EUR",
        import: 0.3,
        capacity: { price_per_kw_year: PRICE, minimum_kw: 2.5, average },
      },
      plain: { meters: ["nl"], currency: "EUR", import: 0.3 },
    },
  });

describe("capacity in the report", () => {
  let dir: string;
  let path: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-report-capacity-"));
    path = join(dir, "archive.sqlite");
    const archive = new Archive({ enabled: true, path, interval: 0 });
    await archive.start();
    let kwh = 1000;
    for (const d of DAYS)
      for (let h = 0; h <= (d.to ?? 23); h++) {
        const time = local(`${d.day}T${String(h).padStart(2, "0")}:05:00`);
        kwh += 0.5;
        archive.add({ meterId: "be", time, values: { energy_import_kwh: kwh, demand_month_peak_w: d.peakW(h) } });
        archive.add({ meterId: "nl", time, values: { energy_import_kwh: kwh } });
      }
    await archive.flush();
    await archive.stop();
  }, 30_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const report = (average: "month" | "12_months", period: "daily" | "monthly", from: string, to: string, id = "be") => {
    const meter = calendarMeters(config(average)).find((m) => m.id === id)!;
    const db = openWritable(path);
    try {
      migrate(db, sqlDir());
      return queryReport(db, meter, period, reportRange(period, zone, NOW, from, to), NOW);
    } finally {
      db.close();
    }
  };
  const pick = (rows: Row[]) => rows.map((r) => [r.month, r.capacity_peak_kw, r.capacity_kw, r.capacity_cost]);

  it("monthly, the month's peak billed: at least 2.5 kW, the whole month's charge, the running month's so far", () => {
    const rows = report("month", "monthly", "2026-01", "2026-03");
    expect(pick(rows)).toEqual([
      // January: a 2.0 kW peak is billed as the 2.5 kW minimum, for 31 days of a 365-day year.
      ["2026-01", 2.0, 2.5, cents((2.5 * PRICE * 31) / 365)],
      // February: the register's 4.1 kW at the month's end (not the 1 kW of 1 March 00:05, 23:05 UTC on the 28th).
      ["2026-02", 4.1, 4.1, cents((4.1 * PRICE * 28) / 365)],
      // March so far: 14 days and 12 hours.
      ["2026-03", 3.4, 3.4, cents((3.4 * PRICE * 14.5) / 365)],
    ]);
    expect(rows[2]?.cost).toBeTypeOf("number");
  });

  it("monthly, the 12-month average: each month's peak at least 2.5 kW, months without data left out", () => {
    const rows = report("12_months", "monthly", "2026-01", "2026-03");
    // January's 12 months (February 2025 – January 2026) hold March 2025, December and January itself.
    const jan = (9.9 + 3.0 + 2.5) / 3;
    const feb = (9.9 + 3.0 + 2.5 + 4.1) / 4;
    // March 2025 is out of March 2026's window (April 2025 – March 2026).
    const mar = (3.0 + 2.5 + 4.1 + 3.4) / 4;
    expect(pick(rows)).toEqual([
      ["2026-01", 2.0, Math.round(jan * 1000) / 1000, cents((jan * PRICE * 31) / 365)],
      ["2026-02", 4.1, Math.round(feb * 1000) / 1000, cents((feb * PRICE * 28) / 365)],
      ["2026-03", 3.4, Math.round(mar * 1000) / 1000, cents((mar * PRICE * 14.5) / 365)],
    ]);
  });

  it("the running month's charge is the live sensor's, read from the same archive", () => {
    for (const average of ["month", "12_months"] as const) {
      const march = report(average, "monthly", "2026-03", "2026-03")[0];
      const step = capacityTransform(
        [
          {
            id: "be",
            capacity: { price_per_kw_year: PRICE, minimum_kw: 2.5, average },
            timezone: zone,
            currency: "EUR",
          },
        ],
        () => openArchiveReadOnly(path),
        NOW,
      )!;
      const live = step({ meterId: "be", time: NOW, values: { demand_month_peak_w: 3400 } }).values;
      expect(march?.capacity_cost).toBe(live.capacity_cost_month);
      expect(march?.capacity_kw).toBe(live.capacity_basis_kw);
    }
  });

  it("daily: the month's kW billed and the day's share, across a month boundary and for today so far", () => {
    const rows = report("month", "daily", "2026-02-28", "2026-03-15");
    expect(rows.map((r) => [r.day, r.capacity_kw])).toEqual([
      ["2026-02-28", 4.1],
      ["2026-03-01", 3.4],
      ["2026-03-14", 3.4],
      ["2026-03-15", 3.4],
    ]);
    const share = (kw: number, days: number) => Math.round(((kw * PRICE * days) / 365) * 1e6) / 1e6;
    expect(rows.map((r) => r.capacity_cost)).toEqual([share(4.1, 1), share(3.4, 1), share(3.4, 1), share(3.4, 0.5)]);
    // A whole month's days add up to its charge.
    const feb = report("12_months", "daily", "2026-02-01", "2026-02-28");
    const avg = (9.9 + 3.0 + 2.5 + 4.1) / 4;
    expect(feb.map((r) => r.day)).toEqual(["2026-02-03", "2026-02-20", "2026-02-28"]);
    for (const r of feb) expect(r.capacity_cost).toBeCloseTo((avg * PRICE) / 365, 6);
  });

  it("the table shows the kW billed and the charge; a meter without capacity gets no such columns", () => {
    const table = toTable(report("month", "monthly", "2026-02", "2026-02"), "monthly").split("\n");
    expect(table[0]).toMatch(/cost EUR\s+capacity kW\s+capacity EUR$/);
    expect(table[1]).toMatch(new RegExp(`4\\.100\\s+${cents((4.1 * PRICE * 28) / 365).toFixed(2)}$`));
    const plain = report("month", "monthly", "2026-01", "2026-03", "nl");
    expect(plain).toHaveLength(3);
    for (const r of plain) expect(Object.keys(r).filter((k) => k.startsWith("capacity"))).toEqual([]);
    expect(toTable(plain, "monthly")).not.toMatch(/capacity/);
  });
});
