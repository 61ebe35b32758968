/**
 * What the peak guard saved on Belgium's capacity tariff (src/loads/savings.ts), for scripted evenings of a Brussels
 * meter read every minute: a 2 kW boiler kept on while importing (off_import_w 10 kW), guarded, and a household
 * whose demand steps. The readings go through the bridge's derived quantities (the quarter-hour's projection from the
 * import register), the boiler's power follows the advisor's recommendation, and the saving is checked against
 * figures worked out by hand from the script.
 */
import { describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { parseConfig } from "../src/config/load.js";
import { createDeriver } from "../src/derived/index.js";
import { type AdvisedLoad, LoadAdvisor, LoadAdvisorService } from "../src/loads/index.js";
import { quantity } from "../src/model/quantities.js";
import type { Reading } from "../src/model/types.js";
import { sensorDiscovery } from "../src/outputs/mqtt/discovery.js";
import type { CapacityConfig } from "../src/tariffs/capacity.js";
import { recordingLog } from "./helpers/log.js";

const zone = "Europe/Brussels";
const PRICE = 53.2573; // per kW per year
const MIN = 60_000;
const BOILER_W = 2000;
const cents = (x: number): number => Math.round(x * 100) / 100;
const utc = (iso: string): number => Date.parse(iso);

const boiler: AdvisedLoad = {
  id: "boiler",
  meter: "be",
  powerW: BOILER_W,
  priority: 1,
  onSurplusW: BOILER_W,
  offImportW: 10_000,
  onDelayMs: 0,
  offDelayMs: 0,
  minOnMs: 0,
  minOffMs: 0,
  peakGuard: true,
  failSafe: "off",
  failSafeAfterMs: 60_000,
};

/**
 * Readings every minute from `from` to `to` (UTC): grid power = household + the boiler while recommended on, the
 * import register integrating it until the next reading, the meter's month-peak register as given. Returns the
 * advisor after the script, and the boiler's recommendation at each minute.
 */
function script(
  average: CapacityConfig["average"],
  from: string,
  to: string,
  householdW: (t: number) => number,
  monthPeakW: (t: number) => number,
  limitW = 2500,
): { advisor: LoadAdvisor; on: Map<number, boolean> } {
  const capacity = { config: { price_per_kw_year: PRICE, minimum_kw: 2.5, average }, zone };
  const advisor = new LoadAdvisor([boiler], { be: limitW }, { log: recordingLog().log, capacity: { be: capacity } });
  advisor.restore("boiler", { on: true, since: 0, mode: "auto" });
  const derive = createDeriver([{ id: "be", timezone: zone }]);
  let on = true;
  let kwh = 5000;
  const trace = new Map<number, boolean>();
  for (let t = utc(from); t <= utc(to); t += MIN) {
    const net = householdW(t) + (on ? BOILER_W : 0);
    const r: Reading = {
      meterId: "be",
      time: t,
      values: { power_net_w: net, energy_import_kwh: kwh, demand_month_peak_w: monthPeakW(t) },
    };
    advisor.onReading(derive(r));
    on = advisor.snapshots().find((s) => s.id === "boiler")?.on as boolean;
    trace.set(t, on);
    kwh += (Math.max(0, householdW(t) + (on ? BOILER_W : 0)) * MIN) / 3_600_000_000;
  }
  return { advisor, on: trace };
}

/** An evening of 10 March 2026 (UTC+1), the month's peak so far 4.0 kW. */
const household = (t: number): number => {
  if (t < utc("2026-03-10T17:00:00Z")) return 1000; // boiler on: 3.0 kW, under the peak
  if (t < utc("2026-03-10T17:30:00Z")) return 3000; // an oven: with the boiler 5.0 kW, the guard sheds the boiler
  if (t < utc("2026-03-10T17:45:00Z")) return -2500; // sun: the boiler back on surplus
  return 2500; // a kettle: with the boiler 4.5 kW, shed again
};
const MARCH = ["2026-03-10T16:00:00Z", "2026-03-10T18:15:00Z"] as const;

describe("the peak guard's savings", () => {
  it("the script: the guard sheds the boiler at 17:00 and at 17:45", () => {
    const { on } = script("month", ...MARCH, household, () => 4000);
    expect(on.get(utc("2026-03-10T16:59:00Z"))).toBe(true);
    expect(on.get(utc("2026-03-10T17:00:00Z"))).toBe(false);
    expect(on.get(utc("2026-03-10T17:30:00Z"))).toBe(true);
    expect(on.get(utc("2026-03-10T17:45:00Z"))).toBe(false);
  });

  it("month: the highest quarter-hour that would have been over the month's peak, at March's share of the year", () => {
    const { advisor } = script("month", ...MARCH, household, () => 4000);
    // 17:00–17:15: the oven's 3.0 kW as it was, plus the boiler held back the whole quarter-hour: 5.0 kW.
    // 17:45–18:00: 2.5 kW + 2.0 kW = 4.5 kW, under 5.0 kW: the month's saving is not the sum of the two.
    const wouldKw = (3000 + (BOILER_W * 15) / 15) / 1000;
    const savedKw = wouldKw - 4.0;
    const expected = cents((savedKw * PRICE * 31) / 365);
    expect(advisor.savedMonth("be", utc("2026-03-10T18:15:00Z"))).toEqual({
      saved: expected,
      since: "2026-02-28T23:00:00.000Z",
    });
    expect(expected).toBeGreaterThan(0);
    // Counted once the quarter-hour ends: at 17:14 nothing yet.
    const early = script("month", MARCH[0], "2026-03-10T17:14:00Z", household, () => 4000).advisor;
    expect(early.savedMonth("be", utc("2026-03-10T17:14:00Z"))?.saved).toBe(0);
  });

  it("12_months: the same kW counts 1/12 in each of the next 12 months' averages", () => {
    const { advisor } = script("12_months", ...MARCH, household, () => 4000);
    // March 2026 to February 2027, none a leap year.
    const days = [31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28];
    const perKw = days.reduce((a, d) => a + (PRICE * d) / 365 / 12, 0);
    expect(advisor.savedMonth("be", utc("2026-03-10T18:15:00Z"))?.saved).toBe(cents(1.0 * perKw));
    expect(cents(perKw)).toBe(cents(PRICE / 12));
  });

  it("a shed whose quarter-hour would have stayed under the month's peak saves nothing", () => {
    // At 17:00 the oven for a minute: the projection (5.0 kW) is over the 4.0 kW peak and the boiler is shed, but
    // the quarter-hour would have been (3.0 kW × 1 + 0.5 kW × 14) / 15 + 2.0 kW, about 2.7 kW.
    const spike = (t: number): number =>
      t === utc("2026-03-10T17:00:00Z") ? 3000 : t < utc("2026-03-10T17:00:00Z") ? 1000 : 500;
    const { advisor, on } = script("month", MARCH[0], "2026-03-10T17:30:00Z", spike, () => 4000);
    expect(on.get(utc("2026-03-10T17:00:00Z"))).toBe(false);
    expect((3000 * 1 + 500 * 14) / 15 + BOILER_W).toBeLessThan(4000);
    expect(advisor.savedMonth("be", utc("2026-03-10T17:30:00Z"))?.saved).toBe(0);
  });

  it("the 2.5 kW minimum, across the month boundary: April starts from nothing", () => {
    // 31 March 23:00 to 1 April 00:45 local (UTC+2). March's peak 4.0 kW; April's register 1.5 kW.
    const april = utc("2026-03-31T22:00:00Z");
    const { advisor, on } = script(
      "month",
      "2026-03-31T21:00:00Z",
      "2026-03-31T22:45:00Z",
      () => 1000,
      (t) => (t < april ? 4000 : 1500),
    );
    // In March 3.0 kW stays under the 4.0 kW peak; at April's first quarter-hour the limit is max(2.5, 1.5) kW.
    expect(on.get(april - MIN)).toBe(true);
    expect(on.get(april)).toBe(false);
    expect(advisor.savedMonth("be", april - 1)?.saved).toBe(0);
    // 00:00–00:15: 1.0 kW + 2.0 kW held back = 3.0 kW would have been; 1.5 kW is, billed as the 2.5 kW minimum.
    const savedKw = (1000 + BOILER_W) / 1000 - Math.max(2.5, 1.5);
    expect(advisor.savedMonth("be", utc("2026-03-31T22:45:00Z"))).toEqual({
      saved: cents((savedKw * PRICE * 30) / 365),
      since: "2026-03-31T22:00:00.000Z",
    });
    // A guard set under the minimum (limit 2.0 kW) sheds at 2.4 kW, which would have been billed as 2.5 kW anyway.
    const small = script(
      "month",
      "2026-03-31T22:00:00Z",
      "2026-03-31T22:45:00Z",
      () => 400,
      () => 1500,
      2000,
    );
    expect(small.on.get(april)).toBe(false);
    expect(small.advisor.savedMonth("be", utc("2026-03-31T22:45:00Z"))?.saved).toBe(0);
  });

  it("published on the readings of meters with capacity and guarded loads only, as a monthly total", async () => {
    const config = parseConfig({
      meters: [
        { id: "be", type: "dsmr", port: "/dev/ttyUSB0", timezone: zone },
        { id: "nl", type: "dsmr", port: "/dev/ttyUSB1" },
      ],
      tariffs: {
        fluvius: { meters: ["be"], currency: "EUR", import: 0.3, capacity: { price_per_kw_year: PRICE } },
        plain: { meters: ["nl"], currency: "EUR", import: 0.3 },
      },
      loads: [
        { id: "boiler", meter: "be", power_w: 2000, peak_guard: true },
        { id: "heater", meter: "nl", power_w: 2000, peak_guard: true },
      ],
      peak_guard: [{ meter: "be" }, { meter: "nl" }],
    });
    const bus = new Bus();
    const service = new LoadAdvisorService(config, { log: recordingLog().log });
    service.start(bus);
    const got: Reading[] = [];
    bus.subscribe("test", "reading", (r) => {
      got.push(r);
    });
    const t = utc("2026-03-10T17:00:00Z");
    bus.emit("reading", { meterId: "be", time: t, values: { power_net_w: 500 } });
    bus.emit("reading", { meterId: "nl", time: t, values: { power_net_w: 500 } });
    bus.emit("reading", { meterId: "be", time: t, values: { archive_size_mb: 1 } });
    await new Promise((r) => setTimeout(r, 20));
    service.stop(bus);
    expect(got.map((r) => [r.meterId, r.values.peak_guard_saved_month, r.values.peak_guard_saved_since])).toEqual([
      ["be", 0, "2026-02-28T23:00:00.000Z"],
      ["nl", undefined, undefined],
      ["be", undefined, undefined],
    ]);
    // In HA: money in the tariff's currency, a total that starts over at the month's start.
    const spec = quantity("peak_guard_saved_month")!;
    const d = sensorDiscovery(
      {
        discoveryPrefix: "homeassistant",
        baseTopic: "meter2mqtt",
        meter: { id: "be" },
        currency: "EUR",
        origin: { name: "meter2mqtt" },
      } as Parameters<typeof sensorDiscovery>[0],
      spec,
    ).payload;
    expect(d).toMatchObject({
      device_class: "monetary",
      state_class: "total",
      unit_of_measurement: "EUR",
      last_reset_value_template: "{{ value_json.peak_guard_saved_since }}",
    });
    expect(spec.archive).toBe(false);
  });
});
