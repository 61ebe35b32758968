import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { ConfigError, parseConfig } from "../src/config/load.js";
import { RavenMeterSchema } from "../src/config/schema.js";
import type { MeterInfo, Reading, SourceStatus } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { createSource } from "../src/sources/index.js";
import {
  currentSummation,
  deviceInfo,
  type Ids,
  instantaneousDemand,
  meterList,
  networkInfo,
  priceCluster,
  warning,
} from "../src/sources/raven/build.js";
import { ESTIMATED_HOURLY_SQL } from "../src/sources/raven/estimate.js";
import { RavenSource } from "../src/sources/raven/index.js";
import type { CommandTransport } from "../src/sources/raven/transport.js";
import type { TransportEvents } from "../src/transports/index.js";
import { ManualClock } from "../src/util/clock.js";
import type { Logger } from "../src/util/log.js";
import { recordingLog } from "./helpers/log.js";

const IDS: Ids = { deviceMac: "D8D5B9000000F919", meterMac: "00135003004653A5" };
const T0 = Date.UTC(2026, 10, 21, 8, 0, 0);

/** What the source logged above debug, as "level text" lines. */
function recorder(): { log: Logger; readonly lines: string[] } {
  const rec = recordingLog();
  return {
    log: rec.log,
    get lines() {
      return rec.lines.filter((l) => l.level !== "debug").map((l) => `${l.level} ${l.text}`);
    },
  };
}

type Answer = Buffer | string | undefined;

/** A device behind a transport: records the commands written and answers them as `answer` says. */
class FakeDevice extends EventEmitter<TransportEvents> implements CommandTransport {
  readonly description = "fake EMU-2";
  isOpen = false;
  readonly commands: { name: string; meter?: string; text: string }[] = [];
  /** Why, and how many commands had been written by then. */
  readonly reopens: { reason: string; after: number }[] = [];
  watts = 1500;
  importKwh = 12345.678;
  exportKwh = 23.456;

  constructor(
    private readonly clock: ManualClock,
    public answer: (name: string, meter: string | undefined, device: FakeDevice) => Answer = standard,
  ) {
    super();
  }

  start(): void {
    this.isOpen = true;
    this.emit("open");
  }
  async stop(): Promise<void> {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.emit("close", "stopped");
  }
  reopen(reason: string): void {
    this.reopens.push({ reason, after: this.commands.length });
    this.isOpen = false;
    this.emit("close", reason);
    this.start();
  }
  lose(): void {
    this.isOpen = false;
    this.emit("close", "device disconnected");
  }
  async write(bytes: Buffer): Promise<void> {
    const text = bytes.toString("latin1");
    const name = /<Name>([^<]*)<\/Name>/.exec(text)?.[1] ?? "?";
    const meter = /<MeterMacId>0x([0-9a-fA-F]+)<\/MeterMacId>/.exec(text)?.[1]?.toUpperCase();
    this.commands.push({ name, text, ...(meter ? { meter } : {}) });
    const reply = this.answer(name, meter, this);
    // Delivered after the write resolves, as a real reply comes back some time later.
    if (reply !== undefined) setImmediate(() => this.send(reply));
  }
  send(bytes: Buffer | string): void {
    if (this.isOpen) this.emit("data", typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes);
  }
  now(): number {
    return this.clock.now();
  }
  names(): string[] {
    return this.commands.map((c) => c.name);
  }
}

function standard(name: string, _meter: string | undefined, d: FakeDevice): Answer {
  const time = d.now();
  switch (name) {
    case "get_meter_list":
      return meterList(IDS.deviceMac, [IDS.meterMac]);
    case "get_device_info":
      return deviceInfo(IDS, { firmware: "2.0.0 (7400)" });
    case "get_network_info":
      return networkInfo(IDS, { linkStrength: 87 });
    case "get_instantaneous_demand":
      return instantaneousDemand(IDS, { time, watts: d.watts });
    case "get_current_summation_delivered":
      return currentSummation(IDS, { time, importKwh: d.importKwh, exportKwh: d.exportKwh });
    case "get_current_price":
      return priceCluster(IDS, { time, price: 0.1234 });
    default:
      return warning("Unknown command");
  }
}

/** Lets replies (setImmediate) and promise callbacks run. */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

const POLLS = ["get_network_info", "get_instantaneous_demand", "get_current_summation_delivered", "get_current_price"];

describe("RavenSource session", () => {
  let source: RavenSource | undefined;
  afterEach(async () => {
    await source?.stop();
    source = undefined;
  });

  function setup(cfg: Record<string, unknown> = {}, answer?: FakeDevice["answer"]) {
    const clock = new ManualClock(T0);
    const device = new FakeDevice(clock, answer);
    const bus = new Bus();
    const readings: Reading[] = [];
    const statuses: SourceStatus[] = [];
    const infos: MeterInfo[] = [];
    bus.subscribe("t", "reading", (r) => void readings.push(r));
    bus.subscribe("t", "status", (s) => void statuses.push(s));
    bus.subscribe("t", "meterInfo", (i) => void infos.push(i));
    const log = recorder();
    const meter = RavenMeterSchema.parse({ id: "emu", type: "raven", port: "/dev/ttyACM0", ...cfg });
    source = new RavenSource(meter, bus, { clock, log: log.log, transport: device });
    const latest = (): Record<string, number | string> => readings.at(-1)?.values ?? {};
    return { clock, device, bus, readings, statuses, infos, log, source, latest };
  }

  it("finds the meter, reads the device, polls, and publishes one snapshot per fragment", async () => {
    const s = setup();
    s.source.start();
    await settle();
    expect(s.device.names()).toEqual(["get_meter_list", "get_device_info", ...POLLS]);
    // Commands that address a meter carry the one the device listed.
    for (const c of s.device.commands.filter((c) => c.name.startsWith("get_current") || c.name.includes("demand")))
      expect(c.meter).toBe(IDS.meterMac);
    expect(s.device.commands[0]!.text).toBe("<Command><Name>get_meter_list</Name></Command>\n");
    expect(s.infos).toEqual([
      {
        meterId: "emu",
        manufacturer: "Rainforest Automation, Inc.",
        model: "Z105-2-EMU2-LEDD_JM",
        serialNumber: IDS.deviceMac,
        swVersion: "2.0.0 (7400)",
      },
    ]);
    expect(s.latest()).toEqual({
      power_net_w: 1500,
      power_import_w: 1500,
      power_export_w: 0,
      energy_import_kwh: 12345.678,
      energy_export_kwh: 23.456,
      price_per_kwh: 0.1234,
      currency: "USD",
    });
    expect(s.readings.at(-1)!.time).toBe(T0);
    const diag = Object.assign({}, ...s.readings.map((r) => r.values));
    expect(diag).toMatchObject({ firmware: "2.0.0 (7400)", link_strength_pct: 87, connection_status: "Connected" });
    expect(s.statuses.at(-1)).toMatchObject({ online: true });
    expect(s.source.stats).toMatchObject({ online: true, framesReceived: 6, framesRejected: 0 });
  });

  it("polls again at each interval, and a pushed value postpones its poll", async () => {
    const s = setup({ demand_interval: 10, summation_interval: 60, price_interval: 600 });
    s.source.start();
    await settle();
    const count = (n: string): number => s.device.names().filter((x) => x === n).length;
    s.clock.advance(10_000);
    await settle();
    expect(count("get_instantaneous_demand")).toBe(2);
    // Pushed 4 s later: the next poll is 10 s after the push, not 10 s after the last poll.
    s.clock.advance(4000);
    s.device.watts = -300;
    s.device.send(instantaneousDemand(IDS, { time: s.clock.now(), watts: -300 }));
    await settle();
    expect(s.latest()).toMatchObject({ power_net_w: -300, power_import_w: 0, power_export_w: 300 });
    s.clock.advance(9000);
    await settle();
    expect(count("get_instantaneous_demand")).toBe(2);
    s.clock.advance(1000);
    await settle();
    expect(count("get_instantaneous_demand")).toBe(3);
    // Time moves a second at a time, so replies come back as they would between polls.
    for (let i = 0; i < 60; i++) {
      s.clock.advance(1000);
      await settle(4);
    }
    expect(count("get_current_summation_delivered")).toBe(2);
    expect(count("get_current_price")).toBe(1);
  });

  it("retries get_meter_list when the first answer is lost among leftovers", async () => {
    let lists = 0;
    const s = setup({ command_timeout: 2 }, (name, meter, d) => {
      if (name === "get_meter_list" && lists++ === 0) return "0x29bd58a7</TimeStamp>\n</InstantaneousDemand>\n";
      return standard(name, meter, d);
    });
    s.source.start();
    await settle();
    expect(s.device.names()).toEqual(["get_meter_list"]);
    s.clock.advance(2000);
    await settle();
    expect(s.device.names()).toEqual(["get_meter_list", "get_meter_list", "get_device_info", ...POLLS]);
    expect(s.source.stats).toMatchObject({ framesRejected: 1, meterMac: IDS.meterMac });
  });

  it("a Warning fails only that command; the others and later polls go on", async () => {
    const s = setup({ price_interval: 30 }, (name, meter, d) =>
      name === "get_current_price" ? warning("Unknown command") : standard(name, meter, d),
    );
    s.source.start();
    await settle();
    expect(s.device.names()).toEqual(["get_meter_list", "get_device_info", ...POLLS]);
    expect(s.log.lines).toContain('warn get_current_price: the device answered "Unknown command"');
    s.clock.advance(30_000);
    await settle();
    expect(s.device.names().filter((n) => n === "get_current_price")).toHaveLength(2);
    // Logged once, not on every poll.
    expect(s.log.lines.filter((l) => l.includes("Unknown command"))).toHaveLength(1);
    expect(s.latest().power_net_w).toBe(1500);
  });

  it("a malformed reply fails its command at once, and a silent one after the command timeout", async () => {
    const s = setup({ command_timeout: 3 }, (name, meter, d) =>
      name === "get_device_info" ? "</DeviceInfo>" : name === "get_network_info" ? undefined : standard(name, meter, d),
    );
    s.source.start();
    await settle();
    // The stray </DeviceInfo> ended get_device_info without waiting; get_network_info now waits for its timeout.
    expect(s.device.names()).toEqual(["get_meter_list", "get_device_info", "get_network_info"]);
    expect(s.log.lines.some((l) => /get_device_info: malformed reply/.test(l))).toBe(true);
    s.clock.advance(2999);
    await settle();
    expect(s.device.names()).toHaveLength(3);
    s.clock.advance(1);
    await settle();
    expect(s.device.names().slice(3)).toEqual(POLLS.slice(1));
    expect(s.log.lines).toContain("warn get_network_info: no <NetworkInfo> within 3 s");
  });

  it("without summation, energy is integrated from demand and published as estimated", async () => {
    const s = setup(
      { demand_interval: 0, summation_interval: 60, price_interval: 0, timeout: 900 },
      (name, meter, d) =>
        name === "get_current_summation_delivered" ? warning("Unknown command") : standard(name, meter, d),
    );
    s.source.start();
    await settle();
    // One demand push every 5 minutes: 1 kW for an hour, then 2 kW exported for half an hour.
    const push = async (watts: number): Promise<void> => {
      s.device.send(instantaneousDemand(IDS, { time: s.clock.now(), watts }));
      await settle(2);
    };
    const wait = async (ms: number): Promise<void> => {
      for (let t = 0; t < ms; t += 10_000) {
        s.clock.advance(10_000);
        await settle(4);
      }
    };
    for (let i = 0; i < 12; i++) {
      await push(1000);
      await wait(300_000);
    }
    await push(1000);
    expect(s.latest().energy_import_estimated_kwh).toBeCloseTo(1, 6);
    expect(s.latest().energy_export_estimated_kwh).toBe(0);
    for (let i = 0; i < 7; i++) {
      await wait(300_000);
      await push(-2000);
    }
    // The ramp from +1 kW to −2 kW over one interval: the trapezoid books 1/24 kWh each way.
    expect(s.latest().energy_import_estimated_kwh).toBeCloseTo(1 + 1 / 24, 6);
    expect(s.latest().energy_export_estimated_kwh).toBeCloseTo(1 + 2 / 24, 6);
    expect(s.latest()).not.toHaveProperty("energy_import_kwh");
    expect(s.log.lines.filter((l) => l.includes("publishing energy estimated from demand"))).toHaveLength(1);
    // A gap longer than the limit (the device silent for an hour) adds nothing.
    const before = s.latest().energy_export_estimated_kwh as number;
    await wait(3_600_000);
    await push(-2000);
    expect(s.latest().energy_export_estimated_kwh).toBe(before);
  });

  it("with summation, no estimate is published", async () => {
    const s = setup();
    s.source.start();
    await settle();
    for (let i = 0; i < 360; i++) {
      s.clock.advance(10_000);
      await settle(4);
    }
    expect(s.device.names().filter((n) => n === "get_current_summation_delivered").length).toBeGreaterThan(50);
    expect(s.readings.some((r) => "energy_import_estimated_kwh" in r.values)).toBe(false);
    expect(s.latest().energy_import_kwh).toBe(12345.678);
  });

  it("reads the configured meter of several, and skips what the others send", async () => {
    const other = "FEDCBA0123456789";
    const s = setup({ meter_mac: `0x${other.toLowerCase()}` }, (name, meter, d) =>
      name === "get_meter_list" ? meterList(IDS.deviceMac, [IDS.meterMac, other]) : standard(name, meter, d),
    );
    s.source.start();
    await settle();
    expect(s.device.commands.find((c) => c.name === "get_instantaneous_demand")?.meter).toBe(other);
    // The standard answers name IDS.meterMac: not the meter being read.
    expect(s.readings.some((r) => "power_net_w" in r.values)).toBe(false);
    s.device.send(instantaneousDemand({ ...IDS, meterMac: other }, { time: s.clock.now(), watts: 42 }));
    await settle();
    expect(s.latest().power_net_w).toBe(42);
  });

  it("goes offline and reopens when nothing valid arrives for `timeout` s, then starts over", async () => {
    let answering = true;
    const s = setup({ timeout: 30, command_timeout: 5 }, (name, meter, d) =>
      answering ? standard(name, meter, d) : undefined,
    );
    s.source.start();
    await settle();
    answering = false;
    s.device.send("\u0000\u00ff garbage \u00ff");
    for (let i = 0; i < 6; i++) {
      s.clock.advance(5000);
      await settle();
    }
    expect(s.device.reopens.map((r) => r.reason)).toEqual(["no valid fragment for 30 s"]);
    expect(s.statuses.at(-1)!.online).toBe(false);
    // The new session starts over by looking for the meter.
    expect(s.device.names()[s.device.reopens[0]!.after]).toBe("get_meter_list");
    answering = true;
    for (let i = 0; i < 4; i++) {
      s.clock.advance(5000);
      await settle();
    }
    expect(s.statuses.at(-1)!.online).toBe(true);
    expect(s.latest().power_net_w).toBe(1500);
  });

  it("a lost connection fails what is pending; the reconnect starts a new session", async () => {
    const s = setup({}, (name, meter, d) => (name === "get_device_info" ? undefined : standard(name, meter, d)));
    s.source.start();
    await settle();
    expect(s.device.names()).toEqual(["get_meter_list", "get_device_info"]);
    s.device.lose();
    await settle();
    expect(s.statuses.at(-1)!.online).toBe(false);
    s.device.answer = standard;
    s.device.start();
    await settle();
    expect(s.device.names()).toEqual([
      "get_meter_list",
      "get_device_info",
      "get_meter_list",
      "get_device_info",
      ...POLLS,
    ]);
    // Nothing left over from the first session: no stray timeout fires later.
    s.clock.advance(10_000);
    await settle();
    expect(s.log.lines.filter((l) => l.includes("within"))).toEqual([]);
  });

  it("logs an unknown fragment once and goes on", async () => {
    const s = setup();
    s.source.start();
    await settle();
    for (let i = 0; i < 3; i++) s.device.send("<BillingPeriodList>\n  <A>1</A>\n</BillingPeriodList>\n");
    await settle();
    expect(s.log.lines.filter((l) => l.includes("<BillingPeriodList>"))).toHaveLength(1);
    expect(s.source.stats.framesRejected).toBe(0);
  });
});

describe("RavenSource on a capture file", () => {
  it("replays the fragments (no commands: a file cannot be written to) and finishes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "m2m-raven-"));
    try {
      const file = join(dir, "capture.xml");
      writeFileSync(
        file,
        Buffer.concat([
          Buffer.from("ff</CurrentSummationDelivered>\r\n"),
          instantaneousDemand(IDS, { time: T0, watts: 964 }),
          currentSummation(IDS, { time: T0 + 5000, importKwh: 113007.485, exportKwh: 0 }),
          instantaneousDemand(IDS, { time: T0 + 10_000, watts: -120 }),
        ]),
      );
      const bus = new Bus();
      const readings: Reading[] = [];
      bus.subscribe("t", "reading", (r) => void readings.push(r));
      const cfg = parseConfig({ meters: [{ id: "emu", type: "raven", port: `file:${file}`, replay_interval_ms: 0 }] });
      const source = (await createSource(cfg.meters[0]!, bus, { clock: new ManualClock(T0) })) as RavenSource;
      expect(source).toBeInstanceOf(RavenSource);
      source.start();
      await source.finished;
      await source.stop();
      await bus.idle();
      expect(readings.map((r) => [r.time, r.values.power_net_w, r.values.energy_import_kwh])).toEqual([
        [T0, 964, undefined],
        [T0 + 5000, 964, 113007.485],
        [T0 + 10_000, -120, 113007.485],
      ]);
      expect(source.stats).toMatchObject({ framesReceived: 3, framesRejected: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("estimated energy in the archive", () => {
  it("hourly kWh from the estimated counters, across a bridge restart, marked estimated", async () => {
    const dir = mkdtempSync(join(tmpdir(), "m2m-raven-archive-"));
    const path = join(dir, "archive.sqlite");
    const start = Date.UTC(2026, 10, 21, 10, 0, 30);
    const clock = new ManualClock(start);
    const archive = new Archive({ enabled: true, path, interval: 60 }, { clock, log: recorder().log });
    await archive.start();
    const noSummation: FakeDevice["answer"] = (name, meter, d) =>
      name === "get_current_summation_delivered" ? warning("Unknown command") : standard(name, meter, d);
    /** One bridge run: a demand push a minute at `watts` for `minutes`. */
    async function run(watts: number, minutes: number): Promise<void> {
      const bus = new Bus();
      bus.subscribe("archive", "reading", (r) => archive.add(r));
      const device = new FakeDevice(clock, noSummation);
      const meter = RavenMeterSchema.parse({
        id: "emu",
        type: "raven",
        port: "/dev/ttyACM0",
        demand_interval: 0,
        timeout: 300,
      });
      const src = new RavenSource(meter, bus, { clock, log: recorder().log, transport: device });
      src.start();
      await settle();
      for (let i = 0; i < minutes; i++) {
        device.send(instantaneousDemand(IDS, { time: clock.now(), watts }));
        await settle(2);
        clock.advance(60_000);
      }
      await src.stop();
      await bus.idle();
    }
    try {
      await run(1200, 120); // 10:00:30 … 11:59:30
      clock.advance(60_000);
      await run(600, 60); // restarted at 12:01:30, counters from 0 again
      await archive.flush();
      await archive.stop();
      const db = openArchiveReadOnly(path);
      const hourly = db.prepare(ESTIMATED_HOURLY_SQL).all();
      db.close();
      expect(hourly).toEqual([
        // 10:00:30 to 10:59:30 at 1.2 kW; then a full hour; the restart's first reading starts from 0.
        { meter_id: "emu", hour: "2026-11-21T10:00:00Z", import_kwh: 1.18, export_kwh: 0, quality: "estimated" },
        { meter_id: "emu", hour: "2026-11-21T11:00:00Z", import_kwh: 1.2, export_kwh: 0, quality: "estimated" },
        { meter_id: "emu", hour: "2026-11-21T12:00:00Z", import_kwh: 0.58, export_kwh: 0, quality: "estimated" },
        { meter_id: "emu", hour: "2026-11-21T13:00:00Z", import_kwh: 0.01, export_kwh: 0, quality: "estimated" },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("RAVEn configuration", () => {
  it("has defaults for the polls and timeouts", () => {
    const cfg = parseConfig({ meters: [{ id: "emu", type: "raven", port: "/dev/ttyACM0" }] });
    expect(cfg.meters[0]).toEqual({
      id: "emu",
      type: "raven",
      port: "/dev/ttyACM0",
      demand_interval: 10,
      summation_interval: 60,
      price_interval: 600,
      command_timeout: 5,
      timeout: 60,
      replay_interval_ms: 1000,
      replay_loop: false,
    });
  });

  it("names the key and what was expected", () => {
    const issues = (meter: Record<string, unknown>): string[] => {
      try {
        parseConfig({ meters: [{ id: "emu", type: "raven", port: "/dev/ttyACM0", ...meter }] });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).issues;
      }
      return [];
    };
    // ser2net and USB servers: tcp://host:port is a port like a device path.
    expect(issues({ port: "tcp://10.0.0.2:2000" })).toEqual([]);
    expect(issues({ port: "http://10.0.0.2:2000" })[0]).toMatch(
      /^meters\[0\]\.port: expected a serial device \(\/dev\/ttyACM0\), tcp:\/\/host:port/,
    );
    expect(issues({ meter_mac: "0x1234" })[0]).toMatch(/^meters\[0\]\.meter_mac: expected 16 hex digits/);
    expect(issues({ demand_interval: -1 })[0]).toMatch(/^meters\[0\]\.demand_interval/);
    expect(issues({ baud: 9600 })).toEqual(['meters[0]: unknown key "baud"']);
    expect(issues({ type: "emu2" })[0]).toMatch(/supported meter types \(dsmr, han, raven[,)]/);
  });
});
