/**
 * A meter replaced by the grid operator. Every state the bridge publishes is fed to a model of Home Assistant's
 * recorder (test/helpers/ha-recorder.ts, its rules for state_class total and last_reset): the Energy dashboard's
 * sum must equal the true consumption of the old and the new meter, with neither a negative nor a spike.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPLACED_AT, type Replacement, ReplacementTracker } from "../src/derived/replacement.js";
import type { Reading } from "../src/model/types.js";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { buildTelegram, dsmrTime } from "../src/sources/dsmr/build.js";
import { type CliProcess, startBridge } from "./helpers/bridge.js";
import { type HaState, recorderSum } from "./helpers/ha-recorder.js";
import { recordingLog } from "./helpers/log.js";
import { type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

describe("the recorder model", () => {
  const at = (i: number) => Date.UTC(2026, 0, 1) + i * 60_000;
  it("nets out a dip and its recovery for total, books a fall as negative without last_reset, and a spike for total_increasing", () => {
    const dip = [100, 101, 90, 102].map((value, i) => ({ t: at(i), value, lastReset: null }));
    expect(recorderSum(dip, "total")).toBeCloseTo(2, 9);
    // The fall to 90 starts a new cycle that counts the 90 again: the spike users see with total_increasing.
    expect(recorderSum(dip, "total_increasing")).toBeCloseTo(1 + 90 + 12, 9);
    const swap = [30000, 30001, 0.2, 0.5].map((value, i) => ({ t: at(i * 7), value, lastReset: null }));
    expect(recorderSum(swap, "total")).toBeCloseTo(-29999.5, 6);
    const withReset = swap.map((s, i) => ({ ...s, lastReset: i >= 2 ? new Date(at(14)).toISOString() : null }));
    expect(recorderSum(withReset, "total")).toBeCloseTo(1 + 0.5, 6);
  });
});

describe("ReplacementTracker", () => {
  const reading = (t: number, kwh: number): Reading => ({
    meterId: "p1",
    time: Date.UTC(2026, 0, 1) + t * 10_000,
    values: { energy_import_kwh: kwh, power_import_w: 500 },
  });

  it("a new serial and fallen registers: replaced at once", () => {
    const events: Replacement[] = [];
    const tr = new ReplacementTracker({ log: recordingLog().log, onReplacement: (e) => void events.push(e) });
    tr.onMeterInfo({ meterId: "p1", serialNumber: "A" });
    expect(tr.transform(reading(0, 30000)).values[REPLACED_AT]).toBeUndefined();
    tr.onMeterInfo({ meterId: "p1", serialNumber: "B" });
    const r = tr.transform(reading(1, 0.2));
    expect(r.values.energy_import_kwh).toBe(0.2);
    expect(r.values[REPLACED_AT]).toBe(new Date(reading(1, 0).time).toISOString());
    expect(events).toEqual([
      expect.objectContaining({
        how: "identity",
        oldSerial: "A",
        newSerial: "B",
        before: { energy_import_kwh: 30000 },
      }),
    ]);
  });

  it("fallen registers without a new identity: held back until they stay down for 5 readings and 5 minutes", () => {
    const events: Replacement[] = [];
    const tr = new ReplacementTracker({ log: recordingLog().log, onReplacement: (e) => void events.push(e) });
    tr.transform(reading(0, 30000));
    const held = [1, 2, 3, 4].map((i) => tr.transform(reading(i, 0.1 + i / 1000)));
    for (const h of held) expect(h.values.energy_import_kwh).toBeUndefined();
    expect(tr.transform(reading(10, 0.2)).values.energy_import_kwh).toBeUndefined();
    const decided = tr.transform(reading(40, 0.3));
    expect(decided.values.energy_import_kwh).toBe(0.3);
    expect(decided.values[REPLACED_AT]).toBe(new Date(reading(1, 0).time).toISOString());
    expect(events).toHaveLength(1);
    expect(events[0]!.how).toBe("registers");
  });

  it("a glitch that comes back up is not a replacement", () => {
    const events: Replacement[] = [];
    const tr = new ReplacementTracker({ log: recordingLog().log, onReplacement: (e) => void events.push(e) });
    tr.transform(reading(0, 30000));
    expect(tr.transform(reading(1, 3)).values.energy_import_kwh).toBeUndefined();
    expect(tr.transform(reading(2, 30000.1)).values.energy_import_kwh).toBe(30000.1);
    expect(tr.transform(reading(60, 30000.2)).values[REPLACED_AT]).toBeUndefined();
    expect(events).toEqual([]);
  });
});

describe("a meter replaced on a live line, end to end", () => {
  let dir: string;
  let broker: Mosquitto;
  let pty: PtyPair;
  let sub: Collector;
  let bridge: CliProcess;
  // The old meter's last reading in one hour, the new meter's first in the next.
  const t0 = Date.UTC(2026, 4, 4, 7, 50, 5);
  const telegram = (i: number, id: string, t1: number, t2: number): Buffer =>
    buildTelegram({
      header: "ISK5\\2M550T-1012",
      lines: [
        "1-3:0.2.8(50)",
        `0-0:1.0.0(${dsmrTime(t0 + i * 10_000)})`,
        `0-0:96.1.1(${Buffer.from(id).toString("hex").toUpperCase()})`,
        `1-0:1.8.1(${t1.toFixed(3).padStart(10, "0")}*kWh)`,
        `1-0:1.8.2(${t2.toFixed(3).padStart(10, "0")}*kWh)`,
        "1-0:2.8.1(000000.000*kWh)",
        "1-0:2.8.2(000000.000*kWh)",
        "1-0:1.7.0(01.200*kW)",
        "1-0:2.7.0(00.000*kW)",
      ],
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-replace-"));
    broker = await startMosquitto();
    pty = await startPtyPair(dir);
    sub = await collect(broker.url, [
      "meter2mqtt/p1/state",
      "homeassistant/sensor/meter2mqtt_p1/energy_import_kwh/config",
    ]);
    bridge = startBridge(dir, [
      "mqtt:",
      `  url: ${broker.url}`,
      "archive:",
      `  path: ${join(dir, "archive.sqlite")}`,
      "  interval: 0",
      "meters:",
      `  - {id: p1, type: dsmr, port: ${pty.device}, baud: 115200}`,
    ]);
    await until(() => /\bopen\b/.test(bridge.output()), 30_000, "the port open");
  }, 60_000);

  afterAll(async () => {
    bridge?.kill();
    await sub?.close();
    await pty?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("HA books exactly what both meters measured, and the archive keeps the replacement", async () => {
    // The old meter (serial E0001), then the new one (E0002) whose registers start near 0. Meter time runs 10 s a
    // telegram; the line runs faster, so the energy flood control (10 s) holds values back meanwhile.
    let t1 = 15234.5;
    let t2 = 9876.25;
    let firstOld = Number.NaN;
    for (let i = 0; i < 60; i++) {
      t1 += 0.004;
      t2 += 0.003;
      if (i === 0) firstOld = t1 + t2;
      await pty.write(telegram(i, "E0001", t1, t2));
      await new Promise((r) => setTimeout(r, 120));
    }
    const lastOld = t1 + t2;
    let n1 = 0.1;
    let n2 = 0.05;
    for (let i = 60; i < 140; i++) {
      n1 += 0.004;
      n2 += 0.002;
      await pty.write(telegram(i, "E0002", n1, n2));
      await new Promise((r) => setTimeout(r, 120));
    }
    const lastNew = n1 + n2;
    // The flood control sends the newest values at the latest after its interval.
    await until(
      () =>
        sub.messages.some(
          (m) =>
            m.topic === "meter2mqtt/p1/state" &&
            Math.abs((JSON.parse(m.payload) as { energy_import_kwh: number }).energy_import_kwh - lastNew) < 1e-6,
        ),
      30_000,
      "the new meter's last register published",
    );
    // HA writes a state when the message arrives: arrival order, a second apart.
    const states: HaState[] = sub.messages
      .filter((m) => m.topic === "meter2mqtt/p1/state")
      .map((m) => JSON.parse(m.payload) as Record<string, unknown>)
      .filter((s) => typeof s.energy_import_kwh === "number")
      .map((s, i) => ({
        t: t0 + i * 1000,
        value: s.energy_import_kwh as number,
        lastReset: typeof s[REPLACED_AT] === "string" ? (s[REPLACED_AT] as string) : null,
      }));
    // True consumption: what the old meter counted while read, and the new one from its installation (from 0).
    const truth = lastOld - firstOld + lastNew;
    expect(recorderSum(states, "total")).toBeCloseTo(truth, 6);
    // Without last_reset, HA would have booked the swap as a huge negative.
    expect(
      recorderSum(
        states.map((s) => ({ ...s, lastReset: null })),
        "total",
      ),
    ).toBeLessThan(-20000);

    const config = JSON.parse(
      (await sub.waitFor((m) => m.topic.endsWith("energy_import_kwh/config"), 5000)).payload,
    ) as Record<string, unknown>;
    expect(config.state_class).toBe("total");
    expect(config.last_reset_value_template).toBe(`{{ value_json.${REPLACED_AT} | default('') }}`);

    const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
    try {
      const rows = db.prepare("SELECT * FROM meter_replacements").all() as Record<string, string>[];
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ meter_id: "p1", how: "identity", old_serial: "E0001", new_serial: "E0002" });
      expect(rows[0]?.time).toBe(new Date(t0 + 60 * 10_000).toISOString());
      expect(JSON.parse(String(rows[0]?.before_json)).energy_import_kwh).toBeCloseTo(lastOld, 6);
      // The archive's hours join the old and the new meter the same way: their sum is the true consumption.
      const hours = db
        .prepare("SELECT hour, import_kwh FROM energy_hourly WHERE meter_id = 'p1' ORDER BY hour")
        .all() as { hour: string; import_kwh: number | null }[];
      expect(hours.map((h) => h.hour)).toEqual(["2026-05-04T07:00:00Z", "2026-05-04T08:00:00Z"]);
      expect(hours[1]?.import_kwh).toBeCloseTo(lastNew, 6);
      expect(hours.reduce((a, h) => a + (h.import_kwh ?? Number.NaN), 0)).toBeCloseTo(truth, 6);
    } finally {
      db.close();
    }
    expect(bridge.output()).toMatch(/meter p1 was replaced \(serial E0001 → E0002\)/);
  }, 120_000);
});
