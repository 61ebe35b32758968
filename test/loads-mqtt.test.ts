/**
 * The load advisor over a real mosquitto, through the MQTT output's extension points: the entities each load gets
 * in Home Assistant, its retained state, the mode select's command topic, a relay's direct command, carrying on
 * from the previous run's state, and all of it again after the broker restarts.
 */
import { connectAsync } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { parseConfig } from "../src/config/load.js";
import type { Config } from "../src/config/schema.js";
import { LoadAdvisorService, RETAINED_WAIT_MS } from "../src/loads/index.js";
import { MqttOutput } from "../src/outputs/mqtt/index.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";
import {
  type Collected,
  type Collector,
  collect,
  type Mosquitto,
  startMosquitto,
  startRelay,
  until,
} from "./helpers/mosquitto.js";

const T0 = Date.UTC(2026, 5, 10, 12, 0, 0);
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

function config(name: string, url = broker.url): Config {
  return parseConfig({
    mqtt: { url, base_topic: `t_${name}`, discovery_prefix: `ha_${name}` },
    meters: [{ id: "home", name: "Home", type: "dsmr", port: "/dev/ttyUSB0" }],
    loads: [
      {
        id: "boiler",
        name: "Boiler",
        meter: "home",
        power_w: 2000,
        on_delay: 30,
        off_delay: 30,
        command: { topic: `cmnd/${name}/boiler/POWER` },
      },
    ],
  });
}

async function bridge(cfg: Config) {
  const bus = new Bus();
  const log = recordingLog();
  const clock = new ManualClock(T0);
  const service = new LoadAdvisorService(cfg, { clock, log: log.log });
  service.start(bus);
  const out = new MqttOutput(cfg.mqtt, cfg.meters, { version: "1.2.3", log: log.log });
  await out.start();
  service.attach(out);
  // Connected: after a moment without a retained state from a last run, the loads start afresh.
  service.mqttConnected();
  clock.advance(RETAINED_WAIT_MS);
  cleanups.push(async () => {
    service.stop(bus);
    await out.stop();
  });
  const reading = async (atS: number, netW: number) => {
    bus.emit("reading", { meterId: "home", time: T0 + atS * 1000, values: { power_net_w: netW } });
    await bus.idle();
  };
  return { out, service, reading, log };
}

async function watch(filters: string[], url = broker.url): Promise<Collector> {
  const c = await collect(url, filters);
  cleanups.push(() => c.close());
  return c;
}
const on = (topic: string) => (m: Collected) => m.topic === topic;
const stateOf = (m: Collected) => JSON.parse(m.payload) as Record<string, unknown>;

describe("load advisor over MQTT", () => {
  it("gives each load four entities on a device of its own, reached through its meter's", async () => {
    const watcher = await watch(["ha_disc/#"]);
    await bridge(config("disc"));
    const config_ = async (topic: string) => JSON.parse((await watcher.waitFor(on(topic))).payload);
    const device = {
      identifiers: ["t_disc_load_boiler"],
      name: "Boiler",
      manufacturer: "meter2mqtt",
      model: "Load advisor (2000 W)",
      via_device: "t_disc_home",
    };
    const common = {
      availability: [{ topic: "t_disc/bridge/state" }],
      availability_mode: "all",
      device,
      origin: { name: "meter2mqtt", sw_version: "1.2.3", support_url: "https://github.com/meter2mqtt/meter2mqtt" },
    };
    expect(await config_("ha_disc/binary_sensor/t_disc_load_boiler/recommended/config")).toEqual({
      name: "Recommended",
      unique_id: "t_disc_load_boiler_recommended",
      object_id: "load_boiler_recommended",
      default_entity_id: "binary_sensor.load_boiler_recommended",
      ...common,
      icon: "mdi:power-plug-outline",
      state_topic: "t_disc/loads/boiler/state",
      value_template: "{{ value_json.state }}",
      payload_on: "on",
      payload_off: "off",
    });
    expect(await config_("ha_disc/select/t_disc_load_boiler/mode/config")).toMatchObject({
      default_entity_id: "select.load_boiler_mode",
      state_topic: "t_disc/loads/boiler/state",
      value_template: "{{ value_json.mode }}",
      command_topic: "t_disc/loads/boiler/mode/set",
      options: ["auto", "on", "off"],
      ...common,
    });
    expect(await config_("ha_disc/sensor/t_disc_load_boiler/reason/config")).toMatchObject({
      default_entity_id: "sensor.load_boiler_reason",
      device_class: "enum",
      options: expect.arrayContaining([
        "starting",
        "surplus",
        "on_delay",
        "min_off",
        "peak_guard",
        "manual",
        "no_data",
      ]),
      value_template: "{{ value_json.reason }}",
    });
    expect(await config_("ha_disc/sensor/t_disc_load_boiler/delay_remaining/config")).toMatchObject({
      default_entity_id: "sensor.load_boiler_delay_remaining",
      device_class: "duration",
      unit_of_measurement: "s",
      value_template: "{{ value_json.delay_s }}",
    });
  });

  it("publishes the retained state as it changes, and the relay's command when the recommendation does", async () => {
    const watcher = await watch(["t_state/#", "cmnd/state/#"]);
    const { reading } = await bridge(config("state"));
    await reading(0, -2500);
    await reading(10, -2500);
    await reading(30, -2500);
    const states = async (n: number) => {
      await until(() => watcher.messages.filter(on("t_state/loads/boiler/state")).length >= n, 5000, `${n} states`);
      return watcher.messages.filter(on("t_state/loads/boiler/state"));
    };
    const got = await states(3);
    expect(got.map(stateOf)).toEqual([
      {
        state: "off",
        mode: "auto",
        reason: "on_delay",
        delay_s: 30,
        change_at: "2026-06-10T12:00:30.000Z",
        since: null,
        time: "2026-06-10T12:00:00.000Z",
      },
      expect.objectContaining({ state: "off", reason: "on_delay", delay_s: 20, time: "2026-06-10T12:00:10.000Z" }),
      {
        state: "on",
        mode: "auto",
        reason: "surplus",
        delay_s: 0,
        change_at: null,
        since: "2026-06-10T12:00:30.000Z",
        time: "2026-06-10T12:00:30.000Z",
      },
    ]);
    expect(got.every((m) => m.retain)).toBe(true);
    const commands = watcher.messages.filter(on("cmnd/state/boiler/POWER"));
    expect(commands.map((m) => [m.payload, m.retain])).toEqual([
      ["OFF", false],
      ["ON", false],
    ]);
  });

  it("takes the mode from the select's command topic, and ignores anything else there", async () => {
    const watcher = await watch(["t_mode/#"]);
    const { reading, log } = await bridge(config("mode"));
    await reading(0, -2500);
    const ha = await connectAsync(broker.url);
    cleanups.push(() => ha.endAsync());
    await ha.publishAsync("t_mode/loads/boiler/mode/set", "on");
    const manual = await watcher.waitFor(
      (m) => m.topic === "t_mode/loads/boiler/state" && stateOf(m).mode === "on",
      5000,
    );
    expect(stateOf(manual)).toMatchObject({ state: "on", mode: "on", reason: "manual", delay_s: 0 });
    await ha.publishAsync("t_mode/loads/boiler/mode/set", "maybe");
    await ha.publishAsync("t_mode/loads/boiler/mode/set", "AUTO");
    const seen = watcher.messages.indexOf(manual);
    await watcher.waitFor(
      (m) =>
        watcher.messages.indexOf(m) > seen && m.topic === "t_mode/loads/boiler/state" && stateOf(m).mode === "auto",
      5000,
    );
    expect(log.at("warn")).toEqual([
      'boiler: mode "maybe" on t_mode/loads/boiler/mode/set ignored, expected auto, on, off',
    ]);
  });

  it("carries on from the previous run's retained state instead of starting off", async () => {
    const previous = await connectAsync(broker.url);
    await previous.publishAsync(
      "t_restore/loads/boiler/state",
      JSON.stringify({ state: "on", mode: "auto", reason: "surplus", since: "2026-06-10T11:00:00.000Z" }),
      { retain: true, qos: 1 },
    );
    await previous.endAsync();
    const watcher = await watch(["t_restore/loads/boiler/state"]);
    const { reading, log } = await bridge(config("restore"));
    await until(() => log.at("info").some((l) => l.includes("carrying on from the last run")), 5000, "the restore");
    await reading(0, -500);
    const next = await watcher.waitFor((m) => stateOf(m).time === "2026-06-10T12:00:00.000Z", 5000);
    // Exporting 500 W with the boiler's 2000 drawn: it stays on, no on delay, since kept from the last run.
    expect(stateOf(next)).toMatchObject({ state: "on", reason: "surplus", since: "2026-06-10T11:00:00.000Z" });
  });

  it("carries on from the previous run even when the meter is read before the broker answers", async () => {
    const previous = await connectAsync(broker.url);
    await previous.publishAsync(
      "t_early/loads/boiler/state",
      JSON.stringify({ state: "on", mode: "auto", reason: "surplus", since: "2026-06-10T11:00:00.000Z" }),
      { retain: true, qos: 1 },
    );
    await previous.endAsync();
    const watcher = await watch(["t_early/loads/boiler/state"]);
    const cfg = config("early");
    const bus = new Bus();
    const log = recordingLog();
    const service = new LoadAdvisorService(cfg, { clock: new ManualClock(T0), log: log.log });
    service.start(bus);
    // The meter is read at once; the broker comes later.
    bus.emit("reading", { meterId: "home", time: T0, values: { power_net_w: -500 } });
    await bus.idle();
    const out = new MqttOutput(cfg.mqtt, cfg.meters, { version: "1.2.3", log: log.log });
    cleanups.push(async () => {
      service.stop(bus);
      await out.stop();
    });
    await out.start();
    service.attach(out);
    service.mqttConnected();
    const next = await watcher.waitFor((m) => stateOf(m).time === "2026-06-10T12:00:00.000Z", 5000);
    expect(log.at("info").some((l) => l.includes("carrying on from the last run: on"))).toBe(true);
    // Not switched off by the reading that came first: the last run's "on" and its since are kept.
    expect(stateOf(next)).toMatchObject({ state: "on", since: "2026-06-10T11:00:00.000Z" });
  });

  it("sends entities, states and the relay command again after a reconnect, and still takes modes", async () => {
    // The relay cuts the bridge's connection as a network failure would; clean sessions lose their subscriptions.
    const relay = await startRelay({ port: broker.port });
    cleanups.push(() => relay.close());
    const watcher = await watch(["ha_again/#", "t_again/#", "cmnd/again/#"]);
    const { reading, out } = await bridge(config("again", relay.url));
    await reading(0, 1000);
    await watcher.waitFor(on("cmnd/again/boiler/POWER"), 5000);
    const cut = watcher.messages.length;
    relay.cut();
    await until(() => out.stats.reconnects === 1, 10_000, "the bridge to reconnect");
    const sinceCut = (topic: string) =>
      watcher.waitFor((m) => m.topic === topic && watcher.messages.indexOf(m) >= cut, 5000);
    await sinceCut("ha_again/select/t_again_load_boiler/mode/config");
    expect(stateOf(await sinceCut("t_again/loads/boiler/state"))).toMatchObject({ state: "off", reason: "no_surplus" });
    expect((await sinceCut("cmnd/again/boiler/POWER")).payload).toBe("OFF");
    const ha = await connectAsync(broker.url);
    cleanups.push(() => ha.endAsync());
    await ha.publishAsync("t_again/loads/boiler/mode/set", "on");
    const command = await watcher.waitFor((m) => m.topic === "cmnd/again/boiler/POWER" && m.payload === "ON", 5000);
    expect(command.retain).toBe(false);
  }, 20_000);
});
