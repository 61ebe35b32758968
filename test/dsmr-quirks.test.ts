/**
 * What real meters do that the DSMR documents do not say, each with a telegram of our own making in the shape the
 * meters send (other projects' test corpora and the Luxembourg spec show the shapes): lower-case units, codes on
 * channel 1, a kVA limiter, telegrams without '!', a telegram right after a cut one, placeholder ids, and line
 * noise that must never become a reading.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { buildTelegram, dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { decodeTelegram, type Telegram } from "../src/sources/dsmr/decode.js";
import { DsmrStream, type StreamItem } from "../src/sources/dsmr/stream.js";

const ok = (items: StreamItem[]): Telegram[] => items.flatMap((i) => (i.ok ? [i.telegram] : []));
const bad = (items: StreamItem[]): string[] => items.flatMap((i) => (i.ok ? [] : [i.reason]));

function decodeOne(frame: Buffer): Telegram {
  const r = decodeTelegram(frame);
  if (!r.ok) throw new Error(r.reason);
  return r.telegram;
}

function stream(bytes: Buffer | Buffer[], chunk = 0): StreamItem[] {
  const s = new DsmrStream();
  const out: StreamItem[] = [];
  for (const b of Array.isArray(bytes) ? bytes : [bytes]) {
    if (chunk > 0) for (let i = 0; i < b.length; i += chunk) s.push(b.subarray(i, i + chunk), out);
    else s.push(b, out);
  }
  s.end(out);
  return out;
}

describe("units and codes as real meters write them", () => {
  it("reads lower-case units (a Landis+Gyr E350 writes *kwh, *kw, *v, *a)", () => {
    const t = decodeOne(
      buildTelegram({
        header: "XMX5LGBBFFB231215493",
        lines: [
          "1-3:0.2.8(42)",
          "0-0:1.0.0(240115093000W)",
          "1-0:1.8.1(004321.123*kwh)",
          "1-0:1.8.2(001234.5*kWH)",
          "1-0:2.8.1(000010.000*kwh)",
          "1-0:1.7.0(01.234*kw)",
          "1-0:2.7.0(00.000*kw)",
          "1-0:32.7.0(229.8*v)",
          "1-0:31.7.0(005*a)",
          "1-0:21.7.0(00.500*kw)",
        ],
      }),
    );
    expect(t.values).toMatchObject({
      energy_import_tariff1_kwh: 4321.123,
      energy_import_tariff2_kwh: 1234.5,
      energy_import_kwh: 5555.623,
      energy_export_tariff1_kwh: 10,
      power_import_w: 1234,
      power_export_w: 0,
      voltage_l1_v: 229.8,
      current_l1_a: 5,
      power_import_l1_w: 500,
    });
  });

  it("reads electricity codes on channel 1 (Sagemcom XT211, the Luxembourg spec: 1-1:1.8.1) as channel 0", () => {
    const t = decodeOne(
      buildTelegram({
        header: "SAG5XT211-LT",
        lines: [
          "0-0:1.0.0(240601120000S)",
          "1-1:1.8.1(000123.456*kWh)",
          "1-1:1.8.2(000100.000*kWh)",
          "1-1:2.8.1(000001.000*kWh)",
          "1-1:1.7.0(00.750*kW)",
          "1-1:32.7.0(231.0*V)",
          "1-1:31.4.0(025*A)",
        ],
      }),
    );
    expect(t.values).toMatchObject({
      energy_import_tariff1_kwh: 123.456,
      energy_import_kwh: 223.456,
      energy_export_tariff1_kwh: 1,
      power_import_w: 750,
      voltage_l1_v: 231,
      fuse_threshold_l1_a: 25,
    });
  });

  it("puts a limiter in kVA (Luxembourg) in its own quantity, never 69 kVA as 69,000 W", () => {
    const t = decodeOne(
      buildTelegram({
        header: "Lux5\\253000001_M",
        lines: ["1-3:0.2.8(42)", "0-0:17.0.0(069.0*kVA)", "1-0:9.7.0(00.021*kVA)", "1-0:10.7.0(00.000*kVA)"],
      }),
    );
    expect(t.values.limiter_threshold_va).toBe(69000);
    expect(t.values.limiter_threshold_w).toBeUndefined();
    expect(t.values.apparent_power_import_va).toBe(21);
    expect(t.values.apparent_power_export_va).toBe(0);
    const nl = decodeOne(buildTelegram({ header: "KFM5KAIFA-METER", lines: ["0-0:17.0.0(999.9*kW)"] }));
    expect(nl.values.limiter_threshold_w).toBe(999900);
  });

  it("reads reactive energy per tariff, the text message code, the e-MUCS serial and the Q3D status", () => {
    const t = decodeOne(
      buildTelegram({
        header: "FLU5\\253769484_A",
        lines: [
          "0-0:96.1.4(50217)",
          "0-0:96.1.1(3153414731313030303037363136)",
          "0-0:96.1.2(3131313131313131)",
          "1-0:3.8.1(000000747*varh)",
          "1-0:3.8.2(000001.5*kvarh)",
          "1-0:4.8.1(002692848*varh)",
          "1-0:4.8.2(001204878*varh)",
          "0-0:96.13.1(303132333435363738)",
        ],
      }),
    );
    expect(t.values).toMatchObject({
      reactive_energy_import_tariff1_kvarh: 0.747,
      reactive_energy_import_tariff2_kvarh: 1.5,
      reactive_energy_export_tariff1_kvarh: 2692.848,
      reactive_energy_export_tariff2_kvarh: 1204.878,
      text_message_code: "012345678",
      meter_serial: "11111111",
    });
    expect(t.equipmentId).toBe("1SAG1100007616");
    const q3d = decodeTelegram(
      Buffer.from(
        "/ESY5Q3DA1004 V3.04\r\n\r\n1-0:0.0.0*255(1336001560)\r\n1-0:1.8.0*255(00032549.5061662*kWh)\r\n1-0:96.5.5*255(80)\r\n!\r\n",
        "latin1",
      ),
    );
    expect(q3d.ok && q3d.telegram.values.meter_status).toBe("80");
  });

  it("skips an all-zero placeholder id (Irish 1-0:0.0.0(00000000)) for the real one that follows", () => {
    const t = decodeOne(
      buildTelegram({
        header: "ISk5\\2MIE5T-200",
        lines: ["1-0:0.0.0(00000000)", "0-0:96.1.0(3233323232323232323232323232)", "1-0:1.8.0(000123.000*kWh)"],
      }),
    );
    expect(t.equipmentId).toBe("23222222222222");
  });
});

describe("what is a telegram", () => {
  it("refuses a '/' … '!' frame without a DSMR identification line or without data objects", () => {
    for (const junk of [
      "/\x01\x02\x03\x04\x05\r\n1-0:1.8.1(000001.000*kWh)\r\n!\r\n",
      "/ab\r\n!\r\n",
      "/XYZ5 garbage\r\n\r\nnot an object\r\n!\r\n",
      "/12345\r\n1-0:1.8.1(000001.000*kWh)\r\n!\r\n",
    ]) {
      const r = decodeTelegram(Buffer.from(junk, "latin1"));
      expect(r.ok, JSON.stringify(junk)).toBe(false);
    }
  });

  it("turns 1 MB of random bytes into no reading at all", () => {
    const noise = randomBytes(1 << 20);
    const items = stream(noise, 4096);
    expect(ok(items)).toEqual([]);
  });

  it("decodes a good telegram that starts right after a cut one or after garbage, with no line end between", () => {
    const states = simulate(Date.UTC(2026, 0, 10, 12, 0, 0), 3, 1);
    const [a, b, c] = states.map((s) => dsmr5Telegram(s));
    const items = stream(
      Buffer.concat([a!.subarray(0, 200), b!, Buffer.from([0xff, 0x2f, 0x41, 0x21, 0x00, 0x13]), c!]),
      7,
    );
    expect(ok(items).map((t) => t.time)).toEqual([states[1]!.time, states[2]!.time]);
    expect(bad(items)).toEqual([
      "truncated telegram: it ended before '!' (this meter's telegrams end with '!' and a CRC)",
    ]);
  });

  it("takes telegrams without '!' from a meter that never sends one (Iskra MT382), ended by the next or the end", () => {
    const lines = (kwh: string) => ["0-0:96.1.1(4B384547303034303436333935353037)", `1-0:1.8.1(${kwh}*kWh)`];
    const noBang = (kwh: string) => Buffer.from(`/ISk5\\2MT382-1000\r\n\r\n${lines(kwh).join("\r\n")}\r\n`, "latin1");
    const items = stream([noBang("00001.001"), noBang("00001.002"), noBang("00001.003")]);
    // The first could as well have been cut short; the second without '!' shows this meter sends none.
    expect(ok(items).map((t) => t.values.energy_import_tariff1_kwh)).toEqual([1.002, 1.003]);
    expect(bad(items)).toEqual([
      "telegram without '!': taken from the next one on if this meter always ends its telegrams so",
    ]);
    expect(ok(items).every((t) => t.crc === "absent")).toBe(true);
  });

  it("never takes a telegram without '!' from a meter that sends a CRC", () => {
    const [a, b] = simulate(Date.UTC(2026, 0, 10, 12, 0, 0), 2, 1).map((s) => dsmr5Telegram(s));
    const bang = b!.indexOf(0x21);
    const items = stream([a!, b!.subarray(0, bang)]);
    expect(ok(items)).toHaveLength(1);
    expect(bad(items)).toEqual(["incomplete telegram at end of input (no '!' end marker)"]);
    // A DSMR 5 telegram is refused without its CRC even as the first of a stream.
    expect(bad(stream(b!.subarray(0, bang)))).toEqual([
      "truncated telegram: it ended before '!' (this meter's telegrams end with '!' and a CRC)",
    ]);
  });
});
