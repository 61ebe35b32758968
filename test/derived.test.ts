/**
 * Derived quantities (src/derived/): net and surplus power, the quarter-hour demand computed from the import
 * register on fixed boundaries where the meter does not report it, its projection, the month's peak, and the bus
 * step that hands every output the same enriched reading.
 */
import { describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { createDeriver, MeterDerivation, QuarterHourDemand } from "../src/derived/index.js";
import type { Reading } from "../src/model/types.js";

const T = (hhmmss: string, day = "2026-03-10"): number => Date.parse(`${day}T${hhmmss}Z`);
const at = (meterId: string, time: number, values: Reading["values"]): Reading => ({ meterId, time, values });

/** kWh of a register that started at `kwh0` at `t0` and has drawn a constant `w` since. */
const register = (kwh0: number, t0: number, w: number) => (t: number) => kwh0 + (w * (t - t0)) / 3_600_000_000;

describe("net and surplus power", () => {
  const cases: [string, Reading["values"], Record<string, number | undefined>][] = [
    ["importing", { power_import_w: 800, power_export_w: 0, power_net_w: 800 }, { surplus: 0, net: undefined }],
    ["exporting", { power_import_w: 0, power_export_w: 1500, power_net_w: -1500 }, { surplus: 1500, net: undefined }],
    ["net computed when the source did not", { power_import_w: 0, power_export_w: 700 }, { surplus: 700, net: -700 }],
    ["import only: net is the import", { power_import_w: 350 }, { surplus: 0, net: 350 }],
    ["no power at all: nothing", { energy_import_kwh: 12.5 }, { surplus: undefined, net: undefined }],
  ];
  for (const [name, values, want] of cases)
    it(name, () => {
      const out = new MeterDerivation().derive(at("m", T("12:00:00"), values));
      expect(out.power_surplus_w).toBe(want.surplus);
      expect(out.power_net_w).toBe(want.net);
    });
});

describe("quarter-hour demand from the import register", () => {
  it("starts at the first boundary it sees, climbs through the quarter and projects a constant load to itself", () => {
    const kwh = register(1000, T("12:07:03"), 1200);
    const d = new MeterDerivation();
    const seen = new Map<string, [number | string | undefined, number | string | undefined]>();
    // A reading every 10 s, as a DSMR 4 meter sends them.
    for (let t = T("12:07:03"); t <= T("12:30:03"); t += 10_000) {
      const out = d.derive(at("m", t, { energy_import_kwh: kwh(t), power_import_w: 1200 }));
      seen.set(new Date(t).toISOString().slice(11, 19), [
        out.demand_quarter_hour_w,
        out.demand_quarter_hour_projected_w,
      ]);
    }
    const rows: [string, number | undefined, number | undefined][] = [
      // time, demand_quarter_hour_w, demand_quarter_hour_projected_w
      ["12:07:03", undefined, undefined], // the quarter began before the bridge saw it
      ["12:14:53", undefined, undefined],
      ["12:15:03", 4, 1200], // 1 Wh drawn in 3 s, over the whole 900 s
      ["12:20:03", 404, 1200],
      ["12:29:53", 1191, 1200], // 893 s of 900
      ["12:30:03", 4, 1200],
    ];
    for (const [time, demand, projected] of rows) expect([time, ...seen.get(time)!]).toEqual([time, demand, projected]);
  });

  it("interpolates the register at the boundary between the readings either side", () => {
    const q = new QuarterHourDemand();
    q.add(T("12:14:50"), 100.0);
    // 30 Wh in 30 s: 10 Wh of it before 12:15:00, 20 Wh after.
    expect(q.add(T("12:15:20"), 100.03).demandW).toBe(80);
  });

  it("projects from what is drawn so far plus the rest of the quarter at the current import", () => {
    const d = new MeterDerivation();
    d.derive(at("m", T("12:00:00"), { energy_import_kwh: 50, power_import_w: 0 }));
    // 0.5 kWh by 12:05 (6 kW for 5 min): 2000 W so far; the last 10 minutes at 300 W add 200 W.
    const out = d.derive(at("m", T("12:05:00"), { energy_import_kwh: 50.5, power_import_w: 300 }));
    expect(out.demand_quarter_hour_w).toBe(2000);
    expect(out.demand_quarter_hour_projected_w).toBe(2200);
  });

  it("counts completed quarters toward the month's peak, stamped with the quarter's end", () => {
    const d = new MeterDerivation();
    let kwh = 10;
    let t = T("12:00:00");
    /** Minutes at `w` watts, a reading a minute; returns the last reading's derived values. */
    const run = (minutes: number, w: number) => {
      let out: Record<string, number | string> = {};
      for (let i = 0; i < minutes; i++) {
        t += 60_000;
        kwh += w / 60_000;
        out = d.derive(at("m", t, { energy_import_kwh: kwh }));
      }
      return out;
    };
    d.derive(at("m", t, { energy_import_kwh: kwh }));
    expect(run(14, 3000).demand_month_peak_w).toBeUndefined();
    expect(run(1, 3000)).toMatchObject({ demand_month_peak_w: 3000, demand_month_peak_at: "2026-03-10T12:15:00.000Z" });
    // A smaller quarter leaves the peak where it was; a larger one replaces it.
    expect(run(15, 1000)).toMatchObject({
      demand_month_peak_w: 3000,
      demand_month_peak_at: "2026-03-10T12:15:00.000Z",
    });
    expect(run(15, 4000)).toMatchObject({
      demand_month_peak_w: 4000,
      demand_month_peak_at: "2026-03-10T12:45:00.000Z",
    });
  });

  it("leaves out quarters it saw only part of: a gap longer than 5 minutes, a register that went backwards", () => {
    const q = new QuarterHourDemand();
    q.add(T("12:00:00"), 10);
    q.add(T("12:04:00"), 10.1);
    // 6 minutes without a reading: the register at 12:15 would be a guess.
    expect(q.add(T("12:10:00"), 10.2).demandW).toBeUndefined();
    expect(q.add(T("12:15:00"), 10.3)).toEqual({ demandW: 0 });
    for (const [time, kwh] of [
      ["12:20:00", 10.4],
      ["12:25:00", 10.5],
    ] as const)
      q.add(T(time), kwh);
    expect(q.add(T("12:30:00"), 10.55)).toEqual({ demandW: 0, monthPeakW: 1000, monthPeakAt: T("12:30:00") });
    // A replaced meter starts lower: the running quarter is unknown again, the peak stays.
    expect(q.add(T("12:35:00"), 0.2)).toEqual({ monthPeakW: 1000, monthPeakAt: T("12:30:00") });
  });

  it("starts the month's peak over when the month begins in the meter's time zone", () => {
    // Brussels is UTC+1 in winter: March begins there at 2026-02-28T23:00Z.
    const feed = (q: QuarterHourDemand) => {
      const out = [];
      // 4 kW over 22:45–23:00Z, then 600 W; a reading every 5 minutes.
      for (const [time, kwh] of [
        ["22:45:00", 0],
        ["22:50:00", 1 / 3],
        ["22:55:00", 2 / 3],
        ["23:00:00", 1],
        ["23:05:00", 1.05],
        ["23:10:00", 1.1],
        ["23:15:00", 1.15],
      ] as const)
        out.push(q.add(T(time, "2026-02-28"), kwh));
      return out;
    };
    const brussels = feed(new QuarterHourDemand("Europe/Brussels"));
    // 23:00Z ends a February quarter there, but it is March already: no peak until March's first quarter ends.
    expect(brussels[3]).toEqual({ demandW: 0 });
    expect(brussels[5]).toEqual({ demandW: 400 });
    expect(brussels[6]).toEqual({ demandW: 0, monthPeakW: 600, monthPeakAt: T("23:15:00", "2026-02-28") });
    // On a UTC meter it is still February: the 4 kW quarter is the peak.
    expect(feed(new QuarterHourDemand())[6]).toMatchObject({
      monthPeakW: 4000,
      monthPeakAt: T("23:00:00", "2026-02-28"),
    });
  });

  it("passes the Belgian meter's own values through and projects from its 1-0:1.4.0", () => {
    const d = new MeterDerivation();
    const values = {
      energy_import_kwh: 500,
      power_import_w: 2700,
      power_net_w: 2700,
      demand_quarter_hour_w: 1500,
      demand_month_peak_w: 3200,
      demand_month_peak_at: "2026-03-02T18:15:00.000Z",
    };
    d.derive(at("be", T("18:00:00"), values));
    const out = d.derive(at("be", T("18:06:00"), { ...values, energy_import_kwh: 501 }));
    // 1500 W so far + 2700 W for the remaining 540 s of 900.
    expect(out).toEqual({ power_surplus_w: 0, demand_quarter_hour_projected_w: 3120 });
  });

  it("projects on every reading when demand and energy come in separate readings (RAVEn)", () => {
    const d = new MeterDerivation();
    d.derive(at("emu", T("09:00:00"), { energy_import_kwh: 20 }));
    const power = d.derive(at("emu", T("09:03:00"), { power_net_w: 1800, power_import_w: 1800, power_export_w: 0 }));
    expect(power.demand_quarter_hour_projected_w).toBe(1800); // nothing drawn yet that the bridge knows of
    const energy = d.derive(at("emu", T("09:05:00"), { energy_import_kwh: 20.15 }));
    // 150 Wh by 09:05 (600 W so far) + 1800 W for the last 600 s.
    expect(energy).toEqual({ demand_quarter_hour_w: 600, demand_quarter_hour_projected_w: 1800 });
  });
});

describe("the bus step", () => {
  it("gives every subscriber the enriched reading and leaves the source's own object alone", async () => {
    const bus = new Bus();
    bus.transform("reading", createDeriver([{ id: "home" }]));
    const a: Reading[] = [];
    const b: Reading[] = [];
    bus.subscribe("a", "reading", (r) => {
      a.push(r);
    });
    bus.subscribe("b", "reading", (r) => {
      b.push(r);
    });
    const sent = at("home", T("10:00:00"), { power_import_w: 0, power_export_w: 900, power_net_w: -900 });
    bus.emit("reading", sent);
    await bus.idle();
    expect(a[0]).toEqual({ ...sent, values: { ...sent.values, power_surplus_w: 900 } });
    expect(b[0]).toBe(a[0]);
    expect(sent.values.power_surplus_w).toBeUndefined();
  });

  it("passes a reading on unchanged when a step throws", async () => {
    const bus = new Bus();
    bus.transform("reading", () => {
      throw new Error("boom");
    });
    const got: Reading[] = [];
    bus.subscribe("a", "reading", (r) => {
      got.push(r);
    });
    const sent = at("home", 0, { power_net_w: 1 });
    bus.emit("reading", sent);
    await bus.idle();
    expect(got).toEqual([sent]);
  });
});

describe("the month's computed peak across a restart", () => {
  it("carries on from the archive: a lower quarter keeps it, a higher one replaces it, a new month starts over", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { Archive, openArchiveReadOnly } = await import("../src/outputs/archive/index.js");
    const { monthPeaksFromArchive } = await import("../src/derived/index.js");
    const dir = mkdtempSync(join(tmpdir(), "m2m-peak-"));
    try {
      // The first run: 4 kW for one quarter (10:00–10:15), then 1 kW; the archive keeps what the bridge computed.
      const path = join(dir, "a.sqlite");
      const archive = new Archive({ enabled: true, path, interval: 0 });
      await archive.start();
      const first = createDeriver([{ id: "m", timezone: "Europe/Brussels" }]);
      let kwh = 100;
      for (let t = T("09:59:00"); t <= T("10:40:00"); t += 60_000) {
        kwh += (t <= T("10:15:00") ? 4000 : 1000) / 60_000;
        archive.add(first(at("m", t, { energy_import_kwh: Math.round(kwh * 1e6) / 1e6 })));
      }
      await archive.stop();
      const db = openArchiveReadOnly(path);
      const peaks = monthPeaksFromArchive(
        db,
        [{ id: "m", timezone: "Europe/Brussels" }, { id: "none" }],
        T("11:00:00"),
      );
      db.close();
      expect(peaks.get("m")?.at).toBe(T("10:15:00"));
      expect(peaks.get("m")?.w).toBeCloseTo(4000, -1);
      expect(peaks.has("none")).toBe(false);

      // The second run: the peak is there from the first reading on, and a 2 kW quarter does not lower it.
      const again = createDeriver([{ id: "m", timezone: "Europe/Brussels", peak: peaks.get("m") }]);
      const r0 = again(at("m", T("11:00:00"), { energy_import_kwh: 200 }));
      expect(r0.values.demand_month_peak_w).toBe(Math.round(peaks.get("m")?.w as number));
      expect(r0.values.demand_month_peak_at).toBe("2026-03-10T10:15:00.000Z");
      again(at("m", T("11:15:00"), { energy_import_kwh: 200.5 }));
      const r2 = again(at("m", T("11:16:00"), { energy_import_kwh: 200.52 }));
      expect(r2.values.demand_month_peak_w).toBe(Math.round(peaks.get("m")?.w as number));
      // About 6 kW for most of the next quarter, a reading a minute: the new peak.
      let r3 = r2;
      for (let m = 17; m <= 31; m++) {
        const t = T("11:00:00") + m * 60_000;
        const e =
          200.5 +
          0.02 +
          Math.max(0, Math.min(t, T("11:30:00")) - T("11:16:00")) / 600_000 +
          (t > T("11:30:00") ? 0.01 : 0);
        r3 = again(at("m", t, { energy_import_kwh: Math.round(e * 1e6) / 1e6 }));
      }
      // 11:15–11:30: 0.02 kWh in its first minute, then 0.1 kWh a minute for 14 minutes.
      expect(r3.values.demand_month_peak_w).toBe(Math.round((0.02 + 14 * 0.1) * 4000));
      expect(r3.values.demand_month_peak_at).toBe("2026-03-10T11:30:00.000Z");
      // A restored peak of last month is not this month's.
      const next = createDeriver([{ id: "m", timezone: "Europe/Brussels", peak: { w: 9000, at: T("10:15:00") } }]);
      const r4 = next(at("m", T("00:10:00", "2026-04-01"), { energy_import_kwh: 300 }));
      expect(r4.values.demand_month_peak_w).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
