import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createTransport, FileTransport, type Transport } from "../src/transports/index.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";

/** File replay with a ManualClock for the intervals; the file itself is read for real. */

const WAIT = { timeout: 10_000, interval: 10 };
const lines = (whole: Buffer): Buffer[] => {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = whole.indexOf(10); i !== -1; i = whole.indexOf(10, start)) {
    out.push(whole.subarray(start, i + 1));
    start = i + 1;
  }
  if (start < whole.length) out.push(whole.subarray(start));
  return out;
};
const settle = () => new Promise<void>((r) => setImmediate(r));

let dir: string;
let transports: Transport[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "meter2mqtt-file-"));
});
afterEach(async () => {
  for (const t of transports) await t.stop();
  transports = [];
  await rm(dir, { recursive: true, force: true });
});

function track(t: Transport) {
  transports.push(t);
  const events: string[] = [];
  t.on("open", () => events.push("open"));
  t.on("data", (b) => events.push(b.toString()));
  t.on("close", (r) => events.push(`close:${r}`));
  t.on("end", () => events.push("end"));
  return events;
}

describe("FileTransport", () => {
  it("emits the pieces in order, one per interval, then 'end'", async () => {
    const path = join(dir, "capture.txt");
    await writeFile(path, "one\ntwo\nthree\n");
    const clock = new ManualClock();
    const t = createTransport(`file:${path}`, {
      clock,
      log: recordingLog().log,
      replay: { intervalMs: 1000, loop: false, split: lines },
    });
    expect(t).toBeInstanceOf(FileTransport);
    expect(t.description).toBe(`file:${path}`);
    const events = track(t);
    t.start();
    await vi.waitFor(() => expect(events).toEqual(["open", "one\n"]), WAIT);
    expect(t.isOpen).toBe(true);
    clock.advance(999);
    await settle();
    expect(events).toEqual(["open", "one\n"]);
    clock.advance(1);
    expect(events).toEqual(["open", "one\n", "two\n"]);
    clock.advance(1000);
    expect(events).toEqual(["open", "one\n", "two\n", "three\n"]);
    // 'end' follows the last piece without another interval.
    await vi.waitFor(() => expect(events.at(-1)).toBe("end"), WAIT);
    expect(events).toEqual(["open", "one\n", "two\n", "three\n", "end"]);
    expect(t.isOpen).toBe(false);
    clock.advance(10_000);
    await settle();
    expect(events).toHaveLength(5);
  });

  it("loops without 'end'", async () => {
    const path = join(dir, "capture.txt");
    await writeFile(path, "a\nb\n");
    const clock = new ManualClock();
    const t = createTransport(`file:${path}`, {
      clock,
      log: recordingLog().log,
      replay: { intervalMs: 100, loop: true, split: lines },
    });
    const events = track(t);
    t.start();
    await vi.waitFor(() => expect(events).toEqual(["open", "a\n"]), WAIT);
    clock.advance(500);
    expect(events).toEqual(["open", "a\n", "b\n", "a\n", "b\n", "a\n", "b\n"]);
    expect(t.isOpen).toBe(true);
    await t.stop();
    clock.advance(500);
    expect(events).toEqual(["open", "a\n", "b\n", "a\n", "b\n", "a\n", "b\n", "close:stopped"]);
  });

  it("with interval 0 emits everything at once but yields to the event loop between pieces", async () => {
    const path = join(dir, "capture.txt");
    const body = Array.from({ length: 500 }, (_, i) => `line ${i}\n`).join("");
    await writeFile(path, body);
    const t = createTransport(`file:${path}`, {
      log: recordingLog().log,
      replay: { intervalMs: 0, loop: false, split: lines },
    });
    let count = 0;
    let seenByOtherWork = -1;
    t.on("data", () => {
      // Work queued by the first piece's consumer must run before the second piece arrives.
      if (++count === 1) setImmediate(() => (seenByOtherWork = count));
    });
    const events = track(t);
    t.start();
    await vi.waitFor(() => expect(events.at(-1)).toBe("end"), WAIT);
    expect(events.slice(1, -1).join("")).toBe(body);
    expect(seenByOtherWork).toBe(1);
  });

  it("the default split is the whole file as one piece", async () => {
    const path = join(dir, "capture.txt");
    await writeFile(path, "x\ny\n");
    const t = createTransport(`file:${path}`, { log: recordingLog().log, replay: { intervalMs: 0, loop: false } });
    const events = track(t);
    t.start();
    await vi.waitFor(() => expect(events).toEqual(["open", "x\ny\n", "end"]), WAIT);
  });

  it("waits for a missing file, naming its path once, and replays it when it appears", async () => {
    const path = join(dir, "later.txt");
    const clock = new ManualClock();
    const rec = recordingLog();
    const t = createTransport(`file:${path}`, {
      clock,
      log: rec.log,
      backoff: { initialMs: 1000, maxMs: 4000 },
      replay: { intervalMs: 10, loop: false },
    });
    const events = track(t);
    t.start();
    await vi.waitFor(() => expect(events).toEqual([`close:no such file: ${path}`]), WAIT);
    for (let i = 0; i < 4; i++) {
      clock.advance(4000);
      await vi.waitFor(() => expect(rec.at("debug").filter((l) => l.includes("failed")).length).toBe(i + 1), WAIT);
    }
    expect(rec.at("warn")).toEqual([`file:${path} cannot open: no such file: ${path}; retrying every ≤4 s`]);
    await writeFile(path, "now\n");
    clock.advance(4000);
    await vi.waitFor(() => expect(events.at(-1)).toBe("end"), WAIT);
    expect(events).toEqual([`close:no such file: ${path}`, "open", "now\n", "end"]);
    expect(rec.at("info")).toEqual([`file:${path} open after 6 attempts / 20 s`]);
  });

  it("an empty file ends at once without loop, and is waited on with loop", async () => {
    const path = join(dir, "empty.txt");
    await writeFile(path, "");
    const once = createTransport(`file:${path}`, { log: recordingLog().log, replay: { intervalMs: 0, loop: false } });
    const events = track(once);
    once.start();
    await vi.waitFor(() => expect(events).toEqual(["open", "end"]), WAIT);

    const clock = new ManualClock();
    const looping = createTransport(`file:${path}`, {
      clock,
      log: recordingLog().log,
      replay: { intervalMs: 100, loop: true },
    });
    const loopEvents = track(looping);
    looping.start();
    await vi.waitFor(() => expect(loopEvents).toEqual([`close:${path} is empty`]), WAIT);
    await writeFile(path, "z");
    clock.advance(1000);
    await vi.waitFor(() => expect(loopEvents).toEqual([`close:${path} is empty`, "open", "z"]), WAIT);
    clock.advance(100);
    expect(loopEvents.at(-1)).toBe("z");
    expect(loopEvents).toHaveLength(4);
  });

  it("start() after 'end' replays again", async () => {
    const path = join(dir, "capture.txt");
    await writeFile(path, "p");
    const t = createTransport(`file:${path}`, { log: recordingLog().log, replay: { intervalMs: 0, loop: false } });
    const events = track(t);
    t.start();
    await vi.waitFor(() => expect(events).toEqual(["open", "p", "end"]), WAIT);
    t.start();
    await vi.waitFor(() => expect(events).toEqual(["open", "p", "end", "open", "p", "end"]), WAIT);
  });
});
