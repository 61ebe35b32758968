/**
 * Issue 14, the MQTT side: what anyone on the broker can send the bridge (a flood of Home Assistant `online`,
 * thousands of bad commands, a forged retained load state, a message of megabytes) costs a bounded amount and
 * leaves one escaped log line, and a topic prefix the broker would refuse is a configuration error.
 */
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { ConfigError, parseConfig } from "../src/config/load.js";
import type { Config } from "../src/config/schema.js";
import { LoadAdvisorService } from "../src/loads/index.js";
import { MqttOutput } from "../src/outputs/mqtt/index.js";
import { ManualClock } from "../src/util/clock.js";
import { createLogger, oneLine, quote, setLogSink } from "../src/util/log.js";
import { recordingLog } from "./helpers/log.js";
import { type Collected, type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";

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

function config(name: string): Config {
  return parseConfig({
    mqtt: { url: broker.url, base_topic: `t_${name}`, discovery_prefix: `ha_${name}` },
    meters: [{ id: "home", name: "Home", type: "dsmr", port: "/dev/ttyUSB0" }],
    loads: [{ id: "boiler", meter: "home", power_w: 2000, on_delay: 0, off_delay: 0, min_off: 600 }],
  });
}

async function bridge(cfg: Config) {
  const bus = new Bus();
  const log = recordingLog();
  const service = new LoadAdvisorService(cfg, { clock: new ManualClock(T0), log: log.log });
  service.start(bus);
  const out = new MqttOutput(cfg.mqtt, cfg.meters, { version: "1.2.3", log: log.log });
  bus.subscribe("mqtt", "reading", (r) => out.onReading(r));
  await out.start();
  service.attach(out);
  cleanups.push(async () => {
    service.stop(bus);
    await out.stop();
  });
  const reading = async (atS: number, netW: number) => {
    bus.emit("reading", { meterId: "home", time: T0 + atS * 1000, values: { power_net_w: netW } });
    await bus.idle();
  };
  return { out, reading, log };
}

async function watch(filters: string[]): Promise<Collector> {
  const c = await collect(broker.url, filters);
  cleanups.push(() => c.close());
  return c;
}
async function hostile(): Promise<MqttClient> {
  const c = await connectAsync(broker.url);
  cleanups.push(() => c.endAsync());
  return c;
}
const stateOf = (m: Collected) => JSON.parse(m.payload) as Record<string, unknown>;

describe("hostile MQTT publishers", () => {
  it("answers a burst of 500 `online` on homeassistant/status with one re-send", async () => {
    const cfg = config("flood");
    const { out, reading } = await bridge(cfg);
    await reading(0, 500);
    const watcher = await watch(["ha_flood/#", "t_flood/#"]);
    await until(() => watcher.messages.some((m) => m.topic === "t_flood/home/state"), 5000, "the retained state");
    const announced = watcher.messages.filter((m) => m.topic.endsWith("/config")).length;
    expect(announced).toBeGreaterThan(3);
    watcher.clear();
    const publishedBefore = out.stats.published + out.stats.discoveryPublished;

    const ha = await hostile();
    for (let i = 0; i < 500; i++) ha.publish("ha_flood/status", "online");
    await until(() => out.stats.haOnline === 500, 15_000, "all 500 to arrive");
    await until(() => out.stats.haResends === 1, 10_000, "the re-send");
    // Nothing more comes of the rest of the burst.
    await new Promise((r) => setTimeout(r, 3000));
    expect(out.stats.haResends).toBe(1);
    const configs = watcher.messages.filter((m) => m.topic.endsWith("/config"));
    expect(configs.length).toBe(announced);
    const sent = out.stats.published + out.stats.discoveryPublished - publishedBefore;
    expect(sent).toBeLessThanOrEqual(announced + 2);
  }, 40_000);

  it("warns once about 5,000 bad mode commands, quoting the payload escaped, and still takes a good one", async () => {
    const { reading, log } = await bridge(config("badmode"));
    await reading(0, 500);
    const watcher = await watch(["t_badmode/loads/boiler/state"]);
    const ha = await hostile();
    const forged = "x\n2026-06-10T12:00:00.000Z ERROR [meter2mqtt] forged line";
    ha.publish("t_badmode/loads/boiler/mode/set", forged);
    for (let i = 0; i < 4998; i++) ha.publish("t_badmode/loads/boiler/mode/set", `bad ${i}`);
    ha.publish("t_badmode/loads/boiler/mode/set", ` ${"on".repeat(1000)} `);
    await ha.publishAsync("t_badmode/loads/boiler/mode/set", " On ");
    await watcher.waitFor((m) => stateOf(m).mode === "on", 20_000);
    const warnings = log.at("warn");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(quote(forged));
    expect(warnings[0]).not.toContain("\n");
    expect(warnings[0]).toContain('"x\\n2026-06-10T12:00:00.000Z ERROR [meter2"… (57 characters)');
  }, 40_000);

  it("drops a message of megabytes on a command topic unread", async () => {
    const { out, log } = await bridge(config("big"));
    const ha = await hostile();
    await ha.publishAsync("t_big/loads/boiler/mode/set", Buffer.alloc(2_000_000, 0x61));
    await until(() => out.stats.oversized === 1, 10_000, "the big message to be dropped");
    expect(log.at("warn").join("\n")).toMatch(/2000000 bytes on t_big\/loads\/boiler\/mode\/set ignored/);
  });

  it("ignores a retained load state from the future, with one warning, and decides afresh", async () => {
    const forger = await connectAsync(broker.url);
    await forger.publishAsync(
      "t_future/loads/boiler/state",
      JSON.stringify({ state: "off", mode: "auto", reason: "min_off", since: "9999-12-31T00:00:00.000Z" }),
      { retain: true, qos: 1 },
    );
    await forger.endAsync();
    const watcher = await watch(["t_future/loads/boiler/state"]);
    const { reading, log } = await bridge(config("future"));
    await until(() => log.at("warn").length > 0, 5000, "the warning");
    // Exporting 2.5 kW: with the forged since the boiler would sit out min_off for 8,000 years; now it goes on.
    await reading(0, -2500);
    const next = await watcher.waitFor((m) => stateOf(m).state === "on", 5000);
    expect(stateOf(next)).toMatchObject({ state: "on", reason: "surplus" });
    expect(stateOf(next).since).not.toMatch(/^9999/);
    expect(log.at("warn")).toHaveLength(1);
    expect(log.at("warn")[0]).toMatch(
      /boiler: the retained state on t_future\/loads\/boiler\/state is ignored \(since is in the future\)/,
    );
    expect(log.at("info").some((l) => l.includes("carrying on"))).toBe(false);
  });

  it("ignores retained load states with unknown states or modes, or that are not JSON objects", async () => {
    const { parseLoadState } = await import("../src/loads/index.js");
    const now = T0;
    const ok = parseLoadState(JSON.stringify({ state: "on", mode: "off", since: "2026-06-10T11:00:00Z" }), now);
    expect(ok).toMatchObject({ ok: true, on: true, mode: "off", since: Date.UTC(2026, 5, 10, 11) });
    for (const bad of [
      JSON.stringify({ state: "maybe", mode: "auto" }),
      JSON.stringify({ state: "on", mode: "turbo" }),
      JSON.stringify({ state: "on", mode: "auto", since: "yesterday" }),
      JSON.stringify({ state: "on", mode: "auto", since: 12 }),
      JSON.stringify({ state: "on", mode: "auto", since: new Date(now + 3_600_000).toISOString() }),
      "[1,2]",
      "null",
      "{",
      `{"state":"on","mode":"auto","x":"${"a".repeat(5000)}"}`,
    ])
      expect(parseLoadState(bad, now).ok, bad.slice(0, 60)).toBe(false);
  });
});

describe("topic parts in the configuration", () => {
  it("refuses wildcards, $ and empty levels in base_topic and discovery_prefix, naming the key", () => {
    const meters = [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }];
    for (const [key, value] of [
      ["discovery_prefix", "+"],
      ["discovery_prefix", "home/#"],
      ["base_topic", "$SYS"],
      ["base_topic", "a//b"],
      ["base_topic", "/meter2mqtt"],
      ["base_topic", "meter 2 mqtt"],
      ["discovery_prefix", ""],
    ] as const) {
      const err = (() => {
        try {
          parseConfig({ mqtt: { [key]: value }, meters });
        } catch (e) {
          return e as Error;
        }
        return undefined;
      })();
      expect(err, `${key}: ${value}`).toBeInstanceOf(ConfigError);
      expect(err?.message).toContain(`mqtt.${key}`);
    }
    expect(
      parseConfig({ mqtt: { base_topic: "home/meter-2_mqtt", discovery_prefix: "HA" }, meters }).mqtt,
    ).toMatchObject({ base_topic: "home/meter-2_mqtt", discovery_prefix: "HA" });
  });
});

describe("the log", () => {
  it("writes one line per event whatever the message holds", () => {
    const lines: string[] = [];
    setLogSink((line) => lines.push(line));
    try {
      createLogger("t").warn("a\nb\r\u0000c\u2028d");
    } finally {
      setLogSink((line, level) =>
        (level === "warn" || level === "error" ? process.stderr : process.stdout).write(`${line}\n`),
      );
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\[t\] a\\nb\\r\\u0000c\\u2028d$/);
    expect(oneLine("tab\tstays")).toBe("tab\tstays");
  });
});

describe("a broker that hangs", () => {
  it("is noticed without waiting for the keepalive, and the latest state goes out once it answers again", async () => {
    const own = await startMosquitto();
    cleanups.push(async () => {
      own.signal("SIGCONT");
      await own.stop();
    });
    const log = recordingLog();
    const cfg = parseConfig({
      mqtt: {
        url: own.url,
        base_topic: "t_stall",
        discovery_prefix: "ha_stall",
        min_interval: { power: 0, energy: 0 },
      },
      meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }],
    });
    const out = new MqttOutput(cfg.mqtt, cfg.meters, { log: log.log });
    cleanups.push(() => out.stop());
    await out.start();
    // A meter at a high rate: 20 readings a second, each a new value.
    let n = 0;
    const pad = "x".repeat(2000);
    const feed = setInterval(() => {
      n++;
      out.onReading({
        meterId: "home",
        time: Date.now(),
        values: { power_import_w: n, energy_import_kwh: n, tariff: pad },
      });
    }, 50);
    cleanups.push(async () => clearInterval(feed));
    await new Promise((r) => setTimeout(r, 1000));

    own.signal("SIGSTOP");
    await until(() => out.stats.stalls >= 1, 20_000, "the stall to be noticed");
    await until(
      () => log.at("warn").some((l) => /lost the connection .*stopped answering/.test(l)),
      10_000,
      "the warning that says why",
    );
    await new Promise((r) => setTimeout(r, 3000));
    own.signal("SIGCONT");
    const resumedAt = Date.now();
    const nAtResume = n;
    await until(() => out.stats.reconnects >= 1, 15_000, "the reconnect");
    const watcher = await collect(own.url, ["t_stall/home/state"]);
    cleanups.push(() => watcher.close());
    const fresh = await watcher.waitFor(
      (m) => (JSON.parse(m.payload) as { power_import_w: number }).power_import_w >= nAtResume,
      10_000,
    );
    expect(fresh).toBeDefined();
    // Well under the 12 s the keepalive took, on a loaded machine too.
    expect(Date.now() - resumedAt).toBeLessThan(10_000);
  }, 60_000);
});

describe("a broker that drops the bridge right after each connect", () => {
  it("says so once a minute, not twice every retry", async () => {
    const { startRelay } = await import("./helpers/mosquitto.js");
    const relay = await startRelay({ port: broker.port });
    cleanups.push(() => relay.close());
    const log = recordingLog();
    const cfg = parseConfig({
      mqtt: { url: relay.url, base_topic: "t_flap", discovery_prefix: "ha_flap" },
      meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }],
    });
    const out = new MqttOutput(cfg.mqtt, cfg.meters, { log: log.log });
    cleanups.push(() => out.stop());
    await out.start();
    // As a broker refusing a topic does: every connection dropped moments after it was accepted.
    const cutter = setInterval(() => relay.cut(), 300);
    cleanups.push(async () => clearInterval(cutter));
    await until(() => out.stats.flaps >= 4, 30_000, "four dropped connections");
    const lines = [...log.at("warn"), ...log.at("info")].filter((l) => /lost the connection|reconnected/.test(l));
    // The first drop and its reconnect, then nothing for the rest of the minute.
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/lost the connection to .* s after the broker accepted it; if it keeps doing so/);
    expect(lines[1]).toMatch(/^reconnected/);
  }, 40_000);
});
