/**
 * End to end with real parts: the bridge runs as its own process (as `meter2mqtt run` does), reads a
 * socat pseudo-terminal standing in for the P1 cable, publishes to a real mosquitto and archives to a
 * real SQLite file. The device vanishes and comes back, the broker restarts mid-stream, and SIGTERM
 * ends it all: every telegram written while the port was open must be in the archive.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { decodeTelegram } from "../src/sources/dsmr/decode.js";
import { type CliProcess, startBridge } from "./helpers/bridge.js";
import { type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const states = simulate(Date.UTC(2026, 10, 21, 8, 0, 0), 60, 10);
const telegrams = states.map((s) => dsmr5Telegram(s));
const iso = (ms: number): string => new Date(ms).toISOString();

describe("DSMR over a pseudo-terminal to mosquitto and SQLite", () => {
  let dir: string;
  let broker: Mosquitto;
  let pty: PtyPair;
  let sub: Collector;
  let bridge: CliProcess;
  const log = (): string => bridge.output();
  const written: number[] = [];

  async function send(i: number): Promise<void> {
    await pty.write(telegrams[i]!);
    written.push(states[i]!.time);
  }
  const stateAt = (time: number) => (m: { topic: string; payload: string }) =>
    m.topic === "meter2mqtt/p1/state" && (JSON.parse(m.payload) as { time?: string }).time === iso(time);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-e2e-"));
    broker = await startMosquitto();
    pty = await startPtyPair(dir);
    sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#"]);
    bridge = startBridge(dir, [
      "mqtt:",
      `  url: ${broker.url}`,
      "  min_interval: {energy: 0, power: 0, demand: 0, voltage: 0, current: 0}",
      "archive:",
      `  path: ${join(dir, "archive.sqlite")}`,
      "  interval: 0",
      "meters:",
      `  - {id: p1, name: Meter cupboard, type: dsmr, port: ${pty.device}, baud: 115200, timeout: 20}`,
      "",
    ]);
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 20_000);
    await until(() => /\bopen\b/.test(log()), 10_000, "the port to be opened");
  }, 60_000);

  afterAll(async () => {
    if (process.env.E2E_LOG) console.log(log());
    bridge?.kill();
    await sub?.close();
    await pty?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes discovery that HA's Energy dashboard accepts, and the JSON state", async () => {
    for (let i = 0; i < 5; i++) await send(i);
    const last = await sub.waitFor(stateAt(states[4]!.time), 10_000);
    const decoded = decodeTelegram(telegrams[4]!);
    if (!decoded.ok) throw new Error(decoded.reason);
    const state = JSON.parse(last.payload) as Record<string, unknown>;
    expect(state).toMatchObject(decoded.telegram.values);
    expect(last.retain).toBe(true);

    const config = async (q: string) =>
      JSON.parse(
        (await sub.waitFor((m) => m.topic === `homeassistant/sensor/meter2mqtt_p1/${q}/config`, 5000)).payload,
      );
    expect(await config("energy_import_kwh")).toMatchObject({
      unique_id: "meter2mqtt_p1_energy_import_kwh",
      device_class: "energy",
      state_class: "total",
      unit_of_measurement: "kWh",
      state_topic: "meter2mqtt/p1/state",
      availability_mode: "all",
      device: { identifiers: ["meter2mqtt_p1"], name: "Meter cupboard", manufacturer: "Iskra", model: "M550T-1012" },
      origin: { name: "meter2mqtt" },
    });
    expect(await config("gas_m3")).toMatchObject({
      device_class: "gas",
      unit_of_measurement: "m³",
      state_class: "total",
    });
    expect(await config("power_import_w")).toMatchObject({
      device_class: "power",
      unit_of_measurement: "W",
      state_class: "measurement",
    });
    expect(await config("voltage_l1_v")).toMatchObject({ device_class: "voltage", unit_of_measurement: "V" });
    expect(await config("current_l2_a")).toMatchObject({ device_class: "current", unit_of_measurement: "A" });
    expect(await config("frames_rejected")).toMatchObject({ entity_category: "diagnostic" });
  });

  it("counts a corrupted telegram and keeps going", async () => {
    const bad = Buffer.from(telegrams[5]!);
    bad[300] = bad[300] === 0x30 ? 0x31 : 0x30;
    await pty.write(bad);
    await send(6);
    const after = await sub.waitFor(stateAt(states[6]!.time), 10_000);
    await until(
      () =>
        sub.messages.some(
          (m) =>
            m.topic === "meter2mqtt/p1/state" &&
            (JSON.parse(m.payload) as { frames_rejected?: number }).frames_rejected === 1,
        ),
      15_000,
      "frames_rejected = 1 in the state",
    );
    const six = decodeTelegram(telegrams[6]!);
    expect(six.ok && JSON.parse(after.payload).energy_import_kwh).toBe(six.ok && six.telegram.values.energy_import_kwh);
    expect(log()).toMatch(/telegram rejected: CRC mismatch/);
  });

  it("recovers by itself when the USB device vanishes and comes back, logging it once", async () => {
    await pty.vanish();
    await sub.waitFor((m) => m.topic === "meter2mqtt/p1/availability" && m.payload === "offline", 10_000);
    await new Promise((r) => setTimeout(r, 2500));
    await pty.reappear();
    // The bridge retries with backoff; repeat one telegram until it is read (the archive keys readings by
    // the meter's time, so a repeat is stored once).
    written.push(states[7]!.time);
    const deadline = Date.now() + 30_000;
    while (!sub.messages.some(stateAt(states[7]!.time))) {
      if (Date.now() > deadline) throw new Error(`the bridge did not reopen the device:\n${log()}`);
      await pty.write(telegrams[7]!);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(log()).toMatch(/back after/);
    expect(log().match(/ lost: /g)).toHaveLength(1);
    for (let i = 8; i < 12; i++) await send(i);
    await sub.waitFor(stateAt(states[11]!.time), 10_000);
    await sub.waitFor((m) => m.topic === "meter2mqtt/p1/availability" && m.payload === "online", 5000);
  }, 40_000);

  it("reconnects after the broker restarts mid-stream and loses nothing from the archive", async () => {
    await broker.stop();
    for (let i = 12; i < 20; i++) {
      await send(i);
      await new Promise((r) => setTimeout(r, 50));
    }
    await broker.restart();
    for (let i = 20; i < 25; i++) await send(i);
    await sub.waitFor(stateAt(states[24]!.time), 20_000);
    // After the reconnect the bridge announces itself again.
    await sub.waitFor(
      (m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online" && sub.messages.indexOf(m) > 0,
      5000,
    );
  }, 40_000);

  it("SIGTERM publishes offline, flushes the archive and exits 0", async () => {
    for (let i = 25; i < 30; i++) await send(i);
    await sub.waitFor(stateAt(states[29]!.time), 10_000);
    sub.clear();
    bridge.child.kill("SIGTERM");
    expect(await bridge.exit).toBe(0);
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "offline", 5000);

    const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
    const rows = db
      .prepare("SELECT time, energy_import_kwh, gas_m3 FROM readings WHERE meter_id = 'p1' ORDER BY time")
      .all() as {
      time: string;
      energy_import_kwh: number;
      gas_m3: number;
    }[];
    db.close();
    expect(rows.map((r) => r.time)).toEqual(written.map(iso));
    const byTime = new Map(
      telegrams.map((t) => {
        const r = decodeTelegram(t);
        if (!r.ok) throw new Error(r.reason);
        return [iso(r.telegram.time!), r.telegram.values] as const;
      }),
    );
    for (const r of rows) {
      const v = byTime.get(r.time)!;
      expect(r.energy_import_kwh).toBe(v.energy_import_kwh);
      expect(r.gas_m3).toBe(v.gas_m3);
    }
  });
});
