/**
 * What must never happen on a P1 line, stated as properties over generated input (fast-check): noise is never a
 * reading, a mangled telegram never gives a reading other than the one the meter sent, and a good telegram is
 * never lost to whatever came before it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildTelegram, dsmr5Telegram, fluviusTelegram, simulate } from "../src/sources/dsmr/build.js";
import { decodeTelegram, type Telegram } from "../src/sources/dsmr/decode.js";
import { DsmrStream, type StreamItem } from "../src/sources/dsmr/stream.js";

const states = simulate(Date.UTC(2026, 10, 21, 11, 0, 0), 4, 1, true);
const nl = dsmr5Telegram(states[0]!);
const be = fluviusTelegram(states[1]!);
const lgLower = buildTelegram({
  header: "XMX5LGBBFFB231215493",
  lines: ["1-3:0.2.8(42)", "0-0:1.0.0(261121120002W)", "1-0:1.8.1(004321.123*kwh)", "1-0:1.7.0(01.234*kw)"],
});
const originals = [nl, be, lgLower];
const valuesOf = originals.map((t) => {
  const r = decodeTelegram(t);
  if (!r.ok) throw new Error(r.reason);
  return r.telegram.values;
});

function read(bytes: Buffer, cuts: number[] = [], s = new DsmrStream()): StreamItem[] {
  const out: StreamItem[] = [];
  let at = 0;
  for (const c of cuts) {
    if (at >= bytes.length) break;
    s.push(bytes.subarray(at, at + c), out);
    at += c;
  }
  if (at < bytes.length) s.push(bytes.subarray(at), out);
  s.flush(out);
  s.end(out);
  return out;
}
const readings = (items: StreamItem[]): Telegram[] => items.flatMap((i) => (i.ok ? [i.telegram] : []));

const chunking = fc.array(fc.integer({ min: 1, max: 97 }), { maxLength: 30 });

describe("never a reading from noise", () => {
  it("random bytes, however chunked, never give a reading", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000 }), chunking, (bytes, cuts) => {
        expect(readings(read(Buffer.from(bytes), cuts))).toEqual([]);
      }),
      { numRuns: 1500 },
    );
  });

  it("random bytes with '/', '!' and line ends sprinkled in never give a reading", () => {
    const byte = fc.oneof(
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom(0x2f, 0x21, 0x0d, 0x0a, 0x28, 0x29, 0xdb, 0x08),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 3000 }), chunking, (bytes, cuts) => {
        expect(readings(read(Buffer.from(bytes), cuts))).toEqual([]);
      }),
      { numRuns: 1500 },
    );
  });
});

describe("a mangled telegram never gives a wrong reading", () => {
  const edit = fc.oneof(
    fc.record({ op: fc.constant("set" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ op: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
    fc.record({
      op: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 20 }),
    }),
    fc.record({ op: fc.constant("repeat" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 60 }) }),
    fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  );
  type Edit =
    | { op: "set"; at: number; byte: number }
    | { op: "delete"; at: number; len: number }
    | { op: "insert"; at: number; bytes: Uint8Array }
    | { op: "repeat"; at: number; len: number }
    | { op: "truncate"; at: number };
  function apply(t: Buffer, e: Edit): Buffer {
    const at = e.at % (t.length + 1);
    switch (e.op) {
      case "set": {
        const m = Buffer.from(t);
        if (at < m.length) m[at] = e.byte;
        return m;
      }
      case "delete":
        return Buffer.concat([t.subarray(0, at), t.subarray(at + e.len)]);
      case "insert":
        return Buffer.concat([t.subarray(0, at), Buffer.from(e.bytes), t.subarray(at)]);
      case "repeat":
        return Buffer.concat([t.subarray(0, at + e.len), t.subarray(at)]);
      case "truncate":
        return t.subarray(0, at);
    }
  }

  it("every reading out of a mangled telegram of a meter that sends a CRC is the meter's own, value for value", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 2),
        fc.array(edit, { minLength: 1, maxLength: 3 }),
        chunking,
        (which, edits, cuts) => {
          let t = originals[which]!;
          for (const e of edits) t = apply(t, e as Edit);
          // The meter's last good telegram came before: the reader knows it sends a CRC.
          const s = new DsmrStream();
          expect(readings(s.push(originals[which]!))).toHaveLength(1);
          for (const r of readings(read(t, cuts, s))) expect(r.values).toEqual(valuesOf[which]);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("a single change to a CRC'd telegram (a byte set, deleted, inserted, repeated, or the end cut) gives no reading but the meter's own, even as the first thing read", () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 1, 2), edit, chunking, (which, e, cuts) => {
        const t = apply(originals[which]!, e as Edit);
        for (const r of readings(read(t, cuts))) expect(r.values).toEqual(valuesOf[which]);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("a damaged telegram whose CRC still matches", () => {
  it("is refused when a line is no data object (the one in 65,536 a CRC lets through)", () => {
    // Found by the property above: nine bytes of the DSMR 5 telegram repeated in the middle of a line, which by
    // chance leaves the CRC as it was.
    const at = 479;
    const t = Buffer.concat([nl.subarray(0, at + 9), nl.subarray(at)]);
    expect(t.toString("latin1")).toContain("1-0:72.36.-0:72.36.0(00000)");
    const r = decodeTelegram(t);
    expect(r).toEqual({
      ok: false,
      reason: 'a line that is no data object despite a matching CRC: "1-0:72.36.-0:72.36.0(00000)"',
    });
    expect(readings(read(t))).toEqual([]);
  });
});

describe("a good telegram is never lost to what came before it", () => {
  it("after any garbage, or any cut piece of another telegram, with no line end between", () => {
    const prefix = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.constantFrom(0, 1, 2), fc.nat()).map(([w, n]) => originals[w]!.subarray(0, n % originals[w]!.length)),
      fc
        .tuple(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(0, 1, 2), fc.nat())
        .map(([g, w, n]) => Buffer.concat([Buffer.from(g), originals[w]!.subarray(0, n % originals[w]!.length)])),
    );
    fc.assert(
      fc.property(prefix, fc.constantFrom(0, 1, 2), chunking, (pre, which, cuts) => {
        const got = readings(read(Buffer.concat([pre, originals[which]!]), cuts));
        expect(got.map((t) => t.values)).toContainEqual(valuesOf[which]);
      }),
      { numRuns: 3000 },
    );
  });
});
