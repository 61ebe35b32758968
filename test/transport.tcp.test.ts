import net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTransport, parseTcpUrl, TcpTransport } from "../src/transports/index.js";
import { recordingLog } from "./helpers/log.js";

/** The TCP transport against a real local server standing in for a P1 dongle / ser2net. */

const WAIT = { timeout: 15_000, interval: 20 };

/** A dongle: remembers its connections; onConnection decides what each gets. */
class Dongle {
  server: net.Server | undefined;
  sockets: net.Socket[] = [];
  accepted = 0;
  constructor(public onConnection: (s: net.Socket) => void = () => {}) {}

  async listen(port = 0): Promise<number> {
    const server = net.createServer((s) => {
      this.accepted++;
      this.sockets.push(s);
      s.on("error", () => {});
      this.onConnection(s);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    return (server.address() as net.AddressInfo).port;
  }

  /** The dongle loses power: listener closed and every connection torn down. */
  async destroy(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets = [];
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

function track(t: TcpTransport) {
  cleanup.push(() => t.stop());
  const seen = { data: "", opens: 0, closes: [] as string[] };
  t.on("data", (b) => {
    seen.data += b.toString("latin1");
  });
  t.on("open", () => seen.opens++);
  t.on("close", (r) => seen.closes.push(r));
  return seen;
}

describe("TcpTransport", () => {
  it("parses tcp:// addresses and rejects malformed ones", () => {
    expect(parseTcpUrl("tcp://10.0.0.5:8088")).toEqual({ host: "10.0.0.5", port: 8088 });
    expect(parseTcpUrl("tcp://[::1]:23")).toEqual({ host: "::1", port: 23 });
    expect(createTransport("tcp://[::1]:23").description).toBe("tcp://[::1]:23");
    expect(() => createTransport("tcp://dongle")).toThrow(/expected tcp:\/\/host:port/);
    expect(() => createTransport("tcp://dongle:99999")).toThrow(/expected tcp:\/\/host:port/);
  });

  it("reconnects after the dongle goes away and comes back on the same port", async () => {
    const dongle = new Dongle((s) => s.write(`hello ${dongle.accepted}\r\n`));
    cleanup.push(() => dongle.destroy());
    const port = await dongle.listen();
    const rec = recordingLog();
    const t = new TcpTransport(`tcp://127.0.0.1:${port}`, { log: rec.log, backoff: { initialMs: 50, maxMs: 200 } });
    const seen = track(t);
    expect(t.description).toBe(`tcp://127.0.0.1:${port}`);
    t.start();
    await vi.waitFor(() => expect(seen.data).toBe("hello 1\r\n"), WAIT);
    expect(rec.at("info")).toEqual([`tcp://127.0.0.1:${port} open`]);

    await dongle.destroy();
    await vi.waitFor(() => expect(seen.closes).toHaveLength(1), WAIT);
    // Refused a few times while the port is closed.
    await vi.waitFor(
      () => expect(rec.at("debug").filter((l) => l.includes("connection refused")).length).toBeGreaterThanOrEqual(3),
      WAIT,
    );
    expect(rec.at("warn")).toEqual([
      `tcp://127.0.0.1:${port} lost: connection closed by the other end; reconnecting (retrying every ≤0.2 s)`,
    ]);
    expect(seen.closes).toEqual(["connection closed by the other end"]);

    await dongle.listen(port);
    await vi.waitFor(() => expect(seen.data).toBe("hello 1\r\nhello 2\r\n"), WAIT);
    expect(seen.opens).toBe(2);
    expect(rec.at("warn")).toHaveLength(1);
    expect(rec.at("info")[1]).toMatch(/ back after \d+ attempts \/ [\d.]+ s$/);
  });

  it("reopens a connection that stays up but silent, warning once", async () => {
    const dongle = new Dongle();
    cleanup.push(() => dongle.destroy());
    const port = await dongle.listen();
    const rec = recordingLog();
    const t = new TcpTransport(`tcp://127.0.0.1:${port}`, {
      log: rec.log,
      backoff: { initialMs: 50, maxMs: 200 },
      idleTimeoutMs: 300,
    });
    const seen = track(t);
    t.start();
    await vi.waitFor(() => expect(dongle.accepted).toBeGreaterThanOrEqual(3), WAIT);
    expect(seen.closes.slice(0, 2)).toEqual(["no data for 0.3 s", "no data for 0.3 s"]);
    expect(rec.at("warn")).toEqual([`tcp://127.0.0.1:${port} reopening: no data for 0.3 s`]);
    // The old connections were really closed, not left behind.
    await vi.waitFor(() => expect(dongle.sockets.filter((s) => !s.closed).length).toBeLessThanOrEqual(1), WAIT);

    // The dongle starts talking on the newest connection (and every later one).
    dongle.onConnection = (s) => s.write("tick");
    for (const s of dongle.sockets) if (!s.closed) s.write("tick");
    await vi.waitFor(() => expect(seen.data.length).toBeGreaterThan(0), WAIT);
    expect(rec.at("info")).toHaveLength(2);
    expect(rec.at("info")[1]).toMatch(/ receiving data again after \d+ reopens? \/ [\d.]+ s$/);
  });

  it("does not hammer a peer that accepts and hangs up at once", async () => {
    const dongle = new Dongle((s) => s.end());
    cleanup.push(() => dongle.destroy());
    const port = await dongle.listen();
    const rec = recordingLog();
    const t = new TcpTransport(`tcp://127.0.0.1:${port}`, { log: rec.log, backoff: { initialMs: 50, maxMs: 400 } });
    const seen = track(t);
    const started = Date.now();
    t.start();
    await vi.waitFor(() => expect(dongle.accepted).toBeGreaterThanOrEqual(5), WAIT);
    // Four waits of at least 0.8 × 50, 100, 200, 400 ms lie between the first and the fifth connection.
    expect(Date.now() - started).toBeGreaterThanOrEqual(0.8 * (50 + 100 + 200 + 400));
    expect(rec.at("warn")).toHaveLength(1);
    // The fifth connection may still be closing on our side when the server has counted it.
    await t.stop();
    expect(seen.closes.length).toBeGreaterThanOrEqual(seen.opens);
  });

  it("stop() while connected closes the connection and resolves promptly", async () => {
    const dongle = new Dongle();
    cleanup.push(() => dongle.destroy());
    const port = await dongle.listen();
    const t = new TcpTransport(`tcp://127.0.0.1:${port}`, { log: recordingLog().log });
    const seen = track(t);
    t.start();
    await vi.waitFor(() => expect(t.isOpen).toBe(true), WAIT);
    const before = Date.now();
    await t.stop();
    expect(Date.now() - before).toBeLessThan(1000);
    expect(seen.closes).toEqual(["stopped"]);
    await vi.waitFor(() => expect(dongle.sockets[0]!.closed).toBe(true), WAIT);
    expect(dongle.accepted).toBe(1);
  });
});
