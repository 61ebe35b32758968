/**
 * Tariffs: configuration checks, prices by local time across the clock changes, the daily charge over 23- and 25-hour
 * days, the live cost totals (and their continuation from the archive), and the cost sensors' discovery.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { quantity } from "../src/model/quantities.js";
import type { Reading } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { originOf, sensorDiscovery } from "../src/outputs/mqtt/discovery.js";
import { createCoster, MeterCost, restoreCostStates, Tariff } from "../src/tariffs/index.js";
import type { TariffConfig } from "../src/tariffs/schema.js";

const base = { meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }] };
const issues = (tariffs: unknown): string => {
  try {
    parseConfig({ ...base, tariffs });
    return "";
  } catch (err) {
    return (err as Error).message;
  }
};

const DAY_NIGHT: TariffConfig = {
  type: "fixed",
  meters: ["home"],
  currency: "EUR",
  import: [{ from: "07:00", to: "23:00", days: ["mon", "tue", "wed", "thu", "fri"], price: 0.3 }, { price: 0.2 }],
  export: 0.08,
  daily_charge: 0.72,
};
const Z = (s: string): number => Date.parse(s);

describe("tariff configuration", () => {
  it("takes a flat price, periods and a daily charge, with the meter's zone", () => {
    const cfg = parseConfig({ ...base, tariffs: { t: DAY_NIGHT } });
    expect(cfg.tariffs.t?.daily_charge).toBe(0.72);
    expect(
      parseConfig({ ...base, tariffs: { t: { meters: ["home"], currency: "USD", import: 0.13 } } }).tariffs.t,
    ).toMatchObject({ import: 0.13, daily_charge: 0 });
  });

  it("names the key and says what was expected", () => {
    expect(issues({ t: { ...DAY_NIGHT, meters: ["nope"] } })).toContain(
      "tariffs.t.meters[0]: expected the id of a configured meter: home",
    );
    expect(issues({ t: DAY_NIGHT, u: { ...DAY_NIGHT } })).toContain(
      'tariffs.u.meters[0]: meter "home" already has the tariff "t"',
    );
    expect(issues({ t: { ...DAY_NIGHT, import: [{ from: "07:00", to: "23:00", price: 0.3 }] } })).toContain(
      "tariffs.t.import: no period covers mon 00:00",
    );
    expect(
      issues({ t: { ...DAY_NIGHT, import: [{ from: "07:10", to: "23:00", price: 0.3 }, { price: 1 }] } }),
    ).toContain('tariffs.t.import[0].from: expected a local time "HH:MM" on a quarter hour');
    expect(issues({ t: { ...DAY_NIGHT, currency: "eur" } })).toContain("tariffs.t.currency: expected an ISO 4217");
    expect(issues({ t: { ...DAY_NIGHT, import: "cheap" } })).toContain(
      "tariffs.t.import: expected a price per kWh (a number) or a list of periods",
    );
  });
});

describe("Tariff", () => {
  const t = new Tariff("t", DAY_NIGHT, "Europe/Amsterdam");

  it("prices by local time and weekday, on both sides of the spring change", () => {
    // Friday 28 March 2025 is CET (UTC+1): 07:00 local is 06:00Z.
    expect(t.price("import", Z("2025-03-28T05:59:59Z"))).toBe(0.2);
    expect(t.price("import", Z("2025-03-28T06:00:00Z"))).toBe(0.3);
    expect(t.price("import", Z("2025-03-28T21:59:59Z"))).toBe(0.3);
    expect(t.price("import", Z("2025-03-28T22:00:00Z"))).toBe(0.2);
    // Sunday 30 March (the change) is a weekend day; Monday 31 March is CEST (UTC+2): 07:00 local is 05:00Z.
    expect(t.price("import", Z("2025-03-30T10:00:00Z"))).toBe(0.2);
    expect(t.price("import", Z("2025-03-31T04:59:59Z"))).toBe(0.2);
    expect(t.price("import", Z("2025-03-31T05:00:00Z"))).toBe(0.3);
    expect(t.price("export", Z("2025-03-31T05:00:00Z"))).toBe(0.08);
  });

  it("spreads energy evenly over the time it was used in, across a price change", () => {
    // 06:50 to 07:10 local: half at 0.20, half at 0.30.
    expect(t.energyCost("import", 1, Z("2025-03-28T05:50:00Z"), Z("2025-03-28T06:10:00Z"))).toBeCloseTo(0.25, 12);
    expect(t.energyCost("import", 2, Z("2025-03-28T06:10:00Z"), Z("2025-03-28T06:10:00Z"))).toBeCloseTo(0.6, 12);
  });

  it("spreads the daily charge over the day's own length: 23 hours in spring, 25 in autumn", () => {
    // The local day 30 March runs from 29 March 23:00Z to 30 March 22:00Z.
    expect(t.fixed(Z("2025-03-29T23:00:00Z"), Z("2025-03-30T22:00:00Z"))).toBeCloseTo(0.72, 12);
    expect(t.fixed(Z("2025-03-30T12:00:00Z"), Z("2025-03-31T12:00:00Z"))).toBeCloseTo(
      (0.72 * 10) / 23 + (0.72 * 14) / 24,
      12,
    );
    // 26 October 2025: 25 hours, from 25 October 22:00Z to 26 October 23:00Z.
    expect(t.fixed(Z("2025-10-25T22:00:00Z"), Z("2025-10-26T10:30:00Z"))).toBeCloseTo(0.72 / 2, 12);
  });
});

describe("live cost totals", () => {
  const reading = (time: string, imp: number, exp?: number, extra: Record<string, number> = {}): Reading => ({
    meterId: "home",
    time: Z(time),
    values: { energy_import_kwh: imp, ...(exp === undefined ? {} : { energy_export_kwh: exp }), ...extra },
  });

  it("adds each reading's energy at the price of its time, the daily charge, and what export earned", () => {
    const m = new MeterCost(new Tariff("t", DAY_NIGHT, "Europe/Amsterdam"));
    expect(m.add(reading("2025-03-28T05:00:00Z", 100, 50))).toEqual({
      cost_import_total: 0,
      cost_export_total: 0,
      currency: "EUR",
      price_per_kwh: 0.2,
    });
    // 05:00Z–07:00Z: 2 kWh over one hour at 0.20 and one at 0.30, one hour of a 24-hour day's charge.
    const v = m.add(reading("2025-03-28T07:00:00Z", 102, 51));
    expect(v.cost_import_total).toBeCloseTo(0.2 + 0.3 + (0.72 * 2) / 24, 6);
    expect(v.cost_export_total).toBeCloseTo(0.08, 6);
    expect(v.price_per_kwh).toBe(0.3);
    // A reading without a register adds nothing; a price the meter sends is kept.
    expect(m.add({ meterId: "home", time: Z("2025-03-28T07:00:05Z"), values: { power_import_w: 5 } })).toEqual({});
    expect(m.add(reading("2025-03-28T07:00:10Z", 102, 51, { price_per_kwh: 0.5 })).price_per_kwh).toBeUndefined();
  });

  it("does not book a register that went down (a replaced meter), but does a restarted estimate", () => {
    const t = new Tariff("t", { ...DAY_NIGHT, import: 1, daily_charge: 0 }, "UTC");
    const m = new MeterCost(t);
    m.add(reading("2025-01-01T00:00:00Z", 500));
    expect(m.add(reading("2025-01-01T00:01:00Z", 3)).cost_import_total).toBe(0);
    expect(m.add(reading("2025-01-01T00:02:00Z", 4)).cost_import_total).toBe(1);

    const e = new MeterCost(t, {
      time: Z("2025-01-01T00:00:00Z"),
      registers: { energy_import_estimated_kwh: 7 },
      importCost: 10,
      exportCost: 0,
    });
    const after = e.add({
      meterId: "home",
      time: Z("2025-01-01T01:00:00Z"),
      values: { energy_import_estimated_kwh: 0.5 },
    });
    expect(after.cost_import_total).toBe(10.5);
  });

  describe("across a restart, from the archive", () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "m2m-tariff-"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("continues from the newest archived totals and prices the gap's energy and days", async () => {
      const path = join(dir, "a.sqlite");
      const tariffs = new Map([["home", new Tariff("t", DAY_NIGHT, "Europe/Amsterdam")]]);
      const coster = createCoster(tariffs);
      const archive = new Archive({ enabled: true, path, interval: 0 });
      await archive.start();
      let last: Reading | undefined;
      for (let i = 0; i <= 12; i++) {
        last = coster(reading(new Date(Z("2025-03-28T04:00:00Z") + i * 600_000).toISOString(), 100 + i * 0.1, 20));
        archive.add(last);
      }
      await archive.flush();
      await archive.stop();
      const before = last?.values.cost_import_total as number;
      // 04:00Z–06:00Z is 05:00–07:00 local, night: 1.2 kWh at 0.20, and two hours of the daily charge.
      expect(before).toBeCloseTo(1.2 * 0.2 + (0.72 * 2) / 24, 6);

      const db = openArchiveReadOnly(path);
      const restored = restoreCostStates(db, ["home"]);
      db.close();
      expect(restored.get("home")).toMatchObject({ time: Z("2025-03-28T06:00:00Z"), importCost: before });
      const again = createCoster(tariffs, restored);
      // Down until Monday 05:00Z: 30 kWh spread evenly over the 71 hours, and the days' charges in between.
      const next = again(reading("2025-03-31T05:00:00Z", 131.2, 20));
      const t = tariffs.get("home") as Tariff;
      const expected =
        before +
        t.energyCost("import", 30, Z("2025-03-28T06:00:00Z"), Z("2025-03-31T05:00:00Z")) +
        t.fixed(Z("2025-03-28T06:00:00Z"), Z("2025-03-31T05:00:00Z"));
      expect(next.values.cost_import_total).toBeCloseTo(expected, 6);
      // The charge of 3 days less 1 hour (the 23-hour Sunday included): by hand.
      expect(t.fixed(Z("2025-03-28T06:00:00Z"), Z("2025-03-31T05:00:00Z"))).toBeCloseTo(
        0.72 * (17 / 24 + 1 + 1 + 7 / 24),
        9,
      );
    });
  });
});

describe("cost sensors", () => {
  it("are monetary totals in the tariff's currency, as HA's Energy dashboard takes them", () => {
    for (const name of ["cost_import_total", "cost_export_total"]) {
      const spec = quantity(name);
      expect(spec).toMatchObject({ deviceClass: "monetary", stateClass: "total", archive: true });
      const { payload } = sensorDiscovery(
        {
          discoveryPrefix: "homeassistant",
          baseTopic: "meter2mqtt",
          meter: { id: "home", type: "dsmr" },
          currency: "EUR",
          origin: originOf("1.0.0"),
        },
        spec as NonNullable<typeof spec>,
      );
      expect(payload).toMatchObject({ unit_of_measurement: "EUR", device_class: "monetary", state_class: "total" });
    }
  });
});
