import { createCipheriv } from "node:crypto";
import { DateTime } from "luxon";
import { crc16 } from "./crc.js";

/**
 * Builds DSMR telegrams as meters write them (CRLF lines, zero-padded values, CRC over '/'…'!').
 * Used for the project's own captures (demo, tests, benchmarks), so they are made, not copied.
 */

/** "YYMMDDhhmmssS" in the meter's zone, with S/W from whether DST is in effect. */
export function dsmrTime(utcMs: number, zone = "Europe/Amsterdam"): string {
  const dt = DateTime.fromMillis(utcMs, { zone });
  return `${dt.toFormat("yyMMddHHmmss")}${dt.isInDST ? "S" : "W"}`;
}

/** Zero-padded fixed-point number as meters print it: num(4.426, 6, 3) → "000004.426". */
export function num(value: number, intDigits: number, decimals: number): string {
  const [i, f] = Math.abs(value).toFixed(decimals).split(".") as [string, string | undefined];
  return `${value < 0 ? "-" : ""}${i.padStart(intDigits, "0")}${f !== undefined ? `.${f}` : ""}`;
}

export interface TelegramSpec {
  /** Header text after '/', e.g. "ISK5\\2M550T-1012". */
  header: string;
  /** Object lines without CRLF, e.g. "1-0:1.8.1(000004.426*kWh)". */
  lines: string[];
  /** DSMR 4+: append the CRC. DSMR 2/3 telegrams end with a bare '!'. */
  crc?: boolean;
}

export function buildTelegram(spec: TelegramSpec): Buffer {
  const body = `/${spec.header}\r\n\r\n${spec.lines.map((l) => `${l}\r\n`).join("")}!`;
  const bytes = Buffer.from(body, "latin1");
  if (spec.crc === false) return Buffer.concat([bytes, Buffer.from("\r\n")]);
  const crc = crc16(bytes).toString(16).toUpperCase().padStart(4, "0");
  return Buffer.concat([bytes, Buffer.from(`${crc}\r\n`, "latin1")]);
}

/** State of a simulated household meter; all energies in kWh, powers in W. */
export interface MeterState {
  time: number;
  importT1: number;
  importT2: number;
  exportT1: number;
  exportT2: number;
  tariff: 1 | 2;
  /** Per phase import and export power. */
  phaseImportW: [number, number, number];
  phaseExportW: [number, number, number];
  voltage: [number, number, number];
  gasM3?: number;
  gasAt?: number;
  waterM3?: number;
  waterAt?: number;
  /** Belgian capacity tariff: running quarter-hour average and the month's peak. */
  quarterHourW?: number;
  monthPeakW?: number;
  monthPeakAt?: number;
  powerFailures?: number;
  longPowerFailures?: number;
}

const kw = (w: number): string => num(w / 1000, 2, 3);

/** A Dutch DSMR 5.0 telegram (Iskra/Kaifa style), with gas on M-Bus channel 1. */
export function dsmr5Telegram(s: MeterState, zone = "Europe/Amsterdam"): Buffer {
  const imp = s.phaseImportW.reduce((a, b) => a + b, 0);
  const exp = s.phaseExportW.reduce((a, b) => a + b, 0);
  const lines = [
    "1-3:0.2.8(50)",
    `0-0:1.0.0(${dsmrTime(s.time, zone)})`,
    "0-0:96.1.1(4530303434303037333832323436303139)",
    `1-0:1.8.1(${num(s.importT1, 6, 3)}*kWh)`,
    `1-0:1.8.2(${num(s.importT2, 6, 3)}*kWh)`,
    `1-0:2.8.1(${num(s.exportT1, 6, 3)}*kWh)`,
    `1-0:2.8.2(${num(s.exportT2, 6, 3)}*kWh)`,
    `0-0:96.14.0(${num(s.tariff, 4, 0)})`,
    `1-0:1.7.0(${kw(imp)}*kW)`,
    `1-0:2.7.0(${kw(exp)}*kW)`,
    `0-0:96.7.21(${num(s.powerFailures ?? 4, 5, 0)})`,
    `0-0:96.7.9(${num(s.longPowerFailures ?? 1, 5, 0)})`,
    `1-0:99.97.0(1)(0-0:96.7.19)(${dsmrTime(Date.UTC(2024, 0, 9, 13, 2, 11), zone)})(0000000412*s)`,
    "1-0:32.32.0(00002)",
    "1-0:52.32.0(00001)",
    "1-0:72.32.0(00000)",
    "1-0:32.36.0(00000)",
    "1-0:52.36.0(00000)",
    "1-0:72.36.0(00000)",
    "0-0:96.13.0()",
    ...s.voltage.map((v, i) => `1-0:${32 + 20 * i}.7.0(${num(v, 3, 1)}*V)`),
    ...s.phaseImportW.map(
      (w, i) => `1-0:${31 + 20 * i}.7.0(${num(Math.round((w + s.phaseExportW[i]!) / s.voltage[i]!), 3, 0)}*A)`,
    ),
    ...s.phaseImportW.map((w, i) => `1-0:${21 + 20 * i}.7.0(${kw(w)}*kW)`),
    ...s.phaseExportW.map((w, i) => `1-0:${22 + 20 * i}.7.0(${kw(w)}*kW)`),
  ];
  if (s.gasM3 !== undefined) {
    lines.push(
      "0-1:24.1.0(003)",
      "0-1:96.1.0(4730303339303031393336393930363139)",
      `0-1:24.2.1(${dsmrTime(s.gasAt ?? s.time, zone)})(${num(s.gasM3, 5, 3)}*m3)`,
    );
  }
  return buildTelegram({ header: "ISK5\\2M550T-1012", lines });
}

/** A Belgian Fluvius e-MUCS telegram with the capacity-tariff peaks, gas on channel 1 and water on 2. */
export function fluviusTelegram(s: MeterState, zone = "Europe/Brussels"): Buffer {
  const imp = s.phaseImportW.reduce((a, b) => a + b, 0);
  const exp = s.phaseExportW.reduce((a, b) => a + b, 0);
  const lines = [
    "0-0:96.1.4(50217)",
    "0-0:96.1.1(3153414733313031303231363035)",
    `0-0:1.0.0(${dsmrTime(s.time, zone)})`,
    `1-0:1.8.1(${num(s.importT1, 6, 3)}*kWh)`,
    `1-0:1.8.2(${num(s.importT2, 6, 3)}*kWh)`,
    `1-0:2.8.1(${num(s.exportT1, 6, 3)}*kWh)`,
    `1-0:2.8.2(${num(s.exportT2, 6, 3)}*kWh)`,
    `0-0:96.14.0(${num(s.tariff, 4, 0)})`,
    `1-0:1.4.0(${kw(s.quarterHourW ?? 0)}*kW)`,
    `1-0:1.6.0(${dsmrTime(s.monthPeakAt ?? s.time, zone)})(${kw(s.monthPeakW ?? 0)}*kW)`,
    `0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(${dsmrTime(Date.UTC(2026, 9, 31, 23), zone)})(${dsmrTime(Date.UTC(2026, 9, 14, 17, 45), zone)})(04.321*kW)`,
    `1-0:1.7.0(${kw(imp)}*kW)`,
    `1-0:2.7.0(${kw(exp)}*kW)`,
    ...s.phaseImportW.map((w, i) => `1-0:${21 + 20 * i}.7.0(${kw(w)}*kW)`),
    ...s.phaseExportW.map((w, i) => `1-0:${22 + 20 * i}.7.0(${kw(w)}*kW)`),
    ...s.voltage.map((v, i) => `1-0:${32 + 20 * i}.7.0(${num(v, 3, 1)}*V)`),
    ...s.phaseImportW.map((w, i) => `1-0:${31 + 20 * i}.7.0(${num((w + s.phaseExportW[i]!) / s.voltage[i]!, 3, 2)}*A)`),
    "0-0:96.3.10(1)",
    "0-0:17.0.0(999.9*kW)",
    "1-0:31.4.0(999*A)",
    "0-0:96.13.0()",
  ];
  if (s.gasM3 !== undefined) {
    lines.push(
      "0-1:24.1.0(003)",
      "0-1:96.1.1(37464C4F32313139303333373333)",
      "0-1:24.4.0(1)",
      `0-1:24.2.3(${dsmrTime(s.gasAt ?? s.time, zone)})(${num(s.gasM3, 5, 3)}*m3)`,
    );
  }
  if (s.waterM3 !== undefined) {
    lines.push(
      "0-2:24.1.0(007)",
      "0-2:96.1.1(3853414731323334353637383930)",
      `0-2:24.2.1(${dsmrTime(s.waterAt ?? s.time, zone)})(${num(s.waterM3, 5, 3)}*m3)`,
    );
  }
  return buildTelegram({ header: "FLU5\\253769484_A", lines });
}

/**
 * A deterministic household: base load, a kettle, solar export around noon, gas every 5 minutes.
 * Step `n` is `n` seconds after `start`. Energy registers integrate the power exactly.
 */
export function simulate(start: number, count: number, stepS = 1, belgian = false): MeterState[] {
  const out: MeterState[] = [];
  const s: MeterState = {
    time: start,
    importT1: 1234.567,
    importT2: 2345.678,
    exportT1: 345.678,
    exportT2: 456.789,
    tariff: 2,
    phaseImportW: [0, 0, 0],
    phaseExportW: [0, 0, 0],
    voltage: [230.1, 231.4, 229.8],
    gasM3: 4321.123,
    gasAt: start - (start % 300_000),
    ...(belgian
      ? { waterM3: 87.654, waterAt: start - (start % 300_000), quarterHourW: 0, monthPeakW: 2500, monthPeakAt: start }
      : {}),
  };
  let qhSum = 0;
  let qhN = 0;
  for (let n = 0; n < count; n++) {
    const t = start + n * stepS * 1000;
    const sec = Math.floor(t / 1000);
    // A kettle for 3 minutes every 20 minutes on L1, a fridge cycling on L2, a solar surge on L3.
    const kettle = sec % 1200 < 180 ? 2200 : 0;
    const fridge = sec % 600 < 240 ? 120 : 5;
    const solar = Math.max(0, Math.round(1800 * Math.sin(((sec % 3600) / 3600) * Math.PI)));
    const l1 = 180 + kettle + (sec % 7) * 3;
    const l2 = 60 + fridge;
    const l3 = 90 - solar;
    s.phaseImportW = [l1, l2, Math.max(0, l3)];
    s.phaseExportW = [0, 0, Math.max(0, -l3)];
    const imp = s.phaseImportW.reduce((a, b) => a + b, 0);
    const exp = s.phaseExportW.reduce((a, b) => a + b, 0);
    if (n > 0) {
      const dtH = (stepS * 1000) / 3_600_000;
      const hour = new Date(t).getUTCHours();
      s.tariff = hour >= 6 && hour < 22 ? 2 : 1;
      if (s.tariff === 1) {
        s.importT1 += (imp / 1000) * dtH;
        s.exportT1 += (exp / 1000) * dtH;
      } else {
        s.importT2 += (imp / 1000) * dtH;
        s.exportT2 += (exp / 1000) * dtH;
      }
    }
    s.time = t;
    if (t % 300_000 < stepS * 1000 && n > 0) {
      s.gasM3 = (s.gasM3 ?? 0) + 0.012 + (sec % 3) * 0.001;
      s.gasAt = t - (t % 300_000);
      if (belgian) {
        s.waterM3 = (s.waterM3 ?? 0) + 0.004;
        s.waterAt = s.gasAt;
      }
    }
    if (belgian) {
      if (t % 900_000 < stepS * 1000) {
        qhSum = 0;
        qhN = 0;
      }
      qhSum += imp;
      qhN++;
      s.quarterHourW = Math.round(qhSum / qhN);
      if (s.quarterHourW > (s.monthPeakW ?? 0)) {
        s.monthPeakW = s.quarterHourW;
        s.monthPeakAt = t;
      }
    }
    out.push({
      ...s,
      phaseImportW: [...s.phaseImportW],
      phaseExportW: [...s.phaseExportW],
      voltage: [...s.voltage],
    });
  }
  return out;
}

export interface EncryptSpec {
  key: Buffer;
  /** The authentication key, when the meter's frames authenticate it. */
  aad?: Buffer;
  /** 8 bytes; the first three are the manufacturer's FLAG code on real meters. */
  systemTitle: Buffer;
  counter: number;
}

/**
 * Wraps a telegram as an encrypting meter sends it: general-glo-ciphering (0xDB), system title, length, security
 * byte 0x30, frame counter, AES-128-GCM ciphertext and a 12-byte tag (for tests, the demo and the benchmark).
 */
export function encryptTelegram(plain: Buffer, spec: EncryptSpec): Buffer {
  const fc = Buffer.alloc(4);
  fc.writeUInt32BE(spec.counter >>> 0);
  const iv = Buffer.concat([spec.systemTitle, fc]);
  const c = createCipheriv("aes-128-gcm", spec.key, iv, { authTagLength: 12 });
  c.setAAD(spec.aad ? Buffer.concat([Buffer.from([0x30]), spec.aad]) : Buffer.alloc(0));
  const ct = Buffer.concat([c.update(plain), c.final()]);
  const tag = c.getAuthTag();
  const len = Buffer.alloc(2);
  len.writeUInt16BE(1 + 4 + ct.length + tag.length);
  return Buffer.concat([
    Buffer.from([0xdb, 0x08]),
    spec.systemTitle,
    Buffer.from([0x82]),
    len,
    Buffer.from([0x30]),
    fc,
    ct,
    tag,
  ]);
}
