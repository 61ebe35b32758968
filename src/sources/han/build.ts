import { createCipheriv } from "node:crypto";
import { DateTime } from "luxon";
import { GLO_TAG_BYTES } from "../glo-cipher.js";
import { crc16x25 } from "./crc.js";

/**
 * Builds HAN frames as meters send them (A-XDR data, a data notification, HDLC frames segmented where long, M-Bus
 * long frames, general-glo-ciphering). Used for the project's own captures (tests, benchmark, demo): made, not
 * copied.
 */

// A-XDR elements, encoded.
const len = (n: number): Buffer =>
  n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
export const u8 = (v: number): Buffer => Buffer.from([0x11, v & 0xff]);
export const i8 = (v: number): Buffer => Buffer.from([0x0f, v & 0xff]);
export const enumOf = (v: number): Buffer => Buffer.from([0x16, v & 0xff]);
export const u16 = (v: number): Buffer => Buffer.from([0x12, (v >> 8) & 0xff, v & 0xff]);
export const i16 = (v: number): Buffer => {
  const b = Buffer.alloc(3);
  b[0] = 0x10;
  b.writeInt16BE(v, 1);
  return b;
};
export const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(5);
  b[0] = 0x06;
  b.writeUInt32BE(v >>> 0, 1);
  return b;
};
export const i32 = (v: number): Buffer => {
  const b = Buffer.alloc(5);
  b[0] = 0x05;
  b.writeInt32BE(v | 0, 1);
  return b;
};
export const octets = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0x09]), len(b.length), b]);
export const visible = (s: string): Buffer =>
  Buffer.concat([Buffer.from([0x0a]), len(Buffer.byteLength(s, "latin1")), Buffer.from(s, "latin1")]);
export const structure = (...items: Buffer[]): Buffer =>
  Buffer.concat([Buffer.from([0x02]), len(items.length), ...items]);
export const array = (...items: Buffer[]): Buffer => Buffer.concat([Buffer.from([0x01]), len(items.length), ...items]);

/** "1-0:1.7.0" → its 6-byte octet string (the last group 255). */
export function obis(code: string): Buffer {
  const m = /^(\d+)-(\d+):(\d+)\.(\d+)\.(\d+)$/.exec(code);
  if (!m) throw new Error(`bad OBIS code ${code}`);
  return octets(Buffer.from([...m.slice(1, 6).map(Number), 255]));
}

/** A DLMS date-time (12 bytes) of a UTC instant, as the meter's wall clock in `zone` with its deviation. */
export function dateTimeBytes(utcMs: number, zone = "Europe/Oslo", withDeviation = true): Buffer {
  const dt = DateTime.fromMillis(utcMs, { zone });
  const b = Buffer.alloc(12);
  b.writeUInt16BE(dt.year, 0);
  b[2] = dt.month;
  b[3] = dt.day;
  b[4] = dt.weekday;
  b[5] = dt.hour;
  b[6] = dt.minute;
  b[7] = dt.second;
  b[8] = Math.floor(dt.millisecond / 10);
  b.writeInt16BE(withDeviation ? -dt.offset : -0x8000, 9);
  b[11] = dt.isInDST ? 0x80 : 0x00;
  return b;
}

/** A data notification: invoke id, the optional date-time, the list. */
export function dataNotification(list: Buffer, opts: { invokeId?: number; time?: Buffer } = {}): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 0x0f;
  head.writeUInt32BE((opts.invokeId ?? 0x40000000) >>> 0, 1);
  const time = opts.time ? Buffer.concat([Buffer.from([0x0c]), opts.time]) : Buffer.from([0x00]);
  return Buffer.concat([head, time, list]);
}

/** One HDLC frame around an information field. */
export function hdlcFrame(
  info: Buffer,
  opts: { segmented?: boolean; destination?: number; source?: number; control?: number } = {},
): Buffer {
  const addr = (v: number): number[] => {
    const out: number[] = [];
    let x = v;
    do {
      out.unshift((x & 0x7f) << 1);
      x >>>= 7;
    } while (x > 0);
    out[out.length - 1]! |= 1;
    return out;
  };
  const head = [...addr(opts.destination ?? 0x10), ...addr(opts.source ?? 0x241), opts.control ?? 0x13];
  // A frame without an information field has no header check: its header is followed by the frame check.
  const hcs = info.length > 0 ? 2 : 0;
  const length = 2 + head.length + hcs + info.length + 2;
  if (length > 0x7ff) throw new Error(`HDLC frame of ${length} bytes is longer than the format allows`);
  const b = Buffer.alloc(length + 2);
  b[0] = 0x7e;
  b[1] = 0xa0 | (opts.segmented ? 0x08 : 0) | (length >> 8);
  b[2] = length & 0xff;
  Buffer.from(head).copy(b, 3);
  let at = 3 + head.length;
  if (hcs) {
    b.writeUInt16LE(crc16x25(b, 1, at), at);
    at += 2;
  }
  info.copy(b, at);
  at += info.length;
  b.writeUInt16LE(crc16x25(b, 1, at), at);
  b[at + 2] = 0x7e;
  return b;
}

/** An APDU as HDLC frames: the LLC header first, cut into frames of at most `maxInfo` bytes of information. */
export function hdlcMessage(apdu: Buffer, maxInfo = 0x7ff - 16): Buffer[] {
  const whole = Buffer.concat([Buffer.from([0xe6, 0xe7, 0x00]), apdu]);
  const frames: Buffer[] = [];
  for (let at = 0; at < whole.length; at += maxInfo) {
    const end = Math.min(whole.length, at + maxInfo);
    frames.push(hdlcFrame(whole.subarray(at, end), { segmented: end < whole.length }));
  }
  return frames;
}

/** An APDU as M-Bus long frames (the DLMS transport's segments, 0x68 L L 0x68 … 0x16), as Austrian meters send. */
export function mbusMessage(apdu: Buffer, maxData = 220): Buffer[] {
  const frames: Buffer[] = [];
  const count = Math.max(1, Math.ceil(apdu.length / maxData));
  for (let i = 0; i < count; i++) {
    const data = apdu.subarray(i * maxData, (i + 1) * maxData);
    const ci = (i & 0x0f) | (i === count - 1 ? 0x10 : 0);
    const body = Buffer.concat([Buffer.from([0x53, 0xff, ci, 0x01, 0x67]), data]);
    let sum = 0;
    for (const x of body) sum = (sum + x) & 0xff;
    frames.push(Buffer.concat([Buffer.from([0x68, body.length, body.length, 0x68]), body, Buffer.from([sum, 0x16])]));
  }
  return frames;
}

export interface GloSpec {
  key: Buffer;
  /** The authentication key, when the meter uses one. */
  aad?: Buffer;
  systemTitle?: Buffer;
  counter: number;
}

/** A general-glo-ciphering APDU (0xDB) around a plain APDU: security byte 0x30, AES-128-GCM, a 12-byte tag. */
export function gloEncrypt(plain: Buffer, spec: GloSpec): Buffer {
  const title = spec.systemTitle ?? Buffer.from("KFM\x10\x20\x30\x40\x50", "latin1");
  const fc = Buffer.alloc(4);
  fc.writeUInt32BE(spec.counter >>> 0);
  const c = createCipheriv("aes-128-gcm", spec.key, Buffer.concat([title, fc]), { authTagLength: GLO_TAG_BYTES });
  c.setAAD(spec.aad ? Buffer.concat([Buffer.from([0x30]), spec.aad]) : Buffer.alloc(0));
  const body = Buffer.concat([Buffer.from([0x30]), fc, c.update(plain), c.final(), c.getAuthTag()]);
  return Buffer.concat([Buffer.from([0xdb, 0x08]), title, len(body.length), body]);
}

/** State of a simulated three-phase meter: energies in kWh, powers in W, voltages in V. */
export interface HanState {
  time: number;
  importKwh: number;
  exportKwh: number;
  reactiveImportKvarh: number;
  phaseImportW: [number, number, number];
  phaseExportW: [number, number, number];
  voltage: [number, number, number];
}

const reg = (code: string, value: Buffer, scaler: number, unit: number): Buffer =>
  structure(obis(code), value, structure(i8(scaler), enumOf(unit)));

/** The Aidon three-phase hourly list (described objects with scalers and units, the meter's clock). */
export function aidonList(s: HanState, opts: { zone?: string; meterId?: string } = {}): Buffer {
  const imp = s.phaseImportW.reduce((a, b) => a + b, 0);
  const exp = s.phaseExportW.reduce((a, b) => a + b, 0);
  const items = [
    structure(obis("1-1:0.2.129"), visible("AIDON_V0001")),
    structure(obis("0-0:96.1.0"), visible(opts.meterId ?? "7359992890941742")),
    structure(obis("0-0:96.1.7"), visible("6534")),
    structure(obis("0-0:1.0.0"), octets(dateTimeBytes(s.time, opts.zone ?? "Europe/Oslo", false))),
    reg("1-0:1.7.0", u32(Math.round(imp)), 0, 27),
    reg("1-0:2.7.0", u32(Math.round(exp)), 0, 27),
    // Reactive power as a tenth of the active (a power factor near 0.995), in var.
    reg("1-0:3.7.0", u32(Math.round(imp / 10)), 0, 29),
    ...s.voltage.map((v, i) => reg(`1-0:${32 + 20 * i}.7.0`, u16(Math.round(v * 10)), -1, 35)),
    ...s.phaseImportW.map((w, i) =>
      reg(`1-0:${31 + 20 * i}.7.0`, i16(Math.round(((w - s.phaseExportW[i]!) / s.voltage[i]!) * 10)), -1, 33),
    ),
    ...s.phaseImportW.map((w, i) => reg(`1-0:${21 + 20 * i}.7.0`, u32(Math.round(w)), 0, 27)),
    ...s.phaseExportW.map((w, i) => reg(`1-0:${22 + 20 * i}.7.0`, u32(Math.round(w)), 0, 27)),
    reg("1-0:1.8.0", u32(Math.round(s.importKwh * 1000)), 0, 30),
    reg("1-0:2.8.0", u32(Math.round(s.exportKwh * 1000)), 0, 30),
    reg("1-0:3.8.0", u32(Math.round(s.reactiveImportKvarh * 1000)), 0, 32),
  ];
  return array(...items);
}

/** A simulated meter's states, `stepS` apart: a household load with some solar export around noon. */
export function simulateHan(start: number, count: number, stepS = 10): HanState[] {
  const out: HanState[] = [];
  let importKwh = 12345.678;
  let exportKwh = 234.5;
  let reactive = 456.789;
  for (let i = 0; i < count; i++) {
    const time = start + i * stepS * 1000;
    const phaseImportW: [number, number, number] = [
      400 + ((i * 37) % 900),
      250 + ((i * 53) % 400),
      i % 5 === 0 ? 2000 : 120,
    ];
    const phaseExportW: [number, number, number] = [0, i % 7 === 3 ? 180 : 0, 0];
    const imp = phaseImportW.reduce((a, b) => a + b, 0);
    const exp = phaseExportW.reduce((a, b) => a + b, 0);
    importKwh += (imp * stepS) / 3_600_000;
    exportKwh += (exp * stepS) / 3_600_000;
    reactive += (120 * stepS) / 3_600_000;
    out.push({
      time,
      importKwh,
      exportKwh,
      reactiveImportKvarh: reactive,
      phaseImportW,
      phaseExportW,
      voltage: [230.1 + (i % 3), 231.4, 229.8 - (i % 2)],
    });
  }
  return out;
}

/** One meter state as bytes on the wire: an Aidon list in a data notification, in HDLC frames. */
export function aidonFrames(s: HanState, opts: { maxInfo?: number; glo?: GloSpec; zone?: string } = {}): Buffer {
  let apdu = dataNotification(aidonList(s, { zone: opts.zone }));
  if (opts.glo) apdu = gloEncrypt(apdu, opts.glo);
  return Buffer.concat(hdlcMessage(apdu, opts.maxInfo));
}
