import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildFragment,
  currentSummation,
  deviceInfo,
  type Ids,
  instantaneousDemand,
  LAYOUTS,
  meterList,
  networkInfo,
  priceCluster,
} from "../src/sources/raven/build.js";
import { decodeFragment, parseHex, ravenTime, scale, signed32 } from "../src/sources/raven/decode.js";
import { type FragmentEvent, FragmentReader, LIMITS } from "../src/sources/raven/fragments.js";
import { decodeCp1252 } from "../src/sources/raven/text.js";

const IDS: Ids = { deviceMac: "D8D5B90000001234", meterMac: "00135003004653A5" };
const T = Date.UTC(2026, 10, 21, 8, 30, 15);

const read = (...chunks: (Buffer | string)[]): FragmentEvent[] => {
  const r = new FragmentReader();
  const out: FragmentEvent[] = [];
  for (const c of chunks) r.push(typeof c === "string" ? Buffer.from(c, "latin1") : c, out);
  return r.end(out);
};
const names = (evs: FragmentEvent[]): string[] =>
  evs.map((e) => ("fragment" in e ? e.fragment.name : `rejected:${e.name ?? "?"}`));
const decoded = (bytes: Buffer) => {
  const evs = read(bytes);
  expect(evs).toHaveLength(1);
  const ev = evs[0]!;
  if (!("fragment" in ev)) throw new Error(ev.rejected);
  const r = decodeFragment(ev.fragment);
  if (!r.ok) throw new Error(r.reason);
  return r.decoded;
};

describe("fragment reader", () => {
  it("reads each device's layout, with fields in order and a repeated name kept twice", () => {
    for (const layout of Object.values(LAYOUTS)) {
      const evs = read(meterList(IDS.deviceMac, [IDS.meterMac, "FEDCBA0123456789"], layout));
      expect(evs).toEqual([
        {
          fragment: {
            name: "MeterList",
            fields: [
              ["DeviceMacId", "0xd8d5b90000001234"],
              ["MeterMacId", "0x00135003004653a5"],
              ["MeterMacId", "0xfedcba0123456789"],
            ],
            bytes: expect.any(Number),
          },
        },
      ]);
    }
  });

  it("gives the same fragments however the stream is cut into chunks", () => {
    const stream = Buffer.concat([
      instantaneousDemand(IDS, { time: T, watts: 1234 }, LAYOUTS.raven),
      currentSummation(IDS, { time: T, importKwh: 12345.678, exportKwh: 12.5 }),
      priceCluster(IDS, { time: T, price: 0.1234 }, LAYOUTS.compact),
      networkInfo(IDS, { linkStrength: 100 }),
    ]);
    const whole = read(stream);
    expect(names(whole)).toEqual(["InstantaneousDemand", "CurrentSummationDelivered", "PriceCluster", "NetworkInfo"]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }), (cuts) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks = [0, ...at].map((from, i) => stream.subarray(from, at[i] ?? stream.length));
        expect(read(...chunks)).toEqual(whole);
      }),
    );
  });

  it("rejects a stray closing tag at once, by name, and reads what follows", () => {
    const evs = read("</Leftovers>\n", meterList(IDS.deviceMac, []));
    expect(names(evs)).toEqual(["rejected:Leftovers", "MeterList"]);
    // Alone, as the whole reply to a command: reported without waiting for more input.
    const r = new FragmentReader();
    expect(r.push(Buffer.from("</DeviceInfo>"))).toEqual([
      { rejected: "unexpected </DeviceInfo> outside a fragment", name: "DeviceInfo", bytes: 13 },
    ]);
  });

  it("rejects a fragment cut short when the next one starts, between children or in a value", () => {
    const next = instantaneousDemand(IDS, { time: T, watts: 500 });
    const whole = deviceInfo(IDS, { firmware: "2.0.0 (7400)" }).toString("latin1");
    const afterChild = whole.slice(0, whole.indexOf("<FWVersion>"));
    const inValue = whole.slice(0, whole.indexOf("(7400)"));
    for (const partial of ["<DeviceInfo>", afterChild, inValue]) {
      const evs = read(partial, next);
      expect(names(evs)).toEqual(["rejected:DeviceInfo", "InstantaneousDemand"]);
      expect((evs[0] as { rejected: string }).rejected).toMatch(/<DeviceInfo>: <DeviceInfo> not closed/);
    }
  });

  it("skips the tail of a fragment it joined halfway as one run of garbage", () => {
    const d = instantaneousDemand(IDS, { time: T, watts: 700 }).toString("latin1");
    const tail = d.slice(d.indexOf("0x", d.indexOf("<TimeStamp>")) + 4);
    const evs = read(tail, currentSummation(IDS, { time: T, importKwh: 1 }));
    expect(names(evs)).toEqual(["rejected:TimeStamp", "CurrentSummationDelivered"]);
    expect((evs[0] as { rejected: string; bytes: number }).bytes).toBe(tail.length);
  });

  it("rejects the vendor's misspelt DeviceInfo whole and reads on", () => {
    const bad =
      "<DeviceInfo>\n  <DeviceMacId>0x00158d0000000001</DeviceMacId>\n  <ModelId>RFA-Z106</ModlId>\n" +
      "  <DateCode>20120923ABCDeCode>\n</DeviceInfo>\n";
    const evs = read(bad, networkInfo(IDS, { linkStrength: 80 }));
    expect(names(evs)).toEqual(["rejected:DeviceInfo", "NetworkInfo"]);
    expect((evs[0] as { rejected: string }).rejected).toBe("<DeviceInfo>: <ModelId> closed by </ModlId>");
  });

  it("reports binary garbage once, ignores declarations and comments, and tolerates attributes", () => {
    const noise = Buffer.from([0xff, 0x00, 0xfe, 0x3c, 0x3c, 0x20, 0x3e, 0x0d, 0x0a, 0x80]);
    const evs = read(
      noise,
      '<?xml version="1.0"?><!-- x -->',
      '<Warning a="1">\n<Text>Unknown command</Text>\n</Warning>',
    );
    expect(names(evs)).toEqual(["rejected:?", "Warning"]);
    expect((evs[0] as { bytes: number }).bytes).toBe(noise.length);
  });

  it("never shows the device's network keys in what it reports about garbage", () => {
    const info = deviceInfo(IDS, { firmware: "1" }).toString("latin1").replace(/0x0+/g, "0x419bfc53fa83323a08");
    for (const from of [info.indexOf("<InstallCode>") - 3, info.indexOf("<LinkKey>") + 12]) {
      const evs = read(info.slice(from), networkInfo(IDS, { linkStrength: 1 }));
      const reason = (evs[0] as { rejected: string }).rejected;
      expect(reason).toMatch(/out of step/);
      expect(reason).not.toMatch(/419bfc53|fa83323a/);
    }
  });

  it("bounds a value, a fragment and a tag, and resynchronises after each", () => {
    const next = networkInfo(IDS, { linkStrength: 1 });
    const longValue = buildFragment("MessageCluster", [["Text", "x".repeat(LIMITS.valueBytes + 1)]]);
    const many = buildFragment(
      "Foo",
      Array.from({ length: LIMITS.fields + 1 }, (_, i): [string, string] => [`F${i}`, "1"]),
    );
    const huge = buildFragment(
      "Foo",
      Array.from({ length: 40 }, (_, i): [string, string] => [`F${i}`, "y".repeat(LIMITS.valueBytes - 10)]),
    );
    for (const bad of [longValue, many, huge])
      expect(names(read(bad, next))).toEqual([
        "rejected:" + (bad === longValue ? "MessageCluster" : "Foo"),
        "NetworkInfo",
      ]);
    const longTag = `<${"A".repeat(LIMITS.tagBytes + 10)}>`;
    expect(names(read(longTag, next))).toEqual(["rejected:?", "NetworkInfo"]);
  });

  it("never stalls: after any garbage, the second of two fragments that follow is always read", () => {
    const a = instantaneousDemand(IDS, { time: T, watts: -250 });
    const b = currentSummation(IDS, { time: T, importKwh: 42.5, exportKwh: 1.25 });
    const alphabet = '<>/ ?!="\nAbZ0x_:.-'.split("").map((c) => c.charCodeAt(0));
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.array(fc.constantFrom(...alphabet), { maxLength: 300 }).map((a) => Uint8Array.from(a)),
    );
    fc.assert(
      fc.property(garbage, fc.integer({ min: 1, max: 64 }), (g, chunk) => {
        const stream = Buffer.concat([Buffer.from(g), a, b]);
        const r = new FragmentReader();
        const out: FragmentEvent[] = [];
        for (let i = 0; i < stream.length; i += chunk) r.push(stream.subarray(i, i + chunk), out);
        r.end(out);
        const good = out.filter((e) => "fragment" in e).map((e) => (e as { fragment: { name: string } }).fragment.name);
        expect(good.at(-1)).toBe("CurrentSummationDelivered");
        // Garbage is reported, never silently eaten: bytes in events cover at most the stream.
        const bytes = out.reduce((n, e) => n + ("fragment" in e ? e.fragment.bytes : e.bytes), 0);
        expect(bytes).toBeLessThanOrEqual(stream.length);
      }),
      { numRuns: 500 },
    );
  });
});

describe("decoding", () => {
  it("demand: signed 32-bit at any printed width, a sign extension to 64 bits, not wider", () => {
    expect(decoded(instantaneousDemand(IDS, { time: T, watts: 964 })).values).toEqual({
      power_net_w: 964,
      power_import_w: 964,
      power_export_w: 0,
    });
    const neg = decoded(instantaneousDemand(IDS, { time: T, watts: -1000, digits: 8 }));
    expect(neg.values).toEqual({ power_net_w: -1000, power_import_w: 0, power_export_w: 1000 });
    expect(signed32(parseHex("0xfffffc18")!)).toBe(-1000n);
    expect(signed32(parseHex("0xFFFFFFFFFFFFFFF0")!)).toBe(-16n);
    expect(signed32(parseHex("0x00000000000003c4")!)).toBe(964n);
    expect(signed32(parseHex("0x0000000100000000")!)).toBeUndefined();
    const wide = buildFragment("InstantaneousDemand", [["Demand", "0x100000010"]]);
    expect(decodeFragment((read(wide)[0] as { fragment: never }).fragment)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/wider than 32 bits/),
    });
  });

  it("a Multiplier or Divisor of 0 counts as 1", () => {
    const f = buildFragment("InstantaneousDemand", [
      ["Demand", "0x000005"],
      ["Multiplier", "0x00000000"],
      ["Divisor", "0x00000000"],
    ]);
    expect(decoded(f).values.power_net_w).toBe(5000);
    expect(scale(7n, 0n, 0n)).toBe(7);
  });

  it("summations up to 64 bits keep every digit a double can hold (no 32-bit masking)", () => {
    const big = buildFragment("CurrentSummationDelivered", [
      ["SummationDelivered", "0x0000010000000001"],
      ["SummationReceived", "0x00000000FFFFFFFF"],
      ["Multiplier", "0x00000001"],
      ["Divisor", "0x000003e8"],
    ]);
    const d = decoded(big);
    expect(d.values.energy_import_kwh).toBe(1099511627.777);
    expect(d.values.energy_export_kwh).toBe(4294967.295);
    // Past 2^53 raw counts the quotient is still the nearest double.
    expect(scale(0xffffffffffffffffn, 1n, 1000n)).toBe(Number("18446744073709551.615"));
    expect(scale(0x8000000000000001n, 3n, 7n)).toBe(Number((0x8000000000000001n * 3n) / 7n));
    const tooWide = buildFragment("CurrentSummationDelivered", [["SummationDelivered", "0x10000000000000000"]]);
    expect(decodeFragment((read(tooWide)[0] as { fragment: never }).fragment).ok).toBe(false);
  });

  it("summation rounding: one division, so 3195 × 2 / 200 is 31.95 exactly as printed", () => {
    const d = decoded(
      currentSummation(IDS, { time: T, importKwh: 31.95, exportKwh: 16.04, multiplier: 2, divisor: 200 }),
    );
    expect(d.values).toEqual({ energy_import_kwh: 31.95, energy_export_kwh: 16.04 });
  });

  it("times are seconds since 2000-01-01 UTC; 0 and 0xFFFFFFFF mean none", () => {
    expect(decoded(instantaneousDemand(IDS, { time: T, watts: 1 })).time).toBe(T - (T % 1000));
    expect(ravenTime(0x29bd58a7)).toBe(Date.parse("2022-03-11T00:47:35Z"));
    expect(ravenTime(0)).toBeUndefined();
    expect(ravenTime(0xffffffff)).toBeUndefined();
  });

  it("price: trailing digits and the ISO 4217 code; an unknown code leaves currency out", () => {
    const usd = decoded(priceCluster(IDS, { time: T, price: 0.14764, trailingDigits: 5 }));
    expect(usd.values).toEqual({ price_per_kwh: 0.14764, currency: "USD" });
    const eur = decoded(priceCluster(IDS, { price: 0.25, currency: 978, trailingDigits: 2 }));
    expect(eur.values).toEqual({ price_per_kwh: 0.25, currency: "EUR" });
    expect(eur.time).toBeUndefined();
    const odd = decoded(priceCluster(IDS, { price: 0.3, currency: 999 }));
    expect(odd.values).toEqual({ price_per_kwh: 0.3 });
    expect(odd.detail.currency_numeric).toBe(999);
  });

  it("text is Windows-1252 (not UTF-8, not Latin-1), with entities resolved", () => {
    const bytes = Buffer.concat([
      Buffer.from("<MessageCluster><Text>"),
      Buffer.from([0x93, 0x80, 0x35, 0x20, 0x26, 0x61, 0x6d, 0x70, 0x3b, 0x20, 0xe9, 0x94]),
      Buffer.from("</Text></MessageCluster>"),
    ]);
    expect(decoded(bytes).values.text_message).toBe("“€5 & é”");
    expect(decodeCp1252(Buffer.from([0x81, 0x9f, 0xff]))).toBe("\u0081Ÿÿ");
  });

  it("DeviceInfo: identity and firmware, a date code when it is one, and never the network keys", () => {
    const d = decoded(deviceInfo(IDS, { firmware: "2.0.0 (7400)", dateCode: "20140520e0000001" }));
    expect(d.device).toEqual({
      manufacturer: "Rainforest Automation, Inc.",
      model: "Z105-2-EMU2-LEDD_JM",
      firmware: "2.0.0 (7400)",
      hardware: "1.0.0",
    });
    expect(d.values).toEqual({ firmware: "2.0.0 (7400)" });
    expect(d.detail.date_code).toEqual({ date: "2014-05-20", lot: "e0000001" });
    expect(JSON.stringify(d)).not.toMatch(/LinkKey|InstallCode|link_key|install_code/);
    const filler = decoded(
      Buffer.concat([
        Buffer.from("<DeviceInfo><DateCode>"),
        Buffer.alloc(16, 0xff),
        Buffer.from("</DateCode></DeviceInfo>"),
      ]),
    );
    expect(filler.detail.date_code).toBeNull();
    const auth = decoded(Buffer.from("<MeterInfo><NickName>House</NickName><Auth>p@ss</Auth></MeterInfo>"));
    expect(JSON.stringify(auth)).not.toContain("p@ss");
  });

  it("names what is missing or malformed, and tells an unknown fragment apart", () => {
    const frag = (s: string) => (read(s)[0] as { fragment: never }).fragment;
    expect(decodeFragment(frag("<InstantaneousDemand><Divisor>0x1</Divisor></InstantaneousDemand>"))).toEqual({
      ok: false,
      reason: "<InstantaneousDemand> without <Demand>",
    });
    expect(decodeFragment(frag("<InstantaneousDemand><Demand>0xZZ</Demand></InstantaneousDemand>"))).toEqual({
      ok: false,
      reason: '<Demand> is not hex: "0xZZ"',
    });
    expect(decodeFragment(frag("<BillingPeriodList><A>1</A></BillingPeriodList>"))).toEqual({
      ok: false,
      unknown: true,
      reason: "unknown fragment <BillingPeriodList>",
    });
  });
});
