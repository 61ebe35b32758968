/**
 * End to end with real parts: the bridge runs as its own process (`meter2mqtt run`), talks to an EMU-2 emulator
 * at the far end of a socat pseudo-terminal pair (commands one way, replies and unsolicited pushes the other),
 * publishes to a real mosquitto and archives to a real SQLite file. The emulator once sends garbage and once
 * disappears like an unplugged stick; SIGTERM ends it all.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { type CliProcess, startBridge } from "./helpers/bridge.js";
import { EMU2_FIRMWARE, EMU2_IDS, Emu2 } from "./helpers/emu2.js";
import { type Collected, type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const STATE = "meter2mqtt/emu/state";
type State = Record<string, number | string>;

describe("EMU-2 over a pseudo-terminal to mosquitto and SQLite", () => {
  let dir: string;
  let broker: Mosquitto;
  let pty: PtyPair;
  let emu: Emu2;
  let sub: Collector;
  let bridge: CliProcess;
  const log = (): string => bridge.output();

  const states = (): State[] => sub.messages.filter((m) => m.topic === STATE).map((m) => JSON.parse(m.payload));
  /** The first state (already received or arriving within the timeout) that has all of `want`. */
  async function stateWith(want: State, timeoutMs = 15_000): Promise<State> {
    const match = (m: Collected): boolean => {
      if (m.topic !== STATE) return false;
      const s = JSON.parse(m.payload) as State;
      return Object.entries(want).every(([k, v]) => s[k] === v);
    };
    return JSON.parse((await sub.waitFor(match, timeoutMs)).payload);
  }
  /**
   * The same, then two more demand polls answered: the archive keys readings by the device's time, in whole
   * seconds, and keeps the first of each second, so a reading from a later second, which carries the whole
   * snapshot, is sure to be archived with these values. (MQTT sends no new state when nothing changed.)
   */
  async function settledState(want: State, timeoutMs = 15_000): Promise<State> {
    const state = await stateWith(want, timeoutMs);
    await emu.waitForCommand("get_instantaneous_demand", emu.count("get_instantaneous_demand") + 2, timeoutMs);
    return state;
  }
  const discovery = async (q: string): Promise<Record<string, unknown>> =>
    JSON.parse(
      (await sub.waitFor((m) => m.topic === `homeassistant/sensor/meter2mqtt_emu/${q}/config`, 10_000)).payload,
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-raven-e2e-"));
    broker = await startMosquitto();
    pty = await startPtyPair(dir);
    emu = new Emu2(pty);
    await emu.open();
    sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#"]);
    bridge = startBridge(dir, [
      "mqtt:",
      `  url: ${broker.url}`,
      "  min_interval: {energy: 0, power: 0, demand: 0}",
      "archive:",
      `  path: ${join(dir, "archive.sqlite")}`,
      "  interval: 0",
      "meters:",
      `  - {id: emu, name: EMU-2, type: raven, port: ${pty.device}, demand_interval: 2, summation_interval: 3,` +
        " price_interval: 5, command_timeout: 2, timeout: 15}",
      "",
    ]);
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 20_000);
  }, 60_000);

  afterAll(async () => {
    if (process.env.E2E_LOG) console.log(log());
    bridge?.kill();
    await sub?.close();
    await emu?.close();
    await pty?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finds the meter, reads the device, polls, and publishes discovery and state", async () => {
    // Generous: the bridge process compiles its TypeScript on start, which takes a while on a busy machine.
    await emu.waitForCommand("get_meter_list", 1, 30_000);
    await emu.waitForCommand("get_device_info");
    await emu.waitForCommand("get_current_price");
    // The commands that address a meter name the one the device listed.
    const perMeter = emu.commands.filter((c) => /demand|summation|price/.test(c.name));
    expect(perMeter.length).toBeGreaterThan(0);
    for (const c of perMeter) expect(c.meterMac).toBe(EMU2_IDS.meterMac);

    const s = emu.state;
    const state = await settledState({ power_net_w: s.watts, energy_import_kwh: s.importKwh, price_per_kwh: s.price });
    expect(state).toMatchObject({
      power_import_w: s.watts,
      power_export_w: 0,
      energy_export_kwh: s.exportKwh,
      currency: "USD",
      firmware: EMU2_FIRMWARE,
      link_strength_pct: 100,
      connection_status: "Connected",
      frames_rejected: 0,
    });
    expect(state.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    if (process.env.E2E_LOG) console.log(JSON.stringify(state, null, 2));

    const device = {
      identifiers: ["meter2mqtt_emu"],
      name: "EMU-2",
      manufacturer: "Rainforest Automation, Inc.",
      model: "Z105-2-EMU2-LEDD_JM",
      serial_number: EMU2_IDS.deviceMac,
      sw_version: EMU2_FIRMWARE,
    };
    // Discovery goes out again once DeviceInfo fills in the device: wait for the complete one.
    const complete = (q: string) =>
      sub.waitFor(
        (m) =>
          m.topic === `homeassistant/sensor/meter2mqtt_emu/${q}/config` &&
          (JSON.parse(m.payload) as { device: { sw_version?: string } }).device.sw_version === EMU2_FIRMWARE,
        10_000,
      );
    expect(JSON.parse((await complete("energy_import_kwh")).payload)).toMatchObject({
      unique_id: "meter2mqtt_emu_energy_import_kwh",
      device_class: "energy",
      state_class: "total",
      unit_of_measurement: "kWh",
      state_topic: STATE,
      device,
    });
    expect(await discovery("energy_export_kwh")).toMatchObject({ device_class: "energy", unit_of_measurement: "kWh" });
    expect(await discovery("power_net_w")).toMatchObject({
      device_class: "power",
      state_class: "measurement",
      unit_of_measurement: "W",
    });
    expect(await discovery("power_export_w")).toMatchObject({ device_class: "power", unit_of_measurement: "W" });
    const price = await sub.waitFor(
      (m) =>
        m.topic === "homeassistant/sensor/meter2mqtt_emu/price_per_kwh/config" &&
        (JSON.parse(m.payload) as { unit_of_measurement?: string }).unit_of_measurement === "USD/kWh",
      10_000,
    );
    expect(JSON.parse(price.payload)).toMatchObject({ state_class: "measurement" });
    expect(await discovery("link_strength_pct")).toMatchObject({
      entity_category: "diagnostic",
      unit_of_measurement: "%",
    });
    expect(await discovery("connection_status")).toMatchObject({ entity_category: "diagnostic" });
    expect(await discovery("firmware")).toMatchObject({ entity_category: "diagnostic" });
    // One device per meter: every entity of this meter names the same one.
    const ids = new Set(
      sub.messages
        .filter((m) => m.topic.startsWith("homeassistant/sensor/meter2mqtt_emu/"))
        .map((m) =>
          JSON.stringify((JSON.parse(m.payload) as { device: { identifiers: string[] } }).device.identifiers),
        ),
    );
    expect([...ids]).toEqual(['["meter2mqtt_emu"]']);
    await sub.waitFor((m) => m.topic === "meter2mqtt/emu/availability" && m.payload === "online", 5000);
  }, 60_000);

  it("takes what the device pushes between replies", async () => {
    emu.state.watts = -850;
    await emu.push("demand");
    expect(await settledState({ power_net_w: -850 })).toMatchObject({ power_import_w: 0, power_export_w: 850 });
    emu.state.linkStrength = 42;
    await emu.push("connection");
    await stateWith({ link_strength_pct: 42 });
  });

  it("counts garbage once and reads on", async () => {
    await emu.garbage();
    emu.state.importKwh = 35395.9;
    await emu.push("summation");
    const after = await settledState({ energy_import_kwh: 35395.9 });
    await until(() => states().some((s) => Number(s.frames_rejected) >= 1), 15_000, "frames_rejected ≥ 1 in the state");
    expect(after.power_net_w).toBe(-850);
    expect(log()).toMatch(/fragment rejected: /);
  });

  it("recovers by itself when the device disappears and comes back, starting the session over", async () => {
    const lists = emu.count("get_meter_list");
    await emu.disappear();
    await sub.waitFor((m) => m.topic === "meter2mqtt/emu/availability" && m.payload === "offline", 10_000);
    // Unplugged for a while (not a wait for anything): the bridge keeps retrying meanwhile.
    await new Promise((r) => setTimeout(r, 2000));
    emu.state.watts = 2100;
    emu.state.importKwh = 35396.25;
    await emu.reappear();
    await emu.waitForCommand("get_meter_list", lists + 1, 40_000);
    await settledState({ power_net_w: 2100, energy_import_kwh: 35396.25 }, 20_000);
    await sub.waitFor(
      (m) => m.topic === "meter2mqtt/emu/availability" && m.payload === "online" && sub.messages.indexOf(m) > 0,
      10_000,
    );
    expect(log().match(/ lost: /g)).toHaveLength(1);
    expect(log()).toMatch(/back after/);
  }, 60_000);

  it("SIGTERM publishes offline, and the archive holds the readings and the device", async () => {
    sub.clear();
    bridge.child.kill("SIGTERM");
    expect(await bridge.exit).toBe(0);
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "offline", 5000);
    expect(log()).not.toMatch(/0x0000000000000000000000000000000/);

    const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
    try {
      const rows = db
        .prepare(
          "SELECT time, power_net_w, power_import_w, power_export_w, energy_import_kwh, energy_export_kwh, price_per_kwh, energy_import_estimated_kwh AS est FROM readings WHERE meter_id = 'emu' ORDER BY time",
        )
        .all() as Record<string, number | string | null>[];
      expect(rows.length).toBeGreaterThan(3);
      const imports = new Set(rows.map((r) => r.energy_import_kwh));
      for (const kwh of [35395.554, 35395.9, 35396.25]) expect(imports).toContain(kwh);
      expect(rows.map((r) => r.power_net_w)).toEqual(expect.arrayContaining([1234, -850, 2100]));
      expect(rows.find((r) => r.power_net_w === -850)).toMatchObject({ power_import_w: 0, power_export_w: 850 });
      expect(rows.every((r) => r.est === null)).toBe(true);
      expect(rows.some((r) => r.price_per_kwh === 0.1375)).toBe(true);
      const meter = db.prepare("SELECT * FROM meters WHERE id = 'emu'").get();
      expect(meter).toMatchObject({
        type: "raven",
        name: "EMU-2",
        manufacturer: "Rainforest Automation, Inc.",
        model: "Z105-2-EMU2-LEDD_JM",
        serial_number: EMU2_IDS.deviceMac,
        sw_version: EMU2_FIRMWARE,
      });
    } finally {
      db.close();
    }
  });
});
