/**
 * Encrypted P1 (Luxembourg Smarty and others): the shared vectors of ../shared/data/dsmr-encrypted (the Luxembourg
 * spec's example, encrypted with and without an authentication key, and the values another parser reads from it),
 * then frames of our own making: chunked, among garbage, replayed, with one bit changed, without a key.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildTelegram, dsmr5Telegram, encryptTelegram, simulate } from "../src/sources/dsmr/build.js";
import type { Telegram } from "../src/sources/dsmr/decode.js";
import { DsmrStream, NO_KEY_REASON, type StreamItem } from "../src/sources/dsmr/stream.js";
import { GloDecryptor, parseGlo } from "../src/sources/glo-cipher.js";

const DIR = join(import.meta.dirname, "../../shared/data/dsmr-encrypted");
const have = existsSync(DIR);
if (!have) console.warn(`skipping the shared encrypted P1 vectors: ${DIR} not found (it exists in CI)`);

const KEY = Buffer.from("0123456789abcdef0123456789abcdef", "hex");
const AAD = Buffer.from("ffeeddccbbaa99887766554433221100", "hex");
const hexFile = (name: string): Buffer => Buffer.from(readFileSync(join(DIR, name), "utf8").replace(/\s+/g, ""), "hex");

const ok = (items: StreamItem[]): Telegram[] => items.flatMap((i) => (i.ok ? [i.telegram] : []));
const bad = (items: StreamItem[]): string[] => items.flatMap((i) => (i.ok ? [] : [i.reason]));

function run(chunks: Buffer[], key?: Buffer, aad?: Buffer, s = new DsmrStream({ key, aad })): StreamItem[] {
  const out: StreamItem[] = [];
  for (const c of chunks) s.push(c, out);
  return out;
}

describe.skipIf(!have)("the Luxembourg spec example, encrypted (../shared/data/dsmr-encrypted)", () => {
  const expected = have
    ? (JSON.parse(readFileSync(join(DIR, "dsmr-luxembourgh-spec-example.json"), "utf8")) as {
        electricity: {
          total: { received: number; returned: number };
          powerReceivedTotal: number;
          voltage: Record<string, number>;
          powerReceived: Record<string, number>;
        };
        metadata: { timestamp: string; events: { powerFailures: number; voltageSags: Record<string, number> } };
        mBus: Record<string, { value?: number }>;
      })
    : undefined;

  for (const [file, aad] of [
    ["dsmr-luxembourgh-spec-example-with-aad.txt", AAD],
    ["dsmr-luxembourgh-spec-example-without-aad.txt", undefined],
  ] as const) {
    it(`${file}: decrypts to the values the other parser reads (its energy in Wh)`, () => {
      const frame = hexFile(file);
      const items = run([frame], KEY, aad);
      expect(bad(items)).toEqual([]);
      const [t] = ok(items);
      const e = expected!;
      expect(t!.crc).toBe("encrypted");
      expect(t!.manufacturer).toBe("Sagemcom (Luxembourg Smarty)");
      expect(t!.values.energy_import_kwh).toBeCloseTo(e.electricity.total.received / 1000, 9);
      expect(t!.values.energy_export_kwh).toBeCloseTo(e.electricity.total.returned / 1000, 9);
      expect(t!.values.power_import_w).toBe(e.electricity.powerReceivedTotal);
      expect(t!.values.power_import_l1_w).toBe(e.electricity.powerReceived.l1);
      expect([t!.values.voltage_l1_v, t!.values.voltage_l2_v, t!.values.voltage_l3_v]).toEqual([
        e.electricity.voltage.l1,
        e.electricity.voltage.l2,
        e.electricity.voltage.l3,
      ]);
      expect(t!.values.power_failures).toBe(e.metadata.events.powerFailures);
      expect(t!.values.voltage_sags_l1).toBe(e.metadata.events.voltageSags.l1);
      // Two gas meters (channels 1 and 4): the first is gas_m3, the second gas_2_m3.
      expect(t!.values.gas_m3).toBe(e.mBus["1"]!.value);
      expect(t!.values.gas_2_m3).toBe(e.mBus["4"]!.value);
      // The other parser prints the meter's wall clock as if it were UTC; the meter runs on Luxembourg time.
      const wall = new Date(e.metadata.timestamp).getTime();
      expect(t!.time).toBe(wall - 2 * 3600_000);
      expect(t!.values.limiter_threshold_va).toBe(69000);
    });
  }

  it("refuses the frame with a wrong key, without the authentication key it was made with, and without any key", () => {
    const withAad = hexFile("dsmr-luxembourgh-spec-example-with-aad.txt");
    const wrong = Buffer.from(KEY);
    wrong[0]! ^= 1;
    expect(ok(run([withAad], wrong, AAD))).toEqual([]);
    expect(bad(run([withAad], KEY))[0]).toMatch(/authentication failed: .*authentication key \(aad\)/);
    const none = run([withAad]);
    expect(ok(none)).toEqual([]);
    expect(none).toEqual([{ ok: false, reason: NO_KEY_REASON, bytes: withAad.length, noKey: true }]);
  });
});

describe("encrypted telegrams of our own making", () => {
  const title = Buffer.from("SAG\x01\x02\x03\x04\x05", "latin1");
  const states = simulate(Date.UTC(2026, 5, 1, 10, 0, 0), 6, 1);
  const plain = states.map((s) => dsmr5Telegram(s, "Europe/Luxembourg"));
  const frames = plain.map((p, i) => encryptTelegram(p, { key: KEY, aad: AAD, systemTitle: title, counter: 100 + i }));

  it("decodes every frame of a stream cut into small chunks, among garbage", () => {
    const whole = Buffer.concat(frames.flatMap((f) => [Buffer.from([0x00, 0xff, 0x2f, 0xdb]), f]));
    const chunks: Buffer[] = [];
    for (let i = 0; i < whole.length; i += 13) chunks.push(whole.subarray(i, i + 13));
    const items = run(chunks, KEY, AAD);
    expect(ok(items).map((t) => t.time)).toEqual(states.map((s) => s.time));
    expect(ok(items)[0]!.crc).toBe("encrypted");
  });

  it("refuses a replayed frame and an older frame counter, and counts them", () => {
    const s = new DsmrStream({ key: KEY, aad: AAD });
    const items = run([frames[0]!, frames[1]!, frames[1]!, frames[0]!, frames[2]!], KEY, AAD, s);
    expect(ok(items)).toHaveLength(3);
    expect(bad(items)).toEqual([
      "encrypted telegram refused: frame counter 101 is not above the last one (101): a replayed or old frame",
      "encrypted telegram refused: frame counter 100 is not above the last one (101): a replayed or old frame",
    ]);
  });

  it("starts the frame counter over for a new meter (another system title)", () => {
    const other = Buffer.from("SAG\x09\x09\x09\x09\x09", "latin1");
    const d = new GloDecryptor(KEY, AAD);
    expect(d.open(frames[3]!).ok).toBe(true);
    expect(d.open(encryptTelegram(plain[0]!, { key: KEY, aad: AAD, systemTitle: other, counter: 1 })).ok).toBe(true);
  });

  it("never accepts a frame with one bit changed, anywhere", () => {
    const f = frames[0]!;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: f.length * 8 - 1 }), (bit) => {
        const m = Buffer.from(f);
        m[bit >> 3]! ^= 1 << (bit & 7);
        // A fresh stream each time, so that only the change can make it refuse.
        const items = run([m], KEY, AAD);
        const got = ok(items);
        expect(got).toEqual([]);
      }),
      { numRuns: 1500 },
    );
  });

  it("reads a plain telegram that follows noise shaped like an encrypted frame header", () => {
    // 0xDB 0x08, a title, a 0x82 length and a valid security byte, then no real frame: the telegram after it
    // must still come through, with or without a key.
    const fake = Buffer.concat([
      Buffer.from([0xdb, 0x08]),
      Buffer.alloc(8, 0x41),
      Buffer.from([0x82, 0x03, 0x00, 0x30]),
    ]);
    const t = buildTelegram({ header: "KFM5KAIFA-METER", lines: ["1-3:0.2.8(42)", "1-0:1.8.1(000001.000*kWh)"] });
    const tail = buildTelegram({ header: "KFM5KAIFA-METER", lines: ["1-3:0.2.8(42)", "1-0:1.8.1(000002.000*kWh)"] });
    for (const key of [undefined, KEY]) {
      const s = new DsmrStream({ key, aad: AAD });
      const items = run([Buffer.concat([fake, t, tail, Buffer.alloc(800, 0x20)])], key, AAD, s);
      s.end(items);
      expect(ok(items).map((x) => x.values.energy_import_tariff1_kwh)).toEqual([1, 2]);
    }
  });

  it("parses the envelope: system title, frame counter, tag", () => {
    const p = parseGlo(frames[2]!);
    if (typeof p === "string") throw new Error(p);
    expect(p.systemTitle).toEqual(title);
    expect(p.counter).toBe(102);
    expect(p.tag).toHaveLength(12);
    expect(p.securityControl).toBe(0x30);
  });
});
