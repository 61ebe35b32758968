import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dsmr5Telegram, fluviusTelegram, simulate } from "../src/sources/dsmr/build.js";
import { crc16 } from "../src/sources/dsmr/crc.js";
import { decodeTelegram } from "../src/sources/dsmr/decode.js";
import { type FrameEvent, TelegramFramer } from "../src/sources/dsmr/framer.js";

const states = simulate(Date.UTC(2026, 10, 21, 11, 0, 0), 5, 1, true);
const nl = dsmr5Telegram(states[0]!);
const be = fluviusTelegram(states[1]!);

function run(chunks: Buffer[], max = 8192): FrameEvent[] {
  const f = new TelegramFramer(max);
  const out: FrameEvent[] = [];
  for (const c of chunks) f.push(c, out);
  f.end(out);
  return out;
}
const framesOf = (ev: FrameEvent[]) => ev.flatMap((e) => ("frame" in e ? [e.frame] : []));
const rejectsOf = (ev: FrameEvent[]) => ev.flatMap((e) => ("rejected" in e ? [e.rejected] : []));

describe("TelegramFramer", () => {
  it("cuts telegrams out of garbage, one byte at a time", () => {
    const stream = Buffer.concat([
      Buffer.from([0xff, 0x00, 0x21, 0x0a]),
      nl,
      Buffer.from("  25803103\r\n\xff\xff", "latin1"),
      be,
    ]);
    const ev = run([...stream].map((b) => Buffer.from([b])));
    expect(framesOf(ev)).toEqual([nl, be]);
    expect(rejectsOf(ev)).toEqual([]);
  });

  it("hands on a telegram cut short by the next one as unterminated, then the next whole", () => {
    const cut = nl.subarray(0, 300);
    const ev = run([Buffer.concat([cut, Buffer.from("\r\n"), be])]);
    expect(rejectsOf(ev)).toEqual([]);
    expect(ev).toEqual([{ frame: Buffer.concat([cut, Buffer.from("\r\n")]), unterminated: true }, { frame: be }]);
  });

  it("caps the size of a telegram that never ends, and resynchronises", () => {
    const endless = Buffer.concat([Buffer.from("/XXX5 endless\r\n"), Buffer.alloc(5000, 0x41)]);
    const ev = run([endless, Buffer.from("\r\n"), nl], 1024);
    expect(rejectsOf(ev)[0]).toBe("telegram longer than 1024 bytes without '!'");
    expect(framesOf(ev)).toEqual([nl]);
  });

  it("takes a telegram whose CRC is not followed by a newline, at end of input or before the next '/'", () => {
    const bare = nl.subarray(0, nl.length - 2);
    expect(framesOf(run([bare]))).toEqual([bare]);
    expect(framesOf(run([Buffer.concat([bare, be])]))).toEqual([bare, be]);
  });

  it("keeps non-ASCII header bytes (Fluvius 0xAB) as bytes", () => {
    const r = decodeTelegram(framesOf(run([be]))[0]!);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.telegram.header).toBe("FLU5\\253769484_A");
  });
});

describe("decoder robustness (property tests)", () => {
  it("arbitrary bytes never throw out of framer or decoder", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 8 }), (chunks) => {
        const ev = run(
          chunks.map((c) => Buffer.from(c)),
          2048,
        );
        for (const f of framesOf(ev)) decodeTelegram(f);
      }),
      { numRuns: 2000 },
    );
  });

  it("bytes that look like DSMR never throw and only yield telegrams whose CRC matches", () => {
    const alphabet = fc.constantFrom(..."/!()*-:.0123456789ABCDEFkWhm3SW\r\n".split(""));
    fc.assert(
      fc.property(
        fc.array(fc.oneof(alphabet, fc.constantFrom("1-0:1.8.1(", "*kWh)\r\n", "/ISK5\\2M\r\n\r\n")), {
          maxLength: 400,
        }),
        (parts) => {
          for (const f of framesOf(run([Buffer.from(parts.join(""), "latin1")]))) {
            const r = decodeTelegram(f);
            if (r.ok && r.telegram.crc === "valid") {
              const bang = f.indexOf(0x21);
              const given = Number.parseInt(
                f
                  .subarray(bang + 1)
                  .toString("latin1")
                  .match(/^[0-9A-Fa-f]{1,4}/)![0],
                16,
              );
              expect(crc16(f, 0, bang + 1)).toBe(given);
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("a telegram with any one byte changed before '!' is never accepted, however it is chunked", () => {
    const telegrams = [nl, be];
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 40 }),
        (which, pos, byte, cuts) => {
          const t = Buffer.from(telegrams[which]!);
          const bang = t.indexOf(0x21);
          const i = 1 + (pos % (bang - 1));
          // Changing a byte into '!' moves the end marker: that is a different (shorter) frame, checked above.
          fc.pre(t[i] !== byte && byte !== 0x21);
          t[i] = byte;
          const chunks: Buffer[] = [];
          let at = 0;
          for (const c of cuts) {
            if (at >= t.length) break;
            chunks.push(t.subarray(at, at + c));
            at += c;
          }
          if (at < t.length) chunks.push(t.subarray(at));
          const accepted = framesOf(run(chunks)).filter((f) => decodeTelegram(f).ok);
          expect(accepted).toEqual([]);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
