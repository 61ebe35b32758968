import { afterEach, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { DsmrMeterSchema } from "../src/config/schema.js";
import type { Reading, SourceStatus } from "../src/model/types.js";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { DsmrSource } from "../src/sources/dsmr/index.js";
import { SerialTransport } from "../src/transports/index.js";
import { recordingLog } from "./helpers/log.js";
import { until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

describe("DsmrSource on a pseudo-terminal", () => {
  let pty: PtyPair | undefined;
  let source: DsmrSource | undefined;
  afterEach(async () => {
    await source?.stop();
    await pty?.stop();
  });

  it("baud auto: switches to 9600 7E1 when nothing valid arrives, back again, and stays once a telegram passes", async () => {
    pty = await startPtyPair();
    const bus = new Bus();
    const readings: Reading[] = [];
    bus.subscribe("t", "reading", (r) => void readings.push(r));
    const log = recordingLog();
    const cfg = DsmrMeterSchema.parse({ id: "p1", type: "dsmr", port: pty.device, baud: "auto" });
    source = new DsmrSource(cfg, bus, { log: log.log, autoBaudWindowMs: 400 });
    source.start();
    const transport = (source as unknown as { transport: SerialTransport }).transport;
    expect(transport).toBeInstanceOf(SerialTransport);
    await until(() => transport.isOpen, 5000, "open");
    // 7E1 bytes read as 8N1 look like this: high bits set, never a valid frame.
    await pty.write(Buffer.from([0xaf, 0xc9, 0x53, 0xeb, 0x35, 0x0d, 0x8a]));
    await until(() => transport.settings.baudRate === 9600, 5000, "switch to 9600");
    expect(transport.settings).toMatchObject({ dataBits: 7, parity: "even" });
    await until(() => transport.settings.baudRate === 115200, 5000, "switch back to 115200");
    await until(() => transport.isOpen, 5000, "reopened");
    const t = dsmr5Telegram(simulate(Date.UTC(2026, 10, 21, 9), 1)[0]!);
    const deadline = Date.now() + 10_000;
    while (readings.length === 0 && Date.now() < deadline) {
      await pty.write(t);
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(readings.length).toBeGreaterThan(0);
    const baud = transport.settings.baudRate;
    await new Promise((r) => setTimeout(r, 1000));
    expect(transport.settings.baudRate).toBe(baud);
    expect(log.at("info").filter((l) => l.includes("no valid telegram yet")).length).toBeGreaterThanOrEqual(2);
  }, 30_000);

  it("counts rejected telegrams in its status and marks the meter offline when valid telegrams stop", async () => {
    pty = await startPtyPair();
    const bus = new Bus();
    const statuses: SourceStatus[] = [];
    bus.subscribe("t", "status", (s) => void statuses.push(s));
    const cfg = DsmrMeterSchema.parse({ id: "p1", type: "dsmr", port: pty.device, baud: 115200, timeout: 1 });
    source = new DsmrSource(cfg, bus, { log: recordingLog().log });
    source.start();
    const states = simulate(Date.UTC(2026, 10, 21, 9), 2);
    const good = dsmr5Telegram(states[0]!);
    const bad = Buffer.from(dsmr5Telegram(states[1]!));
    bad[50] = bad[50]! ^ 0x01;
    const transport = (source as unknown as { transport: SerialTransport }).transport;
    await until(() => transport.isOpen, 5000, "open");
    await pty.write(Buffer.concat([good, bad]));
    await until(() => statuses.some((s) => s.framesRejected === 1), 5000, "a rejection in the status");
    expect(statuses.find((s) => s.online)?.framesReceived).toBe(1);
    // Garbage keeps bytes flowing, but no valid telegram for 1 s: offline.
    const garbage = setInterval(() => void pty!.write("noise\r\n").catch(() => {}), 100);
    try {
      await until(() => statuses.at(-1)?.online === false, 5000, "offline after the watchdog");
    } finally {
      clearInterval(garbage);
    }
  }, 20_000);
});
