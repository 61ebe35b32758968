/**
 * The load advisor's control logic, evcc-style: each table is a sequence of rows {seconds, grid power, ...,
 * expected recommendation and reason per load}, replayed with an injected clock. A row's expectation reads
 * "on surplus", "off on_delay 20" (reason, then the seconds left on the countdown when one runs).
 */
import { describe, expect, it } from "vitest";
import { type ConfigError, parseConfig } from "../src/config/load.js";
import { type AdvisedLoad, advisedLoad, LoadAdvisor, type Mode } from "../src/loads/index.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";

const T0 = Date.UTC(2026, 5, 10, 12, 0, 0);

const load = (id: string, over: Partial<AdvisedLoad> = {}): AdvisedLoad => ({
  id,
  meter: "home",
  powerW: 1000,
  priority: 1,
  onSurplusW: 1000,
  offImportW: 0,
  onDelayMs: 0,
  offDelayMs: 0,
  minOnMs: 0,
  minOffMs: 0,
  peakGuard: false,
  failSafe: "off",
  failSafeAfterMs: 3_600_000,
  ...over,
});

interface Row {
  /** Seconds after T0 on the clock; also the reading's time unless `meterAt` says otherwise. */
  at: number;
  /** Net grid power (import − export), W; no reading in this row without it. */
  grid?: number;
  meterAt?: number;
  projected?: number;
  peak?: number;
  /** Mode changes applied before the reading. */
  mode?: Record<string, Mode>;
  expect: Record<string, string>;
}

function replay(loads: AdvisedLoad[], rows: Row[], opts: { peakLimitW?: number } = {}) {
  const clock = new ManualClock(T0);
  const advisor = new LoadAdvisor(loads, { home: opts.peakLimitW ?? 2500 }, { clock, log: recordingLog().log });
  advisor.start();
  for (const row of rows) {
    clock.advance(T0 + row.at * 1000 - clock.now());
    for (const [id, mode] of Object.entries(row.mode ?? {})) advisor.setMode(id, mode);
    if (row.grid !== undefined)
      advisor.onReading({
        meterId: "home",
        time: T0 + (row.meterAt ?? row.at) * 1000,
        values: {
          power_net_w: row.grid,
          ...(row.projected === undefined ? {} : { demand_quarter_hour_projected_w: row.projected }),
          ...(row.peak === undefined ? {} : { demand_month_peak_w: row.peak }),
        },
      });
    const now = new Map(advisor.snapshots().map((s) => [s.id, s]));
    const got: Record<string, string> = {};
    for (const id of Object.keys(row.expect)) {
      const s = now.get(id);
      got[id] = s ? `${s.on ? "on" : "off"} ${s.reason}${s.delayS > 0 ? ` ${s.delayS}` : ""}` : "(none)";
    }
    expect({ at: row.at, ...got }).toEqual({ at: row.at, ...row.expect });
  }
  advisor.stop();
  return advisor;
}

describe("one load", () => {
  it("hysteresis: on at on_surplus_w of export, off past off_import_w of import", () => {
    replay(
      [load("heater", { powerW: 1000, onSurplusW: 1200, offImportW: 300 })],
      [
        { at: 0, grid: -1000, expect: { heater: "off no_surplus" } },
        { at: 10, grid: -1200, expect: { heater: "on surplus" } },
        // On, the heater's own 1000 W are in the meter's figure: importing 200 or 300 W is tolerated.
        { at: 20, grid: 200, expect: { heater: "on surplus" } },
        { at: 30, grid: 300, expect: { heater: "on surplus" } },
        { at: 40, grid: 301, expect: { heater: "off no_surplus" } },
        { at: 50, grid: -1100, expect: { heater: "off no_surplus" } },
        { at: 60, grid: -1250, expect: { heater: "on surplus" } },
      ],
    );
  });

  it("delays run only while the condition holds, and start over when it breaks", () => {
    replay(
      [load("heater", { onDelayMs: 30_000, offDelayMs: 20_000 })],
      [
        { at: 0, grid: -1500, expect: { heater: "off on_delay 30" } },
        { at: 10, grid: -1500, expect: { heater: "off on_delay 20" } },
        { at: 20, grid: -500, expect: { heater: "off no_surplus" } }, // a cloud
        { at: 30, grid: -1500, expect: { heater: "off on_delay 30" } },
        { at: 50, grid: -1500, expect: { heater: "off on_delay 10" } },
        { at: 60, grid: -1500, expect: { heater: "on surplus" } },
        { at: 70, grid: 800, expect: { heater: "on off_delay 20" } },
        { at: 80, grid: -100, expect: { heater: "on surplus" } },
        { at: 90, grid: 800, expect: { heater: "on off_delay 20" } },
        { at: 100, grid: 800, expect: { heater: "on off_delay 10" } },
        { at: 110, grid: 800, expect: { heater: "off no_surplus" } },
      ],
    );
  });

  it("minimum on and off times hold a change back; the later of delay and minimum decides", () => {
    replay(
      [load("pump", { minOnMs: 120_000, minOffMs: 60_000, onDelayMs: 20_000 })],
      [
        // Never switched yet: no minimum off time to serve.
        { at: 0, grid: -1500, expect: { pump: "off on_delay 20" } },
        { at: 20, grid: -1500, expect: { pump: "on surplus" } },
        { at: 30, grid: 500, expect: { pump: "on min_on 110" } },
        { at: 80, grid: 500, expect: { pump: "on min_on 60" } },
        { at: 140, grid: 500, expect: { pump: "off no_surplus" } },
        // The on delay ends at 170, the minimum off time at 200.
        { at: 150, grid: -1500, expect: { pump: "off min_off 50" } },
        { at: 190, grid: -1500, expect: { pump: "off min_off 10" } },
        { at: 200, grid: -1500, expect: { pump: "on surplus" } },
      ],
    );
  });
});

describe("two loads", () => {
  const boiler = load("boiler", { powerW: 2000, onSurplusW: 2000, priority: 1 });
  const ev = load("ev", { powerW: 1400, onSurplusW: 1400, priority: 2 });

  it("share the surplus by priority, counting what the loads already on draw", () => {
    replay(
      [ev, boiler],
      [
        // 1500 W is too little for the boiler, enough for the EV.
        { at: 0, grid: -1500, expect: { boiler: "off no_surplus", ev: "on surplus" } },
        // With the EV on the meter exports 600: 2000 in all, which goes to the boiler first.
        { at: 10, grid: -600, expect: { boiler: "on surplus", ev: "off no_surplus" } },
        // Boiler on and 1000 exported: 3000 in all, 1000 left after the boiler, too little for the EV.
        { at: 20, grid: -1000, expect: { boiler: "on surplus", ev: "off no_surplus" } },
        { at: 30, grid: -1400, expect: { boiler: "on surplus", ev: "on surplus" } },
        // A cloud: 300 W imported with both on; the lower priority goes first.
        { at: 40, grid: 300, expect: { boiler: "on surplus", ev: "off no_surplus" } },
        { at: 50, grid: 2100, expect: { boiler: "off no_surplus", ev: "off no_surplus" } },
        // One surplus is never counted twice: 2500 W is the boiler's, and what is left is too little for the EV.
        { at: 60, grid: -2500, expect: { boiler: "on surplus", ev: "off no_surplus" } },
      ],
    );
  });

  it("a load in manual mode on draws its share before the others", () => {
    replay(
      [boiler, ev],
      [
        // In auto the boiler would take 2900 W (the EV's 1400 and the 1500 exported); the EV keeps its share.
        { at: 0, grid: -1500, mode: { ev: "on" }, expect: { boiler: "off no_surplus", ev: "on manual" } },
        { at: 10, grid: -2000, expect: { boiler: "on surplus", ev: "on manual" } },
      ],
    );
  });
});

describe("peak guard", () => {
  // Rows from 12:00:00: the quarter ends at 900 s. The limit is max(2500, the month's peak of 3000).
  const boiler = load("boiler", { powerW: 2000, onSurplusW: 2000, offDelayMs: 60_000, peakGuard: true });
  const ev = load("ev", { powerW: 1400, onSurplusW: 800, offImportW: 600, priority: 2, peakGuard: true });

  it("sheds before the quarter ends, without waiting for the off delay", () => {
    replay(
      [boiler],
      [
        { at: 0, grid: -2500, projected: 0, peak: 3000, expect: { boiler: "on surplus" } },
        // A kettle: 2200 W imported with the boiler on. Held to 12:15 that makes 3100 W.
        { at: 120, grid: 2200, projected: 3100, peak: 3000, expect: { boiler: "off peak_guard" } },
        // Shed, the boiler's off delay would still be running; and it stays off while the kettle boils.
        { at: 130, grid: 200, projected: 1400, peak: 3000, expect: { boiler: "off no_surplus" } },
      ],
    );
  });

  it("overrides surplus switching: no switch-on that would import past the limit, until the quarter is nearly over", () => {
    replay(
      [ev],
      [
        // 900 W exported, on_surplus 800: the EV would import 500 W for the 600 s left, +333 W on 2950.
        { at: 300, grid: -900, projected: 2950, peak: 3000, expect: { ev: "off peak_guard" } },
        // 60 s before the end the same 500 W add 33 W: under the limit.
        { at: 840, grid: -900, projected: 2950, peak: 3000, expect: { ev: "on surplus" } },
      ],
    );
  });

  it("keeps under the limit's floor when the month's peak is lower, and sheds the lowest priority first", () => {
    replay(
      [boiler, ev],
      [
        { at: 0, grid: -3500, projected: 0, peak: 1000, expect: { boiler: "on surplus", ev: "on surplus" } },
        // 2600 projected is over the 2500 floor though over this month's 1000 W peak too; shedding the EV (1400 W
        // of import for 600 s: −933 W) is enough.
        {
          at: 300,
          grid: 1500,
          projected: 2600,
          peak: 1000,
          expect: { boiler: "on off_delay 60", ev: "off peak_guard" },
        },
      ],
    );
    replay(
      [boiler, ev],
      [
        { at: 0, grid: -3500, projected: 0, peak: 3000, expect: { boiler: "on surplus", ev: "on surplus" } },
        // Under a month's peak of 3000 nothing is shed; the EV's own hysteresis tolerates 600 W of import.
        { at: 300, grid: 500, projected: 2600, peak: 3000, expect: { boiler: "on surplus", ev: "on surplus" } },
      ],
    );
  });

  it("leaves loads it may not touch, and loads running on surplus, alone", () => {
    const free = load("free", { powerW: 1000, peakGuard: false });
    replay(
      [boiler, free],
      [
        { at: 0, grid: -3500, projected: 0, peak: 3000, expect: { boiler: "on surplus", free: "on surplus" } },
        // Exporting 500 W, yet 3100 projected from earlier import: shedding would not lower the peak.
        { at: 600, grid: -500, projected: 3100, peak: 3000, expect: { boiler: "on surplus", free: "on surplus" } },
        // Importing: the guarded boiler goes, the other one stays whatever the projection.
        { at: 610, grid: 1800, projected: 3900, peak: 3000, expect: { boiler: "off peak_guard", free: "on surplus" } },
      ],
    );
  });
});

describe("fail-safe", () => {
  const three = [
    load("a", { powerW: 500, onSurplusW: 500, failSafe: "off", failSafeAfterMs: 30_000 }),
    load("b", { powerW: 500, onSurplusW: 500, failSafe: "hold", failSafeAfterMs: 60_000 }),
    load("c", { powerW: 500, onSurplusW: 500, failSafe: "on", failSafeAfterMs: 60_000 }),
  ];

  it("each load goes to its own fail-safe state when the data stop, and back to normal when they return", () => {
    replay(three, [
      { at: 0, grid: -2000, expect: { a: "on surplus", b: "on surplus", c: "on surplus" } },
      { at: 29, expect: { a: "on surplus", b: "on surplus", c: "on surplus" } },
      { at: 30, expect: { a: "off no_data", b: "on surplus", c: "on surplus" } },
      { at: 60, expect: { a: "off no_data", b: "on no_data", c: "on no_data" } },
      { at: 300, grid: 1000, expect: { a: "off no_surplus", b: "off no_surplus", c: "off no_surplus" } },
      { at: 330, expect: { a: "off no_data", b: "off no_surplus", c: "off no_surplus" } },
      { at: 360, expect: { a: "off no_data", b: "off no_data", c: "on no_data" } },
    ]);
  });

  it("applies to a meter that never sends anything, and spares loads in manual mode", () => {
    replay(three, [
      { at: 0, mode: { c: "off" }, expect: { c: "off manual" } },
      { at: 60, expect: { a: "off no_data", b: "off no_data", c: "off manual" } },
    ]);
  });
});

describe("manual mode", () => {
  it("switches at once, ignoring delays and minimum times; back in auto the delays apply again", () => {
    replay(
      [load("heater", { onDelayMs: 30_000, minOnMs: 300_000 })],
      [
        { at: 0, grid: -1500, expect: { heater: "off on_delay 30" } },
        { at: 30, grid: -1500, expect: { heater: "on surplus" } },
        { at: 40, grid: -500, mode: { heater: "off" }, expect: { heater: "off manual" } },
        { at: 50, grid: -1500, expect: { heater: "off manual" } },
        { at: 60, grid: 2000, mode: { heater: "on" }, expect: { heater: "on manual" } },
        { at: 70, grid: 500, mode: { heater: "auto" }, expect: { heater: "on min_on 290" } },
      ],
    );
  });
});

describe("time", () => {
  it("runs delays on the meter's clock, so a capture replayed ten times as fast decides the same", () => {
    // The wall clock moves 1 s per reading, the meter's 10 s: the 30 s delay is over at the fourth reading, and
    // 4 s of wall time is far from the 60 s fail-safe.
    replay(
      [load("heater", { onDelayMs: 30_000, failSafeAfterMs: 60_000 })],
      [
        { at: 0, meterAt: 0, grid: -1500, expect: { heater: "off on_delay 30" } },
        { at: 1, meterAt: 10, grid: -1500, expect: { heater: "off on_delay 20" } },
        { at: 2, meterAt: 20, grid: -1500, expect: { heater: "off on_delay 10" } },
        // A reading from the past (a meter clock set back) does not undo time already counted.
        { at: 3, meterAt: 5, grid: -1500, expect: { heater: "off on_delay 10" } },
        { at: 4, meterAt: 30, grid: -1500, expect: { heater: "on surplus" } },
      ],
    );
  });

  it("ignores readings without grid power: they neither decide nor keep the fail-safe away", () => {
    const clock = new ManualClock(T0);
    const advisor = new LoadAdvisor([load("heater", { failSafe: "on", failSafeAfterMs: 30_000 })], {}, { clock });
    advisor.start();
    advisor.onReading({ meterId: "home", time: T0, values: { power_net_w: 500 } });
    for (let s = 10; s <= 30; s += 10) {
      clock.advance(10_000);
      advisor.onReading({ meterId: "home", time: T0 + s * 1000, values: { price_per_kwh: 0.12 } });
    }
    expect(advisor.snapshots()).toMatchObject([{ id: "heater", on: true, reason: "no_data" }]);
    advisor.stop();
  });

  it("carries on from the previous run's state when told before the first reading, not after", () => {
    const clock = new ManualClock(T0);
    const heater = load("heater", { onDelayMs: 60_000, offDelayMs: 60_000 });
    const advisor = new LoadAdvisor([heater, load("other")], {}, { clock });
    expect(advisor.restore("heater", { on: true, since: T0 - 3_600_000, mode: "auto" })).toBe(true);
    advisor.onReading({ meterId: "home", time: T0, values: { power_net_w: -1500 } });
    // Without the restore this would be "off on_delay 60": a restart would have switched the heater off.
    expect(advisor.snapshots().find((s) => s.id === "heater")).toMatchObject({ on: true, reason: "surplus" });
    expect(advisor.restore("heater", { on: false, since: T0, mode: "off" })).toBe(false);
    expect(advisor.restore("nobody", { on: false, since: T0, mode: "off" })).toBe(false);
  });
});

describe("configuration", () => {
  const meters = [
    { id: "home", type: "dsmr", port: "/dev/ttyUSB0" },
    { id: "texas", type: "smt", folder: "/tmp/smt" },
  ];
  const issues = (input: Record<string, unknown>): string[] => {
    try {
      parseConfig({ meters, ...input });
      return [];
    } catch (err) {
      return (err as ConfigError).issues;
    }
  };

  it("fills in the defaults, on_surplus_w from power_w", () => {
    const cfg = parseConfig({ meters, loads: [{ id: "boiler", meter: "home", power_w: 2000 }] });
    expect(advisedLoad(cfg.loads[0]!)).toEqual({
      id: "boiler",
      meter: "home",
      powerW: 2000,
      priority: 1,
      onSurplusW: 2000,
      offImportW: 0,
      onDelayMs: 60_000,
      offDelayMs: 60_000,
      minOnMs: 0,
      minOffMs: 0,
      peakGuard: false,
      failSafe: "off",
      failSafeAfterMs: 60_000,
    });
    expect(cfg.peak_guard).toEqual([]);
  });

  it("names the key path of what is wrong", () => {
    expect(
      issues({
        loads: [
          { id: "boiler", meter: "home", power_w: 2000, fail_safe: "maybe" },
          { id: "boiler", meter: "garage", power_w: 0 },
          { id: "pool", meter: "texas", power_w: 900, command: { topic: "pool/#" } },
        ],
        peak_guard: [{ meter: "home" }, { meter: "home", limit_w: 3000 }],
      }),
    ).toEqual([
      'loads[0].fail_safe: Invalid option: expected one of "off"|"hold"|"on" (got "maybe")',
      "loads[1].power_w: Too small: expected number to be >0 (got 0)",
      'loads[2].command.topic: expected a topic without wildcards (got "pool/#")',
    ]);
    expect(
      issues({
        loads: [
          { id: "boiler", meter: "home", power_w: 2000 },
          { id: "boiler", meter: "garage", power_w: 100 },
          { id: "pool", meter: "texas", power_w: 900 },
        ],
        peak_guard: [{ meter: "home" }, { meter: "home", limit_w: 3000 }],
      }),
    ).toEqual([
      'loads[1].id: duplicate load id (got "boiler")',
      'loads[1].meter: expected the id of a live meter: home (got "garage")',
      'loads[2].meter: expected the id of a live meter: home (got "texas")',
      'peak_guard[1].meter: meter listed twice (got "home")',
    ]);
  });
});
