import { describe, expect, it } from "vitest";
import { MeterState } from "../src/outputs/mqtt/state.js";

const intervals = { energy: 10, power: 5, voltage: 30 };

describe("MeterState", () => {
  it("sends everything new at once, then only what changed and is past its kind's interval", () => {
    const s = new MeterState(intervals);
    s.update({ power_import_w: 500, energy_import_kwh: 1.5, gas_m3: 3 });
    expect(s.due(0).sort()).toEqual(["energy_import_kwh", "gas_m3", "power_import_w"]);
    expect(s.take(s.due(0), 0)).toEqual({ power_import_w: 500, energy_import_kwh: 1.5, gas_m3: 3 });

    s.update({ power_import_w: 600, energy_import_kwh: 1.5, gas_m3: 3.1 });
    // gas has no interval: due at once; power waits 5 s; energy did not change.
    expect(s.due(1000)).toEqual(["gas_m3"]);
    expect(s.take(["gas_m3"], 1000)).toEqual({ power_import_w: 500, energy_import_kwh: 1.5, gas_m3: 3.1 });
    expect(s.nextDue()).toBe(5000);
    expect(s.due(4999)).toEqual([]);
    expect(s.due(5000)).toEqual(["power_import_w"]);
  });

  it("never reports an unchanged value as due, however long ago it was sent", () => {
    const s = new MeterState(intervals);
    s.update({ voltage_l1_v: 230.1 });
    s.take(s.due(0), 0);
    s.update({ voltage_l1_v: 230.1 });
    expect(s.due(1e9)).toEqual([]);
    expect(s.pending()).toEqual([]);
    expect(s.nextDue()).toBeUndefined();
  });

  it("treats quantities outside the catalogue and unlisted kinds as interval 0", () => {
    const s = new MeterState(intervals);
    s.update({ vendor_specific: 1, power_failures: 4 });
    s.take(s.due(0), 0);
    s.update({ vendor_specific: 2, power_failures: 5 });
    expect(s.due(1).sort()).toEqual(["power_failures", "vendor_specific"]);
  });

  it("takeAll brings every quantity to its newest value", () => {
    const s = new MeterState(intervals);
    s.update({ power_import_w: 1 });
    s.take(s.due(0), 0);
    s.update({ power_import_w: 2, energy_import_kwh: 7 });
    expect(s.takeAll(100)).toEqual({ power_import_w: 2, energy_import_kwh: 7 });
    expect(s.pending()).toEqual([]);
  });

  it("lets single quantities override their kind's interval", () => {
    const s = new MeterState(intervals, { frames_received: 60 });
    s.update({ frames_received: 1, power_failures: 1 });
    s.take(s.due(0), 0);
    s.update({ frames_received: 2, power_failures: 2 });
    expect(s.due(1000)).toEqual(["power_failures"]);
    expect(s.due(60_000).sort()).toEqual(["frames_received", "power_failures"]);
  });
});
