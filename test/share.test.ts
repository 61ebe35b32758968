/**
 * `meters[].share`: the meter's raw bytes served over TCP. Two readers get every byte exactly as the meter sent it
 * while a third stalls and is dropped; the meter's own readings never wait for any of them.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { DsmrMeterSchema } from "../src/config/schema.js";
import type { Reading } from "../src/model/types.js";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { DsmrSource } from "../src/sources/dsmr/index.js";
import { ShareServer } from "../src/sources/share.js";
import type { SerialTransport } from "../src/transports/index.js";
import { recordingLog } from "./helpers/log.js";
import { freePort, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

function reader(port: number): Promise<{ sock: net.Socket; bytes: () => Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host: "127.0.0.1", port }, () => resolve({ sock, bytes: () => Buffer.concat(chunks) }));
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.once("error", reject);
  });
}

describe("sharing a meter's raw data over TCP", () => {
  let pty: PtyPair | undefined;
  let source: DsmrSource | undefined;
  afterEach(async () => {
    await source?.stop();
    await pty?.stop();
  });

  it("two readers get every byte as sent while a third that stalls is dropped, and no reading is lost", async () => {
    pty = await startPtyPair();
    const port = await freePort();
    const bus = new Bus();
    const readings: Reading[] = [];
    bus.subscribe("t", "reading", (r) => void readings.push(r));
    const log = recordingLog();
    const cfg = DsmrMeterSchema.parse({ id: "p1", type: "dsmr", port: pty.device, baud: 115200, share: { port } });
    source = new DsmrSource(cfg, bus, { log: log.log });
    source.start();
    const transport = (source as unknown as { transport: SerialTransport }).transport;
    await until(() => transport.isOpen, 5000, "open");
    await until(() => log.at("info").some((l) => l.startsWith("sharing the meter's raw data")), 5000, "listening");
    const a = await reader(port);
    const b = await reader(port);
    const stalled = await reader(port);
    stalled.sock.pause();

    const telegrams = simulate(Date.UTC(2026, 10, 21, 9), 8000, 1).map((s) => dsmr5Telegram(s));
    // About 7 MB: more than the stalled reader's socket buffers on both ends hold before the bridge notices.
    const sent = Buffer.concat([Buffer.from([0xff, 0x00, 0x13]), ...telegrams]);
    for (let i = 0; i < sent.length; i += 64 * 1024) await pty.write(sent.subarray(i, i + 64 * 1024));
    await until(() => readings.length === telegrams.length, 30_000, "every telegram read");
    await until(() => a.bytes().length >= sent.length && b.bytes().length >= sent.length, 30_000, "both readers");
    expect(a.bytes().equals(sent)).toBe(true);
    expect(b.bytes().equals(sent)).toBe(true);
    expect(log.at("warn").filter((l) => /does not keep up with the meter; disconnected/.test(l))).toHaveLength(1);
    const share = (source as unknown as { share: ShareServer }).share;
    expect(share.clientCount).toBe(2);
    stalled.sock.destroy();
    a.sock.destroy();
    b.sock.destroy();
  }, 60_000);

  it("never waits for a reader: writing to one that takes nothing returns at once", async () => {
    const port = await freePort();
    const log = recordingLog();
    const share = new ShareServer({ port, host: "127.0.0.1", maxClients: 2, maxBufferBytes: 64 * 1024 }, log.log);
    await share.start();
    const r = await reader(port);
    r.sock.pause();
    await until(() => share.clientCount === 1, 2000, "connected");
    const chunk = Buffer.alloc(16 * 1024, 0x41);
    const t0 = performance.now();
    for (let i = 0; i < 2000 && share.clientCount > 0; i++) share.write(chunk);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(share.clientCount).toBe(0);
    // A third reader beyond max_clients is refused.
    const x = await reader(port);
    const y = await reader(port);
    const z = await reader(port).catch(() => undefined);
    await new Promise((res) => setTimeout(res, 200));
    expect(share.clientCount).toBeLessThanOrEqual(2);
    for (const s of [x, y, z]) s?.sock.destroy();
    await share.stop();
  });
});
