/**
 * The MQTT output against a real mosquitto. Each test has its own base topic and discovery prefix, so
 * retained messages of one test never show up in another.
 */
import { connectAsync } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type MqttConfig, MqttSchema } from "../src/config/schema.js";
import { QUANTITIES } from "../src/model/quantities.js";
import { type MeterDescription, MqttOutput, SUPPORT_URL } from "../src/outputs/mqtt/index.js";
import { ManualClock } from "../src/util/clock.js";
import type { Logger } from "../src/util/log.js";
import {
  type Collected,
  type Collector,
  collect,
  freePort,
  type Mosquitto,
  startMosquitto,
  startRelay,
  until,
} from "./helpers/mosquitto.js";

interface MemoryLog extends Logger {
  lines: string[];
}
function memoryLog(): MemoryLog {
  const lines: string[] = [];
  const make = (ns: string): Logger => {
    const add = (level: string) => (m: string | (() => string)) => {
      lines.push(`${level} [${ns}] ${typeof m === "function" ? m() : m}`);
    };
    return { debug: add("debug"), info: add("info"), warn: add("warn"), error: add("error"), child: (s) => make(s) };
  };
  return Object.assign(make("mqtt"), { lines });
}

const HOME: MeterDescription = { id: "home", name: "Home", type: "dsmr" };
const T0 = Date.UTC(2024, 0, 15, 10, 0, 0);

let broker: Mosquitto;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.stop();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(name: string, extra: Record<string, unknown> = {}): MqttConfig {
  return MqttSchema.parse({ url: broker.url, base_topic: `t_${name}`, discovery_prefix: `ha_${name}`, ...extra });
}
async function output(cfg: MqttConfig, opts: ConstructorParameters<typeof MqttOutput>[2] = {}): Promise<MqttOutput> {
  const out = new MqttOutput(cfg, [HOME], { version: "1.2.3", log: memoryLog(), ...opts });
  cleanups.push(() => out.stop());
  await out.start();
  return out;
}
async function watch(url: string, filters: string[]): Promise<Collector> {
  const c = await collect(url, filters);
  cleanups.push(() => c.close());
  return c;
}
const json = (m: Collected): unknown => JSON.parse(m.payload);
const on = (topic: string) => (m: Collected) => m.topic === topic;

describe("MqttOutput against mosquitto", () => {
  it("announces energy, power, gas and diagnostic entities and publishes the state JSON", async () => {
    const cfg = config("disc");
    const log = memoryLog();
    const watcher = await watch(broker.url, ["ha_disc/#", "t_disc/#"]);
    const out = await output(cfg, { log });
    expect((await watcher.waitFor(on("t_disc/bridge/state"))).payload).toBe("online");

    out.onMeterInfo({ meterId: "home", manufacturer: "Kaifa", model: "MA105", serialNumber: "E0026000024153615" });
    out.onStatus({ meterId: "home", online: true, framesReceived: 41, framesRejected: 2 });
    const reading = {
      meterId: "home",
      time: T0,
      values: {
        energy_import_kwh: 1234.567,
        power_import_w: 512,
        gas_m3: 987.654,
        gas_at: "2024-01-15T09:55:00Z",
        vendor_extra: 7,
      },
    };
    out.onReading(reading);
    out.onReading({ ...reading, time: T0 + 1000, values: { ...reading.values, vendor_extra: 8 } });

    const availability = [{ topic: "t_disc/bridge/state" }, { topic: "t_disc/home/availability" }];
    const device = {
      identifiers: ["t_disc_home"],
      name: "Home",
      manufacturer: "Kaifa",
      model: "MA105",
      serial_number: "E0026000024153615",
    };
    const origin = { name: "meter2mqtt", sw_version: "1.2.3", support_url: SUPPORT_URL };

    const energy = await watcher.waitFor(on("ha_disc/sensor/t_disc_home/energy_import_kwh/config"));
    expect(energy.retain).toBe(true);
    expect(json(energy)).toStrictEqual({
      name: "Energy import",
      unique_id: "t_disc_home_energy_import_kwh",
      object_id: "home_energy_import_kwh",
      default_entity_id: "sensor.home_energy_import_kwh",
      state_topic: "t_disc/home/state",
      value_template: "{{ value_json.energy_import_kwh }}",
      unit_of_measurement: "kWh",
      device_class: "energy",
      state_class: "total",
      // Empty (HA ignores it) until the meter is replaced; then the replacement's time, HA's last_reset.
      last_reset_value_template: "{{ value_json.meter_replaced_at | default('') }}",
      suggested_display_precision: 3,
      availability,
      availability_mode: "all",
      device,
      origin,
    });
    const power = await watcher.waitFor(on("ha_disc/sensor/t_disc_home/power_import_w/config"));
    expect(json(power)).toStrictEqual({
      name: "Power import",
      unique_id: "t_disc_home_power_import_w",
      object_id: "home_power_import_w",
      default_entity_id: "sensor.home_power_import_w",
      state_topic: "t_disc/home/state",
      value_template: "{{ value_json.power_import_w }}",
      unit_of_measurement: "W",
      device_class: "power",
      state_class: "measurement",
      suggested_display_precision: 0,
      availability,
      availability_mode: "all",
      device,
      origin,
    });
    const gas = await watcher.waitFor(on("ha_disc/sensor/t_disc_home/gas_m3/config"));
    expect(json(gas)).toStrictEqual({
      name: "Gas",
      unique_id: "t_disc_home_gas_m3",
      object_id: "home_gas_m3",
      default_entity_id: "sensor.home_gas_m3",
      state_topic: "t_disc/home/state",
      value_template: "{{ value_json.gas_m3 }}",
      unit_of_measurement: "m³",
      device_class: "gas",
      state_class: "total",
      suggested_display_precision: 3,
      availability,
      availability_mode: "all",
      device,
      origin,
    });
    const frames = await watcher.waitFor(on("ha_disc/sensor/t_disc_home/frames_rejected/config"));
    expect(json(frames)).toStrictEqual({
      name: "Frames rejected",
      unique_id: "t_disc_home_frames_rejected",
      object_id: "home_frames_rejected",
      default_entity_id: "sensor.home_frames_rejected",
      state_topic: "t_disc/home/state",
      value_template: "{{ value_json.frames_rejected }}",
      state_class: "total_increasing",
      icon: "mdi:alert-circle-outline",
      entity_category: "diagnostic",
      availability,
      availability_mode: "all",
      device,
      origin,
    });

    const state = await watcher.waitFor(on("t_disc/home/state"));
    expect(state.retain).toBe(true);
    expect(json(state)).toStrictEqual({
      energy_import_kwh: 1234.567,
      power_import_w: 512,
      gas_m3: 987.654,
      gas_at: "2024-01-15T09:55:00Z",
      vendor_extra: 7,
      frames_received: 41,
      frames_rejected: 2,
      time: "2024-01-15T10:00:00.000Z",
    });
    // vendor_extra changed in the second reading and has no interval: it goes out on its own.
    const second = await watcher.waitFor(
      (m) => m.topic === "t_disc/home/state" && m.payload.includes('"vendor_extra":8'),
    );
    expect((json(second) as { time: string }).time).toBe("2024-01-15T10:00:01.000Z");

    const avail = await watcher.waitFor(on("t_disc/home/availability"));
    expect([avail.payload, avail.retain]).toEqual(["online", true]);

    // A name outside the catalogue is published but never announced, and logged once.
    expect(watcher.messages.some((m) => m.topic.includes("vendor_extra"))).toBe(false);
    expect(log.lines.filter((l) => l.includes('"vendor_extra"'))).toHaveLength(1);
    // One config per entity (identical readings do not re-send them): energy, power, gas, gas_at, 2 counters.
    const configs = watcher.messages.filter((m) => m.topic.startsWith("ha_disc/sensor/"));
    expect(configs.map((m) => m.topic.split("/")[3]).sort()).toEqual([
      "energy_import_kwh",
      "frames_received",
      "frames_rejected",
      "gas_at",
      "gas_m3",
      "power_import_w",
    ]);
    expect(out.stats.discoveryPublished).toBe(6);
  });

  it("re-sends a meter's discovery when its device info or currency changes, and only then", async () => {
    const cfg = config("info");
    const watcher = await watch(broker.url, ["ha_info/#"]);
    const out = await output(cfg);
    const topic = "ha_info/sensor/t_info_home/price_per_kwh/config";
    out.onReading({ meterId: "home", time: T0, values: { price_per_kwh: 0.1234 } });
    const first = await watcher.waitFor(on(topic));
    expect((json(first) as { unit_of_measurement?: string }).unit_of_measurement).toBeUndefined();

    out.onReading({ meterId: "home", time: T0 + 1000, values: { price_per_kwh: 0.1234, currency: "USD" } });
    const priced = await watcher.waitFor((m) => m.topic === topic && m.payload.includes("USD/kWh"));
    expect(priced.retain).toBe(true);

    out.onMeterInfo({ meterId: "home", manufacturer: "Rainforest Automation", model: "EMU-2" });
    out.onMeterInfo({ meterId: "home", manufacturer: "Rainforest Automation", model: "EMU-2" });
    const withDevice = await watcher.waitFor((m) => m.topic === topic && m.payload.includes("EMU-2"));
    expect((json(withDevice) as { device: unknown }).device).toStrictEqual({
      identifiers: ["t_info_home"],
      name: "Home",
      manufacturer: "Rainforest Automation",
      model: "EMU-2",
    });
    out.onReading({ meterId: "home", time: T0 + 2000, values: { price_per_kwh: 0.2, currency: "USD" } });
    // A marker entity sent after everything else: once it is in, anything sent before it is in too.
    out.onReading({ meterId: "home", time: T0 + 3000, values: { tariff: 2 } });
    await watcher.waitFor(on("ha_info/sensor/t_info_home/tariff/config"));
    expect(watcher.messages.filter(on(topic))).toHaveLength(3);
  });

  it("sends discovery and states again when Home Assistant announces online", async () => {
    const cfg = config("birth");
    const out = await output(cfg);
    out.onReading({ meterId: "home", time: T0, values: { energy_import_kwh: 5, power_import_w: 100 } });
    // Subscribed after the first publications: what arrives now is the retained copy, then nothing.
    const watcher = await watch(broker.url, ["ha_birth/#", "t_birth/#"]);
    await watcher.waitFor(on("t_birth/home/state"));
    const before = out.stats.discoveryPublished;
    expect(before).toBe(2);
    watcher.clear();

    const ha = await connectAsync(broker.url);
    cleanups.push(() => ha.endAsync());
    await ha.publishAsync("ha_birth/status", "online");

    const again = await watcher.waitFor(on("ha_birth/sensor/t_birth_home/power_import_w/config"));
    expect(again.retain).toBe(true);
    await watcher.waitFor(on("ha_birth/sensor/t_birth_home/energy_import_kwh/config"));
    const state = await watcher.waitFor(on("t_birth/home/state"));
    expect(json(state)).toStrictEqual({ energy_import_kwh: 5, power_import_w: 100, time: "2024-01-15T10:00:00.000Z" });
    expect(out.stats.discoveryPublished).toBe(before + 2);

    // Anything other than `online` (HA going down) changes nothing; the output handles messages in order,
    // so once the second re-send is in, the `offline` before it has been dealt with.
    await ha.publishAsync("ha_birth/status", "offline");
    await ha.publishAsync("ha_birth/status", "online");
    const configs = (): number => watcher.messages.filter((m) => m.topic.endsWith("/config")).length;
    // Re-sends are spaced (a flood of `online` costs one): this one comes a few seconds after the first.
    await watcher.waitFor(() => configs() === 4, 15_000);
    expect(out.stats.discoveryPublished).toBe(before + 4);
  });

  it("throttles per kind with the injected clock and never re-sends unchanged values", async () => {
    const clock = new ManualClock(T0);
    const cfg = config("throttle");
    const watcher = await watch(broker.url, ["t_throttle/home/state"]);
    const out = await output(cfg, { clock });
    const read = (values: Record<string, number>): void =>
      out.onReading({ meterId: "home", time: clock.now(), values });
    const at = (s: number): string => new Date(T0 + s * 1000).toISOString();

    // Defaults: power 5 s, energy 10 s, voltage 30 s. One reading a second, power changing every time.
    let energy = 100;
    for (let s = 0; s <= 15; s++) {
      if (s > 0) clock.advance(1000);
      if (s === 12) energy = 100.5;
      if (s === 13) energy = 100.6;
      read({ energy_import_kwh: energy, power_import_w: 500 + s, voltage_l1_v: 230.1 });
    }
    // Quiet meter: energy 100.6 (held back at 13 s) is due at 22 s and goes out a second later.
    clock.advance(7900);
    expect(out.stats.published).toBe(5);
    clock.advance(100);
    expect(out.stats.published).toBe(6);
    // Half a minute of identical readings: nothing to publish.
    for (let s = 30; s <= 60; s++) {
      clock.advance(s === 30 ? 7000 : 1000);
      read({ energy_import_kwh: 100.6, power_import_w: 515, voltage_l1_v: 230.1 });
    }
    clock.advance(10_000);
    expect(out.stats.published).toBe(6);
    // Voltage changes after its 30 s: published, and serves as the end marker.
    read({ energy_import_kwh: 100.6, power_import_w: 515, voltage_l1_v: 231 });
    await watcher.waitFor((m) => m.payload.includes('"voltage_l1_v":231'));

    expect(watcher.messages.map(json)).toStrictEqual([
      { energy_import_kwh: 100, power_import_w: 500, voltage_l1_v: 230.1, time: at(0) },
      { energy_import_kwh: 100, power_import_w: 505, voltage_l1_v: 230.1, time: at(5) },
      { energy_import_kwh: 100, power_import_w: 510, voltage_l1_v: 230.1, time: at(10) },
      // Energy due at 12 s; power keeps its last published value rather than jumping to 512.
      { energy_import_kwh: 100.5, power_import_w: 510, voltage_l1_v: 230.1, time: at(12) },
      { energy_import_kwh: 100.5, power_import_w: 515, voltage_l1_v: 230.1, time: at(15) },
      { energy_import_kwh: 100.6, power_import_w: 515, voltage_l1_v: 230.1, time: at(15) },
      { energy_import_kwh: 100.6, power_import_w: 515, voltage_l1_v: 231, time: at(70) },
    ]);
  });

  it("does not let frame counters that rise with every telegram undo the throttle", async () => {
    const clock = new ManualClock(T0);
    const watcher = await watch(broker.url, ["t_frames/home/state"]);
    const out = await output(config("frames"), { clock });
    for (let s = 0; s <= 70; s++) {
      if (s > 0) clock.advance(1000);
      out.onStatus({ meterId: "home", online: true, framesReceived: s + 1, framesRejected: 0 });
      out.onReading({ meterId: "home", time: clock.now(), values: { energy_import_kwh: 42, power_import_w: 300 } });
    }
    // Marker: a gas reading goes out at once and carries the counters as last published.
    out.onReading({ meterId: "home", time: clock.now(), values: { gas_m3: 1 } });
    await watcher.waitFor((m) => m.payload.includes("gas_m3"));
    expect(watcher.messages.map(json)).toStrictEqual([
      {
        frames_received: 1,
        frames_rejected: 0,
        energy_import_kwh: 42,
        power_import_w: 300,
        time: "2024-01-15T10:00:00.000Z",
      },
      {
        frames_received: 61,
        frames_rejected: 0,
        energy_import_kwh: 42,
        power_import_w: 300,
        time: "2024-01-15T10:01:00.000Z",
      },
      {
        frames_received: 61,
        frames_rejected: 0,
        energy_import_kwh: 42,
        power_import_w: 300,
        gas_m3: 1,
        time: "2024-01-15T10:01:10.000Z",
      },
    ]);
  });

  it("configures the last will, which the broker sends when the connection dies, and reconnects", async () => {
    const cfg = config("will");
    const relay = await startRelay({ port: broker.port });
    cleanups.push(() => relay.close());
    const watcher = await watch(broker.url, ["t_will/bridge/state"]);
    const log = memoryLog();
    const out = await output({ ...cfg, url: relay.url }, { log });
    await watcher.waitFor((m) => m.payload === "online");

    relay.cut();
    const will = await watcher.waitFor((m) => m.payload === "offline", 5000);
    expect(will.retain).toBe(true);
    // mqtt.js reconnects by itself (through the same relay) and the output announces itself again.
    await until(() => out.stats.reconnects === 1, 8000, "reconnect");
    await watcher.waitFor(
      (m) => m.payload === "online" && watcher.messages.indexOf(m) > watcher.messages.indexOf(will),
    );
    const fresh = await watch(broker.url, ["t_will/bridge/state"]);
    expect((await fresh.waitFor(() => true)).payload).toBe("online");
    expect(log.lines.filter((l) => l.includes("lost the connection"))).toHaveLength(1);
    expect(log.lines.filter((l) => l.includes("reconnected"))).toHaveLength(1);
  });

  it("stop() publishes offline, retained, and is idempotent", async () => {
    const cfg = config("stop");
    const out = await output(cfg);
    const first = out.stop();
    expect(out.stop()).toBe(first);
    await first;
    const watcher = await watch(broker.url, ["t_stop/bridge/state"]);
    const retained = await watcher.waitFor(() => true);
    expect([retained.payload, retained.retain]).toEqual(["offline", true]);
    // Readings after stop() are ignored rather than thrown on.
    expect(() => out.onReading({ meterId: "home", time: T0, values: { power_import_w: 1 } })).not.toThrow();
  });

  it("stop() returns within its bound when the broker hangs", async () => {
    const relay = await startRelay({ port: broker.port });
    cleanups.push(() => relay.close());
    const out = new MqttOutput({ ...config("hang"), url: relay.url }, [HOME], { log: memoryLog() });
    await out.start();
    relay.stall();
    const started = Date.now();
    await out.stop();
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("fails start() on a port nobody listens on, naming host and port but not the password", async () => {
    const port = await freePort();
    const password = "s3cret-Pa55";
    const log = memoryLog();
    const out = new MqttOutput(
      config("refused", { url: `mqtt://meter:${password}@127.0.0.1:${port}`, username: "meter", password }),
      [HOME],
      { log, connectTimeoutMs: 1500 },
    );
    const err: Error = await out.start().then(
      () => new Error("start() resolved"),
      (e: Error) => e,
    );
    expect(err.message).toContain(`mqtt://127.0.0.1:${port}`);
    expect(err.message).toMatch(/cannot connect .* within 1\.5 s: connect ECONNREFUSED/);
    expect(err.message).not.toContain(password);
    expect(log.lines.join("\n")).not.toContain(password);
    await out.stop();
  });
});

describe("MqttOutput with a password-protected broker", () => {
  let secured: Mosquitto;
  beforeAll(async () => {
    secured = await startMosquitto({ users: { meter: "right-horse-battery" } });
  });
  afterAll(async () => {
    await secured?.stop();
  });

  it("connects with the configured credentials and fails fast, without echoing it, on a wrong password", async () => {
    const base = { url: secured.url, base_topic: "t_auth", username: "meter" };
    const good = new MqttOutput(MqttSchema.parse({ ...base, password: "right-horse-battery" }), [HOME], {
      log: memoryLog(),
    });
    await good.start();
    await good.stop();

    const bad = new MqttOutput(MqttSchema.parse({ ...base, password: "wrong-horse-battery" }), [HOME], {
      log: memoryLog(),
    });
    const started = Date.now();
    const err: Error = await bad.start().then(
      () => new Error("start() resolved"),
      (e: Error) => e,
    );
    expect(err.message).toMatch(/refused the connection: .*(authori[sz]ed|Bad user)/i);
    expect(err.message).toContain(`mqtt://127.0.0.1:${secured.port}`);
    expect(err.message).not.toContain("wrong-horse-battery");
    expect(Date.now() - started).toBeLessThan(5000);
    await bad.stop();
  });
});

describe("MqttOutput across a broker restart", () => {
  it("reconnects by itself, sends the latest state once, and publishes the next reading", async () => {
    const own = await startMosquitto();
    cleanups.push(() => own.stop());
    const cfg = MqttSchema.parse({ url: own.url, base_topic: "t_restart", discovery_prefix: "ha_restart" });
    const log = memoryLog();
    const clock = new ManualClock(T0);
    const out = new MqttOutput(cfg, [HOME], { log, clock });
    cleanups.push(() => out.stop());
    await out.start();
    out.onReading({ meterId: "home", time: T0, values: { energy_import_kwh: 1, power_import_w: 10 } });
    const before = await collect(own.url, ["t_restart/home/state"]);
    await before.waitFor(() => true);
    await before.close();

    // Down for longer than two retry periods: the log must still say so once.
    await own.stop();
    for (let i = 1; i <= 5; i++)
      out.onReading({ meterId: "home", time: T0 + i * 1000, values: { energy_import_kwh: 1 + i, power_import_w: 10 } });
    await new Promise((r) => setTimeout(r, 4500));
    const back = await startMosquitto({ port: own.port });
    cleanups.push(() => back.stop());
    // Persistence is off: whatever arrives was sent after the restart.
    const watcher = await watch(back.url, ["t_restart/#", "ha_restart/#"]);
    await watcher.waitFor((m) => m.topic === "t_restart/bridge/state" && m.payload === "online", 8000);
    const latest = await watcher.waitFor(on("t_restart/home/state"));
    expect(json(latest)).toStrictEqual({
      energy_import_kwh: 6,
      power_import_w: 10,
      time: new Date(T0 + 5000).toISOString(),
    });
    await watcher.waitFor(on("ha_restart/sensor/t_restart_home/energy_import_kwh/config"));

    clock.advance(20_000);
    out.onReading({ meterId: "home", time: T0 + 20_000, values: { energy_import_kwh: 50, power_import_w: 10 } });
    await watcher.waitFor((m) => m.topic === "t_restart/home/state" && m.payload.includes('"energy_import_kwh":50'));
    // The readings taken while the broker was gone were not queued up and replayed.
    expect(watcher.messages.filter(on("t_restart/home/state"))).toHaveLength(2);
    expect(out.stats.reconnects).toBe(1);
    expect(log.lines.filter((l) => l.includes("lost the connection"))).toHaveLength(1);
    expect(log.lines.filter((l) => l.includes("reconnected"))).toHaveLength(1);
  });
});

it("the catalogue still has the quantities these tests are written against", () => {
  for (const name of ["energy_import_kwh", "power_import_w", "gas_m3", "frames_rejected", "price_per_kwh"])
    expect(QUANTITIES.has(name), name).toBe(true);
});
