import { execFileSync } from "node:child_process";
import { SerialPort } from "serialport";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DSMR_SERIAL, SerialTransport } from "../src/transports/index.js";
import { recordingLog } from "./helpers/log.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

/** The serial transport against a socat pseudo-terminal pair, through the real `serialport` package. */

const WAIT = { timeout: 15_000, interval: 20 };
const BACKOFF = { initialMs: 50, maxMs: 200 };
const TELEGRAM = "/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n!ABCD\r\n";

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function setup(): Promise<{
  pty: PtyPair;
  t: SerialTransport;
  rec: ReturnType<typeof recordingLog>;
  received: () => string;
  opens: () => number;
  closes: string[];
}> {
  const pty = await startPtyPair();
  cleanup.push(() => pty.stop());
  const rec = recordingLog();
  const t = new SerialTransport(pty.device, { log: rec.log, backoff: BACKOFF });
  cleanup.push(() => t.stop());
  let data = "";
  let opens = 0;
  const closes: string[] = [];
  t.on("data", (b) => {
    data += b.toString("latin1");
  });
  t.on("open", () => opens++);
  t.on("close", (r) => closes.push(r));
  return { pty, t, rec, received: () => data, opens: () => opens, closes };
}

/** Failed attempts as the transport reports them at debug level. */
const failedAttempts = (rec: ReturnType<typeof recordingLog>) =>
  rec.at("debug").filter((l) => / attempt \d+ failed/.test(l)).length;

describe("SerialTransport on a pty pair", () => {
  it("delivers bytes written at the meter end", async () => {
    const { pty, t, rec, received, opens } = await setup();
    expect(t.description).toBe(`${pty.device} (115200 8N1)`);
    t.start();
    await vi.waitFor(() => expect(t.isOpen).toBe(true), WAIT);
    await pty.write(TELEGRAM);
    await vi.waitFor(() => expect(received()).toBe(TELEGRAM), WAIT);
    expect(opens()).toBe(1);
    expect(rec.at("info")).toEqual([`${t.description} open`]);
    expect(rec.at("warn")).toEqual([]);
    await t.stop();
    expect(t.isOpen).toBe(false);
    await expectFree(pty.device);
  });

  it("survives the device vanishing: one 'close', one warn line across many retries, then back by itself", async () => {
    const { pty, t, rec, received, opens, closes } = await setup();
    t.start();
    await vi.waitFor(() => expect(t.isOpen).toBe(true), WAIT);
    await pty.write("before\r\n");
    await vi.waitFor(() => expect(received()).toBe("before\r\n"), WAIT);

    await pty.vanish();
    await vi.waitFor(() => expect(closes).toHaveLength(1), WAIT);
    expect(t.isOpen).toBe(false);
    // About two seconds of retries every ≤200 ms.
    await vi.waitFor(() => expect(failedAttempts(rec)).toBeGreaterThanOrEqual(10), WAIT);
    expect(closes).toHaveLength(1);
    expect(rec.at("warn")).toHaveLength(1);
    expect(rec.at("warn")[0]).toMatch(
      new RegExp(`^${escapeRe(t.description)} lost: .+; reconnecting \\(retrying every ≤0\\.2 s\\)$`),
    );

    await pty.reappear();
    await vi.waitFor(() => expect(opens()).toBe(2), WAIT);
    await pty.write("after\r\n");
    await vi.waitFor(() => expect(received()).toBe("before\r\nafter\r\n"), WAIT);
    expect(rec.at("warn")).toHaveLength(1);
    expect(closes).toHaveLength(1);
    const infos = rec.at("info");
    expect(infos).toHaveLength(2);
    expect(infos[1]).toMatch(new RegExp(`^${escapeRe(t.description)} back after \\d+ attempts / [\\d.]+ s$`));
  });

  it("waits for a device that is not there at start", async () => {
    const { pty, t, rec, received, closes } = await setup();
    await pty.vanish();
    t.start();
    await vi.waitFor(() => expect(failedAttempts(rec)).toBeGreaterThanOrEqual(3), WAIT);
    expect(rec.at("warn")).toEqual([
      `${t.description} cannot open: ${pty.device} not found (unplugged?); retrying every ≤0.2 s`,
    ]);
    expect(closes).toEqual([`${pty.device} not found (unplugged?)`]);
    await pty.reappear();
    await vi.waitFor(() => expect(t.isOpen).toBe(true), WAIT);
    expect(rec.at("info")[0]).toMatch(/ open after \d+ attempts /);
    await pty.write("x");
    await vi.waitFor(() => expect(received()).toBe("x"), WAIT);
  });

  it("stop() during retries resolves and no open happens afterwards", async () => {
    const { pty, t, rec, opens } = await setup();
    t.start();
    await vi.waitFor(() => expect(t.isOpen).toBe(true), WAIT);
    await pty.vanish();
    await vi.waitFor(() => expect(failedAttempts(rec)).toBeGreaterThanOrEqual(2), WAIT);
    await t.stop();
    const lines = rec.lines.length;
    await pty.reappear();
    // Absence can only be shown by waiting: several times the longest backoff.
    await new Promise((r) => setTimeout(r, 1000));
    expect(opens()).toBe(1);
    expect(t.isOpen).toBe(false);
    expect(rec.lines.slice(lines)).toEqual([]);
    await expectFree(pty.device);
  });

  it("setSettings reopens with the new settings, quietly", async () => {
    const { pty, t, rec, received, opens, closes } = await setup();
    t.start();
    await vi.waitFor(() => expect(opens()).toBe(1), WAIT);
    expect(lineSpeed(pty.device)).toBe(115200);
    t.setSettings(DSMR_SERIAL.legacy);
    expect(t.settings).toEqual({ baudRate: 9600, dataBits: 7, parity: "even", stopBits: 1 });
    expect(t.description).toBe(`${pty.device} (9600 7E1)`);
    await vi.waitFor(() => expect(opens()).toBe(2), WAIT);
    expect(t.isOpen).toBe(true);
    expect(closes).toEqual(["serial settings 115200 8N1 → 9600 7E1"]);
    // The device really got the new speed (a Linux pty keeps the speed but forces 8 bits without parity).
    expect(lineSpeed(pty.device)).toBe(9600);
    await pty.write("7E1\r\n");
    await vi.waitFor(() => expect(received()).toBe("7E1\r\n"), WAIT);
    expect(rec.at("warn")).toEqual([]);
    expect(rec.at("info")).toHaveLength(1);
  });

  it("a port held by another program: one warn line saying so, then opens once it is free", async () => {
    const { pty, t, rec, opens } = await setup();
    const holder = new SerialPort({ path: pty.device, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => holder.open((err) => (err ? reject(err) : resolve())));
    t.start();
    await vi.waitFor(() => expect(failedAttempts(rec)).toBeGreaterThanOrEqual(4), WAIT);
    expect(opens()).toBe(0);
    expect(rec.at("warn")).toHaveLength(1);
    expect(rec.at("warn")[0]).toContain(
      `cannot open: ${pty.device} is in use by another program — stop the other program`,
    );
    await new Promise<void>((resolve) => holder.close(() => resolve()));
    await vi.waitFor(() => expect(opens()).toBe(1), WAIT);
    expect(rec.at("info")[0]).toMatch(/ open after \d+ attempts /);
  });

  it("tells the user about the dialout group when the device may not be opened", () => {
    class Exposed extends SerialTransport {
      why(err: unknown) {
        return this.explain(err);
      }
    }
    const f = new Exposed("/dev/ttyUSB0").why(new Error("Error: Permission denied, cannot open /dev/ttyUSB0"));
    expect(f.kind).toBe("permission");
    expect(f.advice).toMatch(/"dialout" group/);
    expect(f.advice).toContain("--device /dev/ttyUSB0");
  });
});

/** The speed the tty driver holds for the device, as stty reads it. */
function lineSpeed(device: string): number {
  const out = execFileSync("stty", ["-F", device, "speed"], { encoding: "utf8" });
  return Number(out.trim());
}

/** The port was released: another program can open and lock it. */
async function expectFree(device: string): Promise<void> {
  const other = new SerialPort({ path: device, baudRate: 115200, autoOpen: false });
  await new Promise<void>((resolve, reject) => other.open((err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => other.close(() => resolve()));
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
