import { describe, expect, it } from "vitest";
import { BaseTransport, type Connection, type Failure, type Link } from "../src/transports/index.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";

/** The reconnect and logging policy, driven by a ManualClock and a transport whose attempts the test scripts. */

type Behaviour = (link: Link, n: number) => void;

class Scripted extends BaseTransport {
  links: Link[] = [];
  attemptTimes: number[] = [];
  closes = 0;
  behaviour: Behaviour = (link) =>
    link.failed(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));

  get description(): string {
    return "fake://meter";
  }
  protected override connect(link: Link): Connection {
    this.links.push(link);
    this.attemptTimes.push(this.clock.now());
    this.behaviour(link, this.links.length);
    return {
      close: async () => {
        this.closes++;
      },
    };
  }
  protected override explain(err: unknown): Failure {
    if ((err as { code?: string }).code === "EACCES")
      return { reason: "permission denied", kind: "permission", advice: "join the dialout group" };
    return super.explain(err);
  }
}

/** Lets the transport's promise chain (an attempt waits for earlier handles to be released) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

async function advance(clock: ManualClock, ms: number, step = 1): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    clock.advance(Math.min(step, ms - done));
    await settle();
  }
}

function setup(opts: { idleTimeoutMs?: number } = {}) {
  const clock = new ManualClock(1_000_000);
  const rec = recordingLog();
  const t = new Scripted({ clock, log: rec.log, backoff: { initialMs: 100, maxMs: 800 }, ...opts });
  const events: string[] = [];
  t.on("open", () => events.push("open"));
  t.on("close", (r) => events.push(`close:${r}`));
  t.on("data", (b) => events.push(`data:${b.toString()}`));
  return { clock, rec, t, events };
}

describe("BaseTransport policy", () => {
  it("retries with doubling delays, shortened by at most a fifth, capped at maxMs", async () => {
    const { clock, t } = setup();
    t.start();
    await settle();
    await advance(clock, 6000);
    const gaps = t.attemptTimes.slice(1).map((at, i) => at - t.attemptTimes[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(8);
    gaps.forEach((gap, i) => {
      const full = Math.min(800, 100 * 2 ** i);
      expect(gap).toBeLessThanOrEqual(full);
      expect(gap).toBeGreaterThanOrEqual(Math.floor(full * 0.8));
    });
    await t.stop();
  });

  it("logs one warn line for a whole outage, one info line when back, and emits one 'close'", async () => {
    const { clock, rec, t, events } = setup();
    t.behaviour = (link, n) => {
      if (n === 1) link.opened();
      else if (n >= 9) {
        link.opened();
        link.data(Buffer.from("P1"));
      } else link.failed(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
    };
    t.start();
    await settle();
    expect(rec.at("info")).toEqual(["fake://meter open"]);
    t.links[0]!.failed(new Error("read ECONNRESET"));
    await advance(clock, 6000);
    expect(t.links.length).toBe(9);
    expect(rec.at("warn")).toEqual(["fake://meter lost: read ECONNRESET; reconnecting (retrying every ≤0.8 s)"]);
    expect(rec.at("info")).toHaveLength(2);
    expect(rec.at("info")[1]).toMatch(/^fake:\/\/meter back after 8 attempts \/ \d+(\.\d+)? s$/);
    expect(events).toEqual(["open", "close:read ECONNRESET", "open", "data:P1"]);
    expect(t.closes).toBe(8);
    await t.stop();
  });

  it("says once what to do about a failure retrying will not fix, and emits 'close' when it cannot open at start", async () => {
    const { clock, rec, t, events } = setup();
    t.behaviour = (link, n) => {
      if (n <= 3) link.failed(Object.assign(new Error("ENOENT"), { code: "ENOENT" }));
      else if (n <= 7) link.failed(Object.assign(new Error("EACCES"), { code: "EACCES" }));
      else link.opened();
    };
    t.start();
    await settle();
    await advance(clock, 6000);
    expect(rec.at("warn")).toEqual([
      "fake://meter cannot open: ENOENT; retrying every ≤0.8 s",
      "fake://meter cannot open: permission denied — join the dialout group; still retrying every ≤0.8 s",
    ]);
    expect(rec.at("info")).toHaveLength(1);
    expect(rec.at("info")[0]).toMatch(/^fake:\/\/meter open after 8 attempts/);
    expect(events).toEqual(["close:ENOENT", "open"]);
    await t.stop();
  });

  it("stop() cancels pending retries and is idempotent", async () => {
    const { clock, t } = setup();
    t.start();
    await settle();
    await advance(clock, 500);
    const before = t.links.length;
    expect(before).toBeGreaterThanOrEqual(2);
    await t.stop();
    await t.stop();
    await advance(clock, 5000, 50);
    expect(t.links.length).toBe(before);
    expect(t.isOpen).toBe(false);
  });

  it("a listener that stops the transport on 'close' prevents the retry", async () => {
    const { clock, t } = setup();
    t.behaviour = (link) => link.opened();
    t.on("close", () => void t.stop());
    t.start();
    await settle();
    t.links[0]!.failed(new Error("gone"));
    await advance(clock, 3000, 50);
    expect(t.links).toHaveLength(1);
  });

  it("backs off against a peer that accepts and hangs up at once; data resets the backoff", async () => {
    const { clock, rec, t } = setup();
    t.behaviour = (link) => {
      link.opened();
      link.failed(new Error("connection closed by the other end"));
    };
    t.start();
    await settle();
    await advance(clock, 3000);
    const gaps = t.attemptTimes.slice(1).map((at, i) => at - t.attemptTimes[i]!);
    expect(gaps.slice(0, 4).every((g, i) => g >= 0.8 * 100 * 2 ** i)).toBe(true);
    // Every connection opened, yet none brought data: one outage, so one warn line and no "back".
    expect(rec.at("warn")).toEqual([
      "fake://meter lost: connection closed by the other end; reconnecting (retrying every ≤0.8 s)",
    ]);
    expect(rec.at("info")).toEqual(["fake://meter open"]);
    // A connection that delivers bytes is healthy: the next loss starts again from initialMs.
    t.behaviour = (link) => link.opened();
    await advance(clock, 800);
    const n = t.links.length;
    t.links[n - 1]!.data(Buffer.from("x"));
    t.links[n - 1]!.failed(new Error("reset"));
    const lostAt = clock.now();
    await advance(clock, 100);
    expect(t.links.length).toBe(n + 1);
    expect(t.attemptTimes[n]! - lostAt).toBeLessThanOrEqual(100);
    await t.stop();
  });

  it("reopen(reason) warns once however often it repeats, and reports when data flows again", async () => {
    const { clock, rec, t, events } = setup();
    t.behaviour = (link) => link.opened();
    t.start();
    await settle();
    t.reopen("no telegram for 30 s");
    await settle();
    t.reopen("no telegram for 30 s");
    await settle();
    t.reopen("no telegram for 30 s");
    await settle();
    expect(t.links).toHaveLength(4);
    expect(t.closes).toBe(3);
    expect(rec.at("warn")).toEqual(["fake://meter reopening: no telegram for 30 s"]);
    clock.advance(2500);
    t.links[3]!.data(Buffer.from("/ISK5"));
    expect(rec.at("info")).toEqual(["fake://meter open", "fake://meter receiving data again after 3 reopens / 2.5 s"]);
    expect(events).toEqual([
      "open",
      "close:no telegram for 30 s",
      "open",
      "close:no telegram for 30 s",
      "open",
      "close:no telegram for 30 s",
      "open",
      "data:/ISK5",
    ]);
    // Late events from handles already replaced are ignored.
    t.links[0]!.data(Buffer.from("stale"));
    t.links[1]!.failed(new Error("stale"));
    expect(events.at(-1)).toBe("data:/ISK5");
    expect(t.isOpen).toBe(true);
    await t.stop();
  });

  it("idle timeout: data postpones it; silence for the whole period reopens", async () => {
    const { clock, rec, t, events } = setup({ idleTimeoutMs: 5000 });
    t.behaviour = (link) => link.opened();
    t.start();
    await settle();
    clock.advance(4000);
    t.links[0]!.data(Buffer.from("a"));
    clock.advance(4000);
    await settle();
    expect(t.links).toHaveLength(1);
    clock.advance(1000);
    await settle();
    expect(t.links).toHaveLength(2);
    expect(events).toEqual(["open", "data:a", "close:no data for 5 s", "open"]);
    expect(rec.at("warn")).toEqual(["fake://meter reopening: no data for 5 s"]);
    // Still silent: reopened again without another warn line.
    clock.advance(5000);
    await settle();
    expect(t.links).toHaveLength(3);
    expect(rec.at("warn")).toHaveLength(1);
    await t.stop();
  });

  it("rejects a backoff that would spin", () => {
    expect(() => new Scripted({ backoff: { initialMs: 0, maxMs: 10 } })).toThrow(/backoff/);
    expect(() => new Scripted({ backoff: { initialMs: 100, maxMs: 10 } })).toThrow(/backoff/);
  });
});
