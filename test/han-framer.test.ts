/**
 * HAN framing on the project's own frames (src/sources/han/build.ts): HDLC checks, segmented messages split at
 * every byte position of a stream, cut frames and noise skipped without losing the frame behind them, and the
 * same APDU over wired M-Bus long frames (Austria).
 */
import { describe, expect, it } from "vitest";
import {
  aidonFrames,
  aidonList,
  dataNotification,
  gloEncrypt,
  hdlcFrame,
  hdlcMessage,
  mbusMessage,
  simulateHan,
} from "../src/sources/han/build.js";
import { crc16x25 } from "../src/sources/han/crc.js";
import type { HanTelegram } from "../src/sources/han/decode.js";
import { HdlcFramer } from "../src/sources/han/hdlc.js";
import { type HanItem, HanStream, type HanStreamOptions } from "../src/sources/han/stream.js";

const states = simulateHan(Date.UTC(2026, 0, 15, 9, 0, 0), 4, 10);
const KEY = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
const AAD = Buffer.from("d0d1d2d3d4d5d6d7d8d9dadbdcdddedf", "hex");

function read(bytes: Buffer, opts: HanStreamOptions = {}, cuts: number[] = []): HanItem[] {
  const s = new HanStream(opts);
  const out: HanItem[] = [];
  let at = 0;
  for (const c of cuts) {
    s.push(bytes.subarray(at, c), out);
    at = c;
  }
  s.push(bytes.subarray(at), out);
  s.end(out);
  return out;
}
const readings = (items: HanItem[]): HanTelegram[] => items.flatMap((i) => (i.ok ? [i.telegram] : []));
const times = (items: HanItem[]): (number | undefined)[] => readings(items).map((t) => t.time);

describe("CRC-16/X-25", () => {
  it("has the catalogue check value and matches the samples' header checks", () => {
    expect(crc16x25(Buffer.from("123456789"))).toBe(0x906e);
    // Aidon's header (format to control), HCS 0xD682 sent low byte first.
    expect(crc16x25(Buffer.from("a0d241088313", "hex"))).toBe(0xd682);
  });
});

describe("frames of our own making", () => {
  it("decode to the simulated meter's values, in UTC", () => {
    for (const s of states) {
      const [t] = readings(read(aidonFrames(s)));
      expect(t).toBeDefined();
      expect(t!.time).toBe(s.time);
      // Registers in Wh: the meter rounds to the watt-hour.
      const wh = (kwh: number): number => Math.round(kwh * 1000) / 1000;
      expect(t!.values.energy_import_kwh).toBeCloseTo(wh(s.importKwh), 9);
      expect(t!.values.energy_export_kwh).toBeCloseTo(wh(s.exportKwh), 9);
      expect(t!.values.reactive_energy_import_kvarh).toBeCloseTo(wh(s.reactiveImportKvarh), 9);
      s.phaseImportW.forEach((w, i) => {
        expect(t!.values[`power_import_l${i + 1}_w`]).toBe(w);
      });
      s.voltage.forEach((v, i) => {
        expect(t!.values[`voltage_l${i + 1}_v`]).toBeCloseTo(v, 1);
      });
      expect(t!.values.power_import_w).toBe(s.phaseImportW.reduce((a, b) => a + b, 0));
      expect(t!.meter).toMatchObject({ manufacturer: "Aidon", meterId: "7359992890941742", meterType: "6534" });
    }
  });

  it("take the clock in the configured zone, summer and winter", () => {
    const summer = simulateHan(Date.UTC(2026, 6, 1, 12, 0, 0), 1)[0]!;
    for (const zone of ["Europe/Oslo", "Europe/Vienna", "Europe/Stockholm"]) {
      const [t] = readings(read(aidonFrames(summer, { zone }), { timezone: zone }));
      expect(new Date(t!.time!).toISOString()).toBe("2026-07-01T12:00:00.000Z");
    }
  });
});

describe("segmented messages", () => {
  const segmented = aidonFrames(states[1]!, { maxInfo: 60 });
  const stream = Buffer.concat([aidonFrames(states[0]!), segmented, aidonFrames(states[2]!)]);
  const want = [states[0]!.time, states[1]!.time, states[2]!.time];

  it("are joined from their frames", () => {
    const f = new HdlcFramer();
    const ev: Parameters<HdlcFramer["push"]>[1] = [];
    f.push(segmented, ev);
    f.end(ev);
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ frames: Math.ceil((aidonList(states[1]!).length + 9) / 60) });
    expect(times(read(stream))).toEqual(want);
  });

  it("decode the same when the stream is cut at every byte position", () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const items = read(stream, {}, [cut]);
      expect(items.filter((i) => !i.ok)).toEqual([]);
      expect(times(items)).toEqual(want);
    }
  });

  it("decode the same when the stream arrives one byte at a time", () => {
    const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
    expect(times(read(stream, {}, cuts))).toEqual(want);
  });

  it("cut short at any byte never give a reading, and the message after it is kept", () => {
    const next = aidonFrames(states[2]!);
    // Up to its last frame's closing flag, which the next frame's opening flag stands in for.
    for (let cut = 1; cut < segmented.length - 1; cut++) {
      const items = read(Buffer.concat([segmented.subarray(0, cut), next]));
      expect(times(items)).toEqual([states[2]!.time]);
    }
  });

  it("missing a middle frame are rejected, not glued together", () => {
    const frames = hdlcMessage(dataNotification(aidonList(states[1]!)), 60);
    expect(frames.length).toBeGreaterThan(3);
    const withoutOne = Buffer.concat([...frames.slice(0, 2), ...frames.slice(3), aidonFrames(states[2]!)]);
    const items = read(withoutOne);
    expect(times(items)).toEqual([states[2]!.time]);
    expect(items.some((i) => !i.ok)).toBe(true);
  });

  it("encrypted and segmented: decrypted once joined", () => {
    const glo = { key: KEY, aad: AAD, counter: 7 };
    const bytes = aidonFrames(states[3]!, { maxInfo: 100, glo });
    const items = read(bytes, { key: KEY, aad: AAD });
    expect(readings(items).map((t) => [t.time, t.encrypted])).toEqual([[states[3]!.time, true]]);
  });
});

describe("noise, cut frames and flags", () => {
  const a = aidonFrames(states[0]!);
  const b = aidonFrames(states[1]!);

  it("noise between frames, with flags and format bytes in it, is skipped", () => {
    const noise = Buffer.from([0x7e, 0xa0, 0x12, 0x00, 0x7e, 0x7e, 0x55, 0xa8, 0x7e, 0xa0, 0x05, 0x41, 0x08, 0x83]);
    expect(times(read(Buffer.concat([noise, a, noise, b, noise])))).toEqual([states[0]!.time, states[1]!.time]);
  });

  it("frames sharing their flags (the closing one opens the next) are read", () => {
    const shared = Buffer.concat([a.subarray(0, a.length - 1), b]);
    expect(times(read(shared))).toEqual([states[0]!.time, states[1]!.time]);
  });

  it("a frame with a bad frame check is rejected with the reason", () => {
    const bad = Buffer.from(a);
    bad[bad.length - 2]! ^= 0xff;
    const items = read(Buffer.concat([bad, b]));
    expect(times(items)).toEqual([states[1]!.time]);
    expect(items.filter((i) => !i.ok).map((i) => (i as { reason: string }).reason)).toContain(
      "HDLC frame check (CRC) failed",
    );
  });

  it("a frame without an information field is not a reading", () => {
    const empty = hdlcFrame(Buffer.alloc(0));
    expect(read(Buffer.concat([empty, a])).map((i) => i.ok)).toEqual([true]);
  });

  it("a long run of noise is reported, so a wrong baud rate shows", () => {
    const noise = Buffer.alloc(3000, 0x55);
    const items = read(noise);
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((i) => !i.ok)).toBe(true);
    expect((items[0] as { reason: string }).reason).toMatch(/without an HDLC frame/);
  });
});

describe("wired M-Bus (Austria): the same APDU in another framing", () => {
  const glo = (counter: number) => ({ key: KEY, counter });
  const msg = (i: number): Buffer =>
    Buffer.concat(mbusMessage(gloEncrypt(dataNotification(aidonList(states[i]!)), glo(100 + i))));

  it("long frames are checked, joined and decrypted", () => {
    const stream = Buffer.concat([msg(0), msg(1)]);
    const items = read(stream, { framing: "mbus", key: KEY });
    expect(readings(items).map((t) => [t.time, t.encrypted])).toEqual([
      [states[0]!.time, true],
      [states[1]!.time, true],
    ]);
  });

  it("cut at every byte position, the stream decodes the same", () => {
    const stream = Buffer.concat([msg(0), msg(1)]);
    for (let cut = 1; cut < stream.length; cut++)
      expect(times(read(stream, { framing: "mbus", key: KEY }, [cut]))).toEqual([states[0]!.time, states[1]!.time]);
  });

  it("framing auto (the default) finds M-Bus or HDLC by itself, whatever came before", () => {
    const noise = Buffer.from([0x68, 0x05, 0x7e, 0xa0, 0x16, 0x00]);
    const mbus = Buffer.concat([noise, msg(0), msg(1)]);
    expect(times(read(mbus, { key: KEY }))).toEqual([states[0]!.time, states[1]!.time]);
    const hdlc = Buffer.concat([noise, aidonFrames(states[2]!), aidonFrames(states[3]!)]);
    for (const cut of [1, 50, 200]) expect(times(read(hdlc, {}, [cut]))).toEqual([states[2]!.time, states[3]!.time]);
    const s = new HanStream({ key: KEY });
    expect(s.framing).toBe("HDLC or M-Bus");
    s.push(msg(0));
    expect(s.framing).toBe("M-Bus");
  });

  it("a frame with a bad checksum loses its message only", () => {
    const bad = msg(0);
    bad[10]! ^= 0x01;
    const items = read(Buffer.concat([bad, msg(1)]), { framing: "mbus", key: KEY });
    expect(times(items)).toEqual([states[1]!.time]);
    expect(items.some((i) => !i.ok && /checksum/.test(i.reason))).toBe(true);
  });
});
