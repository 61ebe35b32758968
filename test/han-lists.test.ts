/**
 * The COSEM list layouts and DLMS times that the samples do not cover, on lists built here: Kaifa's values-only
 * lists, units that do not fit a code, lists of no known layout, and the meter's clock around DST changes.
 */
import { describe, expect, it } from "vitest";
import {
  dataNotification,
  dateTimeBytes,
  enumOf,
  i8,
  obis,
  octets,
  structure,
  u16,
  u32,
  visible,
} from "../src/sources/han/build.js";
import { decodeNotification, type HanTelegram } from "../src/sources/han/decode.js";
import { dlmsDateTime } from "../src/sources/han/time.js";

function decode(list: Buffer, time?: Buffer): HanTelegram {
  const r = decodeNotification(dataNotification(list, { time }), { timezone: "Europe/Oslo" });
  if (!r.ok) throw new Error(r.reason);
  return r.telegram;
}

const kaifaHead = [visible("Kfm_001"), visible("6970631401753985"), visible("MA304H3E")];
const kaifa3p = [
  ...kaifaHead,
  u32(1234), // P+ W
  u32(0), // P- W
  u32(56), // Q+ var
  u32(78), // Q- var
  u32(1456), // I1 mA
  u32(2017), // I2 mA
  u32(988), // I3 mA
  u32(2301), // U1 0.1 V
  u32(0), // U2 (IT grid: none)
  u32(2299), // U3 0.1 V
];

describe("Kaifa (values only, in a fixed order)", () => {
  it("three-phase list 2: powers, currents in mA, voltages in 0.1 V, the identity", () => {
    const t = decode(structure(...kaifa3p), dateTimeBytes(Date.UTC(2026, 0, 10, 12, 0, 2)));
    expect(t.layout).toBe("kaifa-3p");
    expect(t.values).toEqual({
      power_import_w: 1234,
      power_export_w: 0,
      reactive_power_import_var: 56,
      reactive_power_export_var: 78,
      current_l1_a: 1.456,
      current_l2_a: 2.017,
      current_l3_a: 0.988,
      voltage_l1_v: 230.1,
      voltage_l2_v: 0,
      voltage_l3_v: 229.9,
      power_net_w: 1234,
    });
    expect(t.meter).toEqual({
      version: "Kfm_001",
      meterId: "6970631401753985",
      meterType: "MA304H3E",
      manufacturer: "Kaifa",
    });
    expect(t.time).toBe(Date.UTC(2026, 0, 10, 12, 0, 2));
  });

  it("the hourly list 3 adds the clock and the energy registers (Wh)", () => {
    const hour = Date.UTC(2026, 6, 10, 10, 0, 0);
    const list = structure(
      ...kaifa3p,
      octets(dateTimeBytes(hour, "Europe/Oslo", false)),
      u32(12_345_678),
      u32(9_876),
      u32(543_210),
      u32(12),
    );
    const t = decode(list);
    expect(t.layout).toBe("kaifa-3p-hour");
    expect(t.time).toBe(hour);
    expect(t.values).toMatchObject({
      energy_import_kwh: 12345.678,
      energy_export_kwh: 9.876,
      reactive_energy_import_kvarh: 543.21,
      reactive_energy_export_kvarh: 0.012,
    });
  });

  it("one-phase lists, and list 1 with the import power alone", () => {
    const one = decode(structure(...kaifaHead, u32(500), u32(0), u32(0), u32(0), u32(2174), u32(2345)));
    expect(one.layout).toBe("kaifa-1p");
    expect(one.values).toMatchObject({ current_l1_a: 2.174, voltage_l1_v: 234.5 });
    expect(decode(structure(u32(777))).values).toEqual({ power_import_w: 777, power_net_w: 777 });
  });
});

describe("described lists", () => {
  const reg = (code: string, v: Buffer, scaler: number, unit: number) =>
    structure(obis(code), v, structure(i8(scaler), enumOf(unit)));

  it("scalers apply; a value in a unit that does not fit its code is left out, not published wrongly", () => {
    const t = decode(
      structure(
        reg("1-0:1.8.0", u32(12345), 1, 30), // 123450 Wh
        reg("1-0:2.7.0", u32(5), 3, 27), // 5 kW as W × 10^3
        reg("1-0:32.7.0", u16(2301), -1, 33), // a voltage code with the unit A: not a voltage
        reg("1-0:99.99.0", u32(1), 0, 27), // no catalogue quantity
      ),
    );
    expect(t.values).toEqual({ energy_import_kwh: 123.45, power_export_w: 5000 });
    expect(t.unknown).toEqual(["1-0:32.7.0", "1-0:99.99.0"]);
  });

  it("a list of no known layout, or data of an unknown type, is refused with the reason", () => {
    const r = decodeNotification(dataNotification(structure(u16(1), u16(2), visible("x"))));
    expect(r).toEqual({ ok: false, reason: "a COSEM list of 3 elements of no known layout" });
    const bad = decodeNotification(Buffer.from([0x0f, 0, 0, 0, 1, 0, 0x02, 0x01, 0x7f]));
    expect(bad).toEqual({ ok: false, reason: "unknown data type 0x7f" });
    expect(decodeNotification(Buffer.from([0xc4, 1, 2]))).toMatchObject({ ok: false });
  });
});

describe("codes and values one after another", () => {
  it("Austrian wired M-Bus lists: the clock first, then code, value and scaler/unit", () => {
    const at = Date.UTC(2026, 2, 3, 17, 45, 5);
    const su = (scaler: number, unit: number) => structure(i8(scaler), enumOf(unit));
    const t = decode(
      structure(
        octets(dateTimeBytes(at, "Europe/Vienna")),
        obis("1-0:32.7.0"),
        u16(2301),
        su(-1, 35),
        obis("1-0:31.7.0"),
        u16(123),
        su(-2, 33),
        obis("1-0:1.7.0"),
        u32(1530),
        su(0, 27),
        obis("1-0:1.8.0"),
        u32(4_567_890),
        su(0, 30),
        obis("0-0:96.1.0"),
        visible("1KFM0200012345"),
      ),
    );
    expect(t.layout).toBe("pairs");
    expect(t.time).toBe(at);
    expect(t.values).toEqual({
      voltage_l1_v: 230.1,
      current_l1_a: 1.23,
      power_import_w: 1530,
      energy_import_kwh: 4567.89,
      power_net_w: 1530,
    });
    expect(t.meter).toEqual({ meterId: "1KFM0200012345", manufacturer: "Kaifa" });
  });
});

describe("the meter's clock", () => {
  const dt = (hex: string) => dlmsDateTime(Buffer.from(hex.replace(/\s/g, ""), "hex"), "Europe/Oslo");

  it("with a deviation: local time plus the deviation is UTC", () => {
    expect(dt("07ea 01 0a 06 0c 00 00 00 ffc4 00")).toBe(Date.UTC(2026, 0, 10, 11, 0, 0));
    expect(dt("07ea 07 0a 05 0c 00 00 00 ff88 80")).toBe(Date.UTC(2026, 6, 10, 10, 0, 0));
  });

  it("without one, the repeated autumn hour is told apart by the DST bit", () => {
    // 25 October 2026, 02:30 in Oslo happens twice: 00:30 UTC (CEST) and 01:30 UTC (CET).
    expect(dt("07ea 0a 19 07 02 1e 00 00 8000 80")).toBe(Date.UTC(2026, 9, 25, 0, 30));
    expect(dt("07ea 0a 19 07 02 1e 00 00 8000 00")).toBe(Date.UTC(2026, 9, 25, 1, 30));
  });

  it("unspecified or impossible dates are no time", () => {
    expect(dt("ffff 01 0a 06 0c 00 00 00 8000 ff")).toBeUndefined();
    expect(dt("07ea ff 0a 06 0c 00 00 00 8000 ff")).toBeUndefined();
    expect(dt("07ea 02 1e 06 0c 00 00 00 8000 ff")).toBeUndefined(); // 30 February
    expect(dt("07ea 01 0a 06 18 00 00 00 8000 ff")).toBeUndefined(); // hour 24
    expect(dt("07ea 01 0a 06 0c 00 00 00 0800 00")).toBeUndefined(); // deviation of 2048 min
  });
});
