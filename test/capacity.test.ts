/**
 * Belgium's capacity tariff in money, against figures worked out by hand for a fixture month (March 2026 in
 * Brussels: 31 days, a 365-day year), with the month's peak alone and with the 12-month average.
 */
import Database from "better-sqlite3";
import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import { ConfigSchema } from "../src/config/schema.js";
import type { Reading } from "../src/model/types.js";
import { CapacityCost, capacityTransform, peaksFromArchive } from "../src/tariffs/capacity.js";

const zone = "Europe/Brussels";
const local = (iso: string): number => DateTime.fromISO(iso, { zone }).toMillis();
const reading = (iso: string, peakW: number): Reading => ({
  meterId: "be",
  time: local(iso),
  values: { demand_month_peak_w: peakW },
});
const PRICE = 53.2573; // per kW per year

describe("capacity charge", () => {
  it("the month's peak, at least 2.5 kW, accrued by the day", () => {
    const c = new CapacityCost({ price_per_kw_year: PRICE, minimum_kw: 2.5, average: "month" }, zone);
    // Below the minimum: 2.5 kW is billed.
    const early = c.add(reading("2026-03-02T00:00:00", 2100))!;
    expect(early.capacity_basis_kw).toBe(2.5);
    expect(early.capacity_cost_month).toBeCloseTo((2.5 * PRICE * 1) / 365, 2);
    expect(early.capacity_cost_month_projected).toBeCloseTo((2.5 * PRICE * 31) / 365, 2);
    // A peak of 3.4 kW on the 10th; on the 15th at noon 14.5 days have passed.
    c.add(reading("2026-03-10T18:15:00", 3400));
    const mid = c.add(reading("2026-03-15T12:00:00", 1800))!;
    expect(mid.capacity_basis_kw).toBe(3.4);
    expect(mid.capacity_cost_month).toBe(Math.round(((3.4 * PRICE * 14.5) / 365) * 100) / 100);
    expect(mid.capacity_cost_month_projected).toBe(Math.round(((3.4 * PRICE * 31) / 365) * 100) / 100);
    // A new month starts from its own peak.
    const april = c.add(reading("2026-04-01T00:15:00", 1000))!;
    expect(april.capacity_basis_kw).toBe(2.5);
  });

  it("the average of the last 12 months' peaks, each at least 2.5 kW, this month included", () => {
    const history = new Map([
      ["2026-02", 4.0],
      ["2026-01", 2.0],
      ["2025-12", 3.0],
      ["2025-03", 9.9], // 12 months back: out of the window
    ]);
    const c = new CapacityCost({ price_per_kw_year: PRICE, minimum_kw: 2.5, average: "12_months" }, zone, history);
    const v = c.add(reading("2026-03-15T12:00:00", 3400))!;
    const basis = (3.4 + 4.0 + 2.5 + 3.0) / 4;
    expect(v.capacity_basis_kw).toBe(Math.round(basis * 1000) / 1000);
    expect(v.capacity_cost_month).toBe(Math.round(((basis * PRICE * 14.5) / 365) * 100) / 100);
    // March ends: in April it is one of the 12.
    const april = c.add(reading("2026-04-02T00:00:00", 2000))!;
    expect(april.capacity_basis_kw).toBe(Math.round(((2.5 + 3.4 + 4.0 + 2.5 + 3.0) / 5) * 1000) / 1000);
  });

  it("reads the earlier months' peaks from the archive, and adds the values to the meter's readings", () => {
    const db = new Database(":memory:");
    db.exec("CREATE TABLE readings (meter_id TEXT, time TEXT, demand_month_peak_w REAL, PRIMARY KEY (meter_id, time))");
    const put = db.prepare("INSERT INTO readings VALUES (?, ?, ?)");
    put.run("be", new Date(local("2026-02-03T10:00:00")).toISOString(), 2000);
    put.run("be", new Date(local("2026-02-20T10:00:00")).toISOString(), 4100);
    put.run("be", new Date(local("2026-01-20T10:00:00")).toISOString(), 2900);
    put.run("other", new Date(local("2026-02-20T10:00:00")).toISOString(), 9000);
    put.run("be", new Date(local("2026-03-01T10:00:00")).toISOString(), 1000);
    const now = local("2026-03-15T12:00:00");
    expect([...peaksFromArchive(db, "be", zone, now)].sort()).toEqual([
      ["2026-01", 2.9],
      ["2026-02", 4.1],
    ]);
    const step = capacityTransform(
      [
        {
          id: "be",
          capacity: { price_per_kw_year: PRICE, minimum_kw: 2.5, average: "12_months" },
          timezone: zone,
          currency: "EUR",
        },
      ],
      () => db,
      now,
    )!;
    const out = step(reading("2026-03-15T12:00:00", 3000));
    expect(out.values.capacity_basis_kw).toBe(Math.round(((3.0 + 4.1 + 2.9) / 3) * 1000) / 1000);
    expect(
      step({ meterId: "nl", time: now, values: { demand_month_peak_w: 5000 } }).values.capacity_basis_kw,
    ).toBeUndefined();
  });

  it("is configured on a tariff, with the Flemish minimum and the 12-month average as defaults", () => {
    const cfg = ConfigSchema.parse({
      meters: [{ id: "be", type: "dsmr", port: "/dev/ttyUSB0" }],
      tariffs: { fluvius: { meters: ["be"], currency: "EUR", import: 0.3, capacity: { price_per_kw_year: PRICE } } },
    });
    expect(cfg.tariffs.fluvius?.capacity).toEqual({ price_per_kw_year: PRICE, minimum_kw: 2.5, average: "12_months" });
    expect(() =>
      ConfigSchema.parse({
        meters: [{ id: "be", type: "dsmr", port: "/dev/ttyUSB0" }],
        tariffs: {
          f: { meters: ["be"], currency: "EUR", import: 0.3, capacity: { price_per_kw_year: 50, average: "year" } },
        },
      }),
    ).toThrow(/average/);
  });
});
