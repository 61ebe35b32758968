/**
 * The HAN source: a capture replayed from a file (raw bytes, or hex text as captures are shared) and a
 * pseudo-terminal with baud auto, through to readings, the meter's identity and the frame counters on the bus.
 */

import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { ConfigSchema, HanMeterSchema, secretsOf } from "../src/config/schema.js";
import type { MeterInfo, Reading, SourceStatus } from "../src/model/types.js";
import {
  aidonFrames,
  dataNotification,
  enumOf,
  hdlcMessage,
  i8,
  obis,
  simulateHan,
  structure,
  u32,
} from "../src/sources/han/build.js";
import { splitCapture } from "../src/sources/han/capture.js";
import { HAN_SERIAL, HanSource, hanSerial } from "../src/sources/han/index.js";
import { SerialTransport, type Transport, type TransportEvents } from "../src/transports/index.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";
import { freePort, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const dir = mkdtempSync(join(tmpdir(), "m2m-han-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const states = simulateHan(Date.UTC(2026, 1, 2, 7, 0, 0), 5, 10);
const KEY = "00112233445566778899aabbccddeeff";

function listen(bus: Bus) {
  const readings: Reading[] = [];
  const infos: MeterInfo[] = [];
  const status: SourceStatus[] = [];
  bus.subscribe("t", "reading", (r) => void readings.push(r));
  bus.subscribe("t", "meterInfo", (i) => void infos.push(i));
  bus.subscribe("t", "status", (s) => void status.push(s));
  const frames: { ok: boolean; raw?: string }[] = [];
  bus.subscribe("t", "frame", (f) => void frames.push(f));
  return { readings, infos, status, frames };
}

async function replay(file: string, extra: Record<string, unknown> = {}) {
  const bus = new Bus();
  const got = listen(bus);
  const log = recordingLog();
  const cfg = HanMeterSchema.parse({ id: "han", type: "han", port: `file:${file}`, replay_interval_ms: 0, ...extra });
  const source = new HanSource(cfg, bus, { log: log.log });
  source.start();
  await source.finished;
  await source.stop();
  await new Promise((r) => setTimeout(r, 20));
  return { ...got, log, stats: source.stats };
}

describe("HanSource replaying a capture", () => {
  const frames = states.map((s, i) => aidonFrames(s, { maxInfo: i % 2 ? 90 : undefined }));

  it("raw bytes: every message a reading at the meter's time, the identity once", async () => {
    const file = join(dir, "raw.bin");
    writeFileSync(file, Buffer.concat([Buffer.from([0x00, 0x7e, 0x55]), ...frames]));
    const r = await replay(file);
    expect(r.readings.map((x) => x.time)).toEqual(states.map((s) => s.time));
    expect(r.readings[0]!.values.power_import_w).toBe(states[0]!.phaseImportW.reduce((a, b) => a + b, 0));
    expect(r.infos).toEqual([
      {
        meterId: "han",
        manufacturer: "Aidon",
        model: "6534",
        serialNumber: "7359992890941742",
        swVersion: "AIDON_V0001",
      },
    ]);
    expect(r.stats.framesReceived).toBe(states.length);
    // The web page's "last frame as received": the APDU in hex.
    expect(r.frames.filter((f) => f.ok)).toHaveLength(states.length);
    expect(r.frames[0]!.raw).toMatch(/^0f 40 00 00 00 00 01 /);
  });

  it("hex text, as captures are shared, reads the same", async () => {
    const file = join(dir, "hex.txt");
    const hex = frames
      .map((f) =>
        f
          .toString("hex")
          .replace(/(..)/g, "$1 ")
          .replace(/(.{48})/g, "$1\n"),
      )
      .join("\n");
    writeFileSync(file, hex);
    const r = await replay(file);
    expect(r.readings.map((x) => x.time)).toEqual(states.map((s) => s.time));
  });

  it("paces a capture one message per piece, segments kept together", () => {
    const whole = Buffer.concat(frames);
    const pieces = splitCapture(whole);
    expect(pieces).toHaveLength(states.length);
    expect(Buffer.concat(pieces)).toEqual(whole);
  });

  it("encrypted frames without a key: one error naming the key, every frame counted as rejected", async () => {
    const file = join(dir, "enc.bin");
    const key = Buffer.from(KEY, "hex");
    writeFileSync(file, Buffer.concat(states.map((s, i) => aidonFrames(s, { glo: { key, counter: i + 1 } }))));
    const none = await replay(file);
    expect(none.readings).toEqual([]);
    expect(none.stats.framesRejected).toBe(states.length);
    const errors = none.log.at("error");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/encrypted.*key/);
    const keyed = await replay(file, { key: KEY.toUpperCase() });
    expect(keyed.readings).toHaveLength(states.length);
    expect(keyed.log.lines.map((l) => l.text).join("\n")).not.toContain(KEY);
  });
});

describe("configuration", () => {
  it("line settings: 2400 8E1 by default at 2400, 8N1 elsewhere, parity as set", () => {
    const p = (o: Record<string, unknown>) =>
      hanSerial(HanMeterSchema.parse({ id: "h", type: "han", port: "/dev/x", ...o }));
    expect(p({ baud: 2400 })).toEqual({ baudRate: 2400, dataBits: 8, parity: "even", stopBits: 1 });
    expect(p({ baud: 2400, parity: "none" })).toMatchObject({ parity: "none" });
    expect(p({ baud: 115200 })).toMatchObject({ baudRate: 115200, parity: "none" });
    expect(p({})).toEqual(HAN_SERIAL[0]);
  });

  it("keys are normalised, checked and secret; a HAN meter may drive loads", () => {
    const cfg = ConfigSchema.parse({
      meters: [{ id: "home", type: "han", port: "/dev/ttyUSB0", key: `0x${KEY.toUpperCase()}`, aad: KEY }],
      loads: [{ id: "boiler", meter: "home", power_w: 2000 }],
    });
    const m = cfg.meters[0]!;
    expect(m.type === "han" && m.key).toBe(KEY);
    expect(secretsOf(cfg)).toContain(KEY);
    const bad = ConfigSchema.safeParse({ meters: [{ id: "h", type: "han", port: "/dev/x", key: "1234" }] });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues[0]?.path)).toBe('["meters",0,"key"]');
    const zone = ConfigSchema.safeParse({ meters: [{ id: "h", type: "han", port: "/dev/x", timezone: "Oslo" }] });
    expect(zone.success).toBe(false);
  });
});

describe("HanSource on a pseudo-terminal", () => {
  let pty: PtyPair | undefined;
  let source: HanSource | undefined;
  afterEach(async () => {
    await source?.stop();
    await pty?.stop();
  });

  it("baud auto: tries the HAN line settings in turn and stays once a frame passes", async () => {
    pty = await startPtyPair();
    const bus = new Bus();
    const got = listen(bus);
    const log = recordingLog();
    source = new HanSource(HanMeterSchema.parse({ id: "h", type: "han", port: pty.device }), bus, {
      log: log.log,
      autoBaudWindowMs: 300,
    });
    source.start();
    const transport = (source as unknown as { transport: SerialTransport }).transport;
    expect(transport).toBeInstanceOf(SerialTransport);
    expect(transport.settings).toMatchObject({ baudRate: 2400, parity: "even" });
    await until(() => transport.settings.parity === "none" && transport.settings.baudRate === 2400, 5000, "2400 8N1");
    await until(() => transport.settings.baudRate === 115200, 5000, "115200");
    await until(() => transport.isOpen, 5000, "reopened");
    const deadline = Date.now() + 10_000;
    while (got.readings.length === 0 && Date.now() < deadline) {
      await pty.write(aidonFrames(states[0]!));
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(got.readings.length).toBeGreaterThan(0);
    const settings = transport.settings;
    await new Promise((r) => setTimeout(r, 800));
    expect(transport.settings).toEqual(settings);
    expect(log.at("info").some((l) => l.startsWith("frames found at"))).toBe(true);
  }, 30_000);
});

/** A port that the test feeds by hand, on a clock the test moves. */
class HandFed extends EventEmitter<TransportEvents> implements Transport {
  readonly description = "hand-fed";
  isOpen = false;
  start(): void {
    this.isOpen = true;
    this.emit("open");
  }
  async stop(): Promise<void> {
    this.isOpen = false;
  }
  reopen(): void {}
}

describe("HanSource on a live port: whose time a reading gets", () => {
  const power = Buffer.concat(
    hdlcMessage(dataNotification(structure(structure(obis("1-0:1.7.0"), u32(800), structure(i8(0), enumOf(27)))))),
  );

  it("the meter's clock within a day of ours; receipt time without a clock, or with one far off; never backwards", async () => {
    const now = Date.UTC(2026, 4, 5, 10, 0, 0);
    const clock = new ManualClock(now);
    const port = new HandFed();
    const bus = new Bus();
    const got = listen(bus);
    const log = recordingLog();
    const cfg = HanMeterSchema.parse({ id: "h", type: "han", port: "/dev/ttyUSB0" });
    const source = new HanSource(cfg, bus, { clock, log: log.log, transport: port });
    source.start();
    const [a, b, c] = simulateHan(now - 5000, 3, 2);
    port.emit("data", aidonFrames(a!)); // the meter's clock 5 s behind ours: believed
    clock.advance(1000);
    port.emit("data", power); // no clock: receipt time
    clock.advance(1000);
    port.emit("data", aidonFrames(b!)); // 3 s behind: believed, but never before the reading before it
    const farOff = simulateHan(now - 3 * 86_400_000, 1)[0]!;
    clock.advance(1000);
    port.emit("data", aidonFrames(farOff));
    clock.advance(1000);
    port.emit("data", aidonFrames({ ...c!, time: now - 2 * 86_400_000 }));
    await source.stop();
    await new Promise((r) => setTimeout(r, 20));
    expect(got.readings.map((r) => r.time - now)).toEqual([-5000, 1000, 1000, 3000, 4000]);
    expect(log.at("warn").filter((l) => l.includes("more than a day off"))).toHaveLength(1);
  });
});

describe("share", () => {
  it("serves the port's raw bytes, as they arrive, to a TCP reader", async () => {
    const port = await freePort();
    const fed = new HandFed();
    const cfg = HanMeterSchema.parse({ id: "h", type: "han", port: "/dev/ttyUSB0", share: { port } });
    const source = new HanSource(cfg, new Bus(), { log: recordingLog().log, transport: fed });
    source.start();
    const got: Buffer[] = [];
    const sock = await (async () => {
      for (let i = 0; ; i++) {
        try {
          return await new Promise<ReturnType<typeof connect>>((resolve, reject) => {
            const s = connect(port, "127.0.0.1", () => resolve(s));
            s.once("error", reject);
          });
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    sock.on("data", (d: Buffer) => void got.push(d));
    await new Promise((r) => setTimeout(r, 100));
    const bytes = aidonFrames(states[0]!);
    fed.emit("data", bytes.subarray(0, 100));
    fed.emit("data", bytes.subarray(100));
    await until(() => Buffer.concat(got).length >= bytes.length, 5000, "the shared bytes");
    expect(Buffer.concat(got)).toEqual(bytes);
    sock.destroy();
    await source.stop();
  });
});
