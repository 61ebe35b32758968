/**
 * What must never happen on a HAN line, stated as properties over generated input (fast-check): noise is never a
 * reading, a frame with one byte changed is never accepted, and how the bytes are chunked never matters.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { aidonFrames, simulateHan } from "../src/sources/han/build.js";
import type { HanTelegram } from "../src/sources/han/decode.js";
import { type HanItem, HanStream, type HanStreamOptions } from "../src/sources/han/stream.js";

const KEY = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
const states = simulateHan(Date.UTC(2026, 2, 1, 0, 0, 0), 3, 10);

function read(bytes: Buffer, cuts: number[] = [], opts: HanStreamOptions = {}): HanItem[] {
  const s = new HanStream(opts);
  const out: HanItem[] = [];
  let at = 0;
  for (const c of cuts) {
    if (at >= bytes.length) break;
    s.push(bytes.subarray(at, at + c), out);
    at += c;
  }
  if (at < bytes.length) s.push(bytes.subarray(at), out);
  s.end(out);
  return out;
}
const readings = (items: HanItem[]): HanTelegram[] => items.flatMap((i) => (i.ok ? [i.telegram] : []));
const chunking = fc.array(fc.integer({ min: 1, max: 97 }), { maxLength: 30 });

describe("never a reading from noise", () => {
  it("random bytes, however chunked, never give a reading", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000 }), chunking, (bytes, cuts) => {
        expect(readings(read(Buffer.from(bytes), cuts))).toEqual([]);
        expect(readings(read(Buffer.from(bytes), cuts, { framing: "mbus" }))).toEqual([]);
      }),
      { numRuns: 1000 },
    );
  });

  it("random bytes full of flags, format and LLC bytes never give a reading", () => {
    const byte = fc.oneof(
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom(0x7e, 0xa0, 0xa8, 0xe6, 0xe7, 0x00, 0x0f, 0x13, 0x41, 0x68, 0x16, 0xdb),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 3000 }), chunking, (bytes, cuts) => {
        expect(readings(read(Buffer.from(bytes), cuts))).toEqual([]);
        expect(readings(read(Buffer.from(bytes), cuts, { framing: "mbus" }))).toEqual([]);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("a frame with one byte changed is never accepted", () => {
  const DIR = join(import.meta.dirname, "../../shared/data/dlms");
  const samples = existsSync(DIR)
    ? ["aidon-example-1", "aidon-example-2", "kamstrup-example-1", "iskra-1", "slovenia-list-1"].map((n) =>
        Buffer.from(readFileSync(join(DIR, `${n}.txt`), "utf8").replace(/\s+/g, ""), "hex"),
      )
    : [];
  const own: Array<[string, Buffer, HanStreamOptions]> = [
    ["plain", aidonFrames(states[0]!), {}],
    ["segmented", aidonFrames(states[1]!, { maxInfo: 80 }), {}],
    ["encrypted", aidonFrames(states[2]!, { glo: { key: KEY, counter: 9 } }), { key: KEY }],
    ...samples.map((b, i): [string, Buffer, HanStreamOptions] => [`sample ${i}`, b, {}]),
  ];

  for (const [name, frame, opts] of own) {
    it(`${name}: every position, several changes`, () => {
      expect(readings(read(frame, [], opts))).toHaveLength(1);
      for (let at = 0; at < frame.length; at++)
        for (const x of [0x01, 0x80, 0xff, 0x5a]) {
          const bad = Buffer.from(frame);
          bad[at]! ^= x;
          const r = readings(read(bad, [], opts));
          if (r.length) throw new Error(`${name}: byte ${at} ^ 0x${x.toString(16)} was accepted`);
        }
    });
  }

  it("a changed byte in one frame of a stream loses that frame only, however chunked", () => {
    const frames = [aidonFrames(states[0]!), aidonFrames(states[1]!, { maxInfo: 80 }), aidonFrames(states[2]!)];
    const all = Buffer.concat(frames);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: frames[1]!.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        chunking,
        (at, x, cuts) => {
          const bad = Buffer.from(all);
          bad[frames[0]!.length + at]! ^= x;
          const times = readings(read(bad, cuts)).map((t) => t.time);
          expect(times).toEqual([states[0]!.time, states[2]!.time]);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("chunking never matters", () => {
  it("the same readings however the stream is cut", () => {
    const stream = Buffer.concat([
      aidonFrames(states[0]!),
      aidonFrames(states[1]!, { maxInfo: 50 }),
      aidonFrames(states[2]!, { maxInfo: 120 }),
    ]);
    const whole = readings(read(stream)).map((t) => t.values);
    expect(whole).toHaveLength(3);
    fc.assert(
      fc.property(chunking, (cuts) => {
        expect(readings(read(stream, cuts)).map((t) => t.values)).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });
});
