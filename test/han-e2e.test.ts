/**
 * End to end with real parts: the bridge runs as its own process, reads a socat pseudo-terminal standing in for an
 * M-Bus-to-USB adapter on a HAN port at 2400 8E1, and gets encrypted, segmented HDLC frames of our own making
 * (src/sources/han/build.ts); it publishes to a real mosquitto and archives to a real SQLite file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { aidonFrames, type HanState, simulateHan } from "../src/sources/han/build.js";
import { HanStream } from "../src/sources/han/stream.js";
import { type CliProcess, startBridge } from "./helpers/bridge.js";
import { type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const KEY = "5a5b5c5d5e5f60616263646566676869";
const AAD = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf";
const glo = (counter: number) => ({ key: Buffer.from(KEY, "hex"), aad: Buffer.from(AAD, "hex"), counter });
// The bridge believes a meter's clock within a day of its own: the meter's time is just now.
const states = simulateHan(Math.floor(Date.now() / 1000) * 1000 - 400_000, 20, 10);
const frames = states.map((s, i) => aidonFrames(s, { maxInfo: 120, glo: glo(1000 + i) }));
const iso = (ms: number): string => new Date(ms).toISOString();

/** What the decoder makes of a state's frames (the values the bridge must publish and archive). */
function decoded(i: number): Record<string, number> {
  const s = new HanStream({ key: Buffer.from(KEY, "hex"), aad: Buffer.from(AAD, "hex") });
  const [item] = [...s.push(frames[i]!), ...s.end()];
  if (!item?.ok) throw new Error("own frame did not decode");
  return item.telegram.values;
}

describe("HAN over a pseudo-terminal at 2400 8E1 to mosquitto and SQLite", () => {
  let dir: string;
  let broker: Mosquitto;
  let pty: PtyPair;
  let sub: Collector;
  let bridge: CliProcess;
  const log = (): string => bridge.output();
  const written: HanState[] = [];

  async function send(i: number): Promise<void> {
    await pty.write(frames[i]!);
    written.push(states[i]!);
  }
  const stateAt = (time: number) => (m: { topic: string; payload: string }) =>
    m.topic === "meter2mqtt/han/state" && (JSON.parse(m.payload) as { time?: string }).time === iso(time);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-han-e2e-"));
    broker = await startMosquitto();
    pty = await startPtyPair(dir);
    sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#"]);
    bridge = startBridge(dir, [
      "mqtt:",
      `  url: ${broker.url}`,
      "  min_interval: {energy: 0, power: 0, demand: 0, voltage: 0, current: 0, reactive_power: 0}",
      "archive:",
      `  path: ${join(dir, "archive.sqlite")}`,
      "  interval: 0",
      "meters:",
      `  - {id: han, name: Sikringsskap, type: han, port: ${pty.device}, baud: 2400, timezone: Europe/Oslo, key: ${KEY}, aad: ${AAD}}`,
      "",
    ]);
    // A busy machine (other suites starting their own bridges) can take a while to start this one.
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 60_000);
    await until(() => /2400 8E1/.test(log()), 20_000, "the port to be opened at 2400 8E1");
  }, 100_000);

  afterAll(async () => {
    if (process.env.E2E_LOG) console.log(log());
    bridge?.kill();
    await sub?.close();
    await pty?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes the meter's values at its own time, and discovery with its identity", async () => {
    for (let i = 0; i < 5; i++) await send(i);
    const last = await sub.waitFor(stateAt(states[4]!.time), 15_000);
    const state = JSON.parse(last.payload) as Record<string, unknown>;
    expect(state).toMatchObject(decoded(4));
    expect(state.energy_import_kwh).toBeCloseTo(Math.round(states[4]!.importKwh * 1000) / 1000, 9);
    expect(last.retain).toBe(true);

    const config = async (q: string) =>
      JSON.parse(
        (await sub.waitFor((m) => m.topic === `homeassistant/sensor/meter2mqtt_han/${q}/config`, 5000)).payload,
      );
    expect(await config("energy_import_kwh")).toMatchObject({
      unique_id: "meter2mqtt_han_energy_import_kwh",
      device_class: "energy",
      state_class: "total",
      unit_of_measurement: "kWh",
      device: { identifiers: ["meter2mqtt_han"], name: "Sikringsskap", manufacturer: "Aidon", model: "6534" },
    });
    expect(await config("voltage_l2_v")).toMatchObject({ device_class: "voltage", unit_of_measurement: "V" });
    expect(await config("reactive_power_import_var")).toMatchObject({ unit_of_measurement: "var" });
    expect(log()).toMatch(/meter found: Aidon 6534, list AIDON_V0001, encrypted, key accepted/);
  }, 30_000);

  it("counts a damaged frame, logs why, and keeps going", async () => {
    const bad = Buffer.from(frames[5]!);
    bad[40]! ^= 0x10;
    await pty.write(bad);
    await send(6);
    await sub.waitFor(stateAt(states[6]!.time), 10_000);
    await until(
      () =>
        sub.messages.some(
          (m) =>
            m.topic === "meter2mqtt/han/state" &&
            ((JSON.parse(m.payload) as { frames_rejected?: number }).frames_rejected ?? 0) >= 1,
        ),
      15_000,
      "frames_rejected in the state",
    );
    expect(log()).toMatch(/frame rejected: HDLC frame check \(CRC\) failed/);
  }, 30_000);

  it("SIGTERM flushes the archive: every frame sent is a row at the meter's time; the key is in no log", async () => {
    for (let i = 7; i < 12; i++) await send(i);
    await sub.waitFor(stateAt(states[11]!.time), 10_000);
    bridge.child.kill("SIGTERM");
    expect(await bridge.exit).toBe(0);
    const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
    const rows = db
      .prepare(
        "SELECT time, energy_import_kwh, reactive_energy_import_kvarh, power_import_w FROM readings WHERE meter_id = 'han' ORDER BY time",
      )
      .all() as {
      time: string;
      energy_import_kwh: number;
      reactive_energy_import_kvarh: number;
      power_import_w: number;
    }[];
    db.close();
    expect(rows.map((r) => r.time)).toEqual(written.map((s) => iso(s.time)));
    for (const r of rows) {
      const i = states.findIndex((s) => iso(s.time) === r.time);
      const v = decoded(i);
      expect(r.energy_import_kwh).toBe(v.energy_import_kwh);
      expect(r.reactive_energy_import_kvarh).toBe(v.reactive_energy_import_kvarh);
      expect(r.power_import_w).toBe(v.power_import_w);
    }
    expect(log()).not.toContain(KEY);
    expect(log()).not.toContain(AAD);
  }, 30_000);
});
