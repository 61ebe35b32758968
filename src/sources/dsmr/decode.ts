import { QUANTITIES } from "../../model/quantities.js";
import { crc16 } from "./crc.js";
import { identLineEnd } from "./framer.js";
import { MANUFACTURERS, MBUS_KIND, NUMERIC, obisKey, obisString, parseObis, unitOf } from "./obis.js";
import { isPlaceholderTime, parseDsmrTime } from "./time.js";

/**
 * DSMR telegram decoder: a pure function over the bytes of one frame ('/' … '!' CRC).
 * One pass over the bytes, no regular expressions and no intermediate line strings: the
 * most used Python parser runs a regex over the whole telegram for every object it knows.
 */

export interface MbusDevice {
  channel: number;
  /** EN 13757-3 device type (3 gas, 7 water, 4/12 heat), when the telegram says. */
  type?: number;
  id?: string;
  value?: number;
  unit?: string;
  /** UTC ms of the device's own reading; null when the meter sent a placeholder or invalid date. */
  at?: number | null;
  valve?: number;
}

export interface PowerFailure {
  /** UTC ms when the failure ended, null if the meter's timestamp is invalid. */
  end: number | null;
  durationS: number;
}

export interface MonthPeak {
  /** Start of the month the peak belongs to (UTC ms). */
  month: number | null;
  /** When the peak quarter-hour occurred (UTC ms). */
  at: number | null;
  w: number;
}

export interface Telegram {
  /** Header after '/', e.g. "ISk5\2MT382-1000". Non-ASCII bytes are kept as Latin-1. */
  header: string;
  manufacturer: string;
  model: string;
  /** P1 version as the meter states it ("50", "42", Fluvius "50217"), if it does. */
  version?: string;
  /** UTC ms of the telegram (0-0:1.0.0); absent on DSMR 2/3 and EasyMeter. */
  time?: number;
  equipmentId?: string;
  /**
   * "valid": the CRC matched; "absent": the meter sends none (DSMR 2/3); "encrypted": the telegram came in an
   * encrypted frame whose authentication tag vouched for every byte (the CRC inside is then not needed).
   */
  crc: "valid" | "absent" | "encrypted";
  /** Catalogue quantities (src/model/quantities.ts). */
  values: Record<string, number | string>;
  mbus: MbusDevice[];
  powerFailureLog?: PowerFailure[];
  monthPeaks?: MonthPeak[];
  /** Every object as its raw value groups, keyed by OBIS code; only with `raw: true`. */
  raw?: Record<string, string[]>;
}

export type DecodeResult = { ok: true; telegram: Telegram } | { ok: false; reason: string };

export interface DecodeOptions {
  /** Zone of the meter's clock; default Europe/Amsterdam. */
  timezone?: string;
  raw?: boolean;
  /** The frame ended at the next identification line or a quiet line, without '!' (meters without CRC). */
  unterminated?: boolean;
  /** The frame was decrypted and its GCM tag checked: a CRC mismatch inside is not a reason to refuse it. */
  authenticated?: boolean;
}

const SLASH = 0x2f;
const BANG = 0x21;
const LPAREN = 0x28;
const RPAREN = 0x29;
const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOT = 0x2e;

type Handler = (ctx: Ctx, channel: number) => void;

interface Ctx {
  buf: Buffer;
  /** Start and end offsets of the value groups of the current object, without parentheses. */
  gs: Int32Array;
  ge: Int32Array;
  n: number;
  zone: string;
  t: Telegram;
}

// ---- value parsing -------------------------------------------------------------------------

/**
 * Scratch results of parseNumber: mantissa, decimals, and where the unit starts (-1: none). An object
 * rather than module-level `let`s, whose every access V8 guards with a temporal-dead-zone check.
 */
const num = { mant: 0, dec: 0, unitAt: -1 };

/** Parses `[-]digits[.digits][*unit]` in buf[s..e); returns false when it is not a number. */
function parseNumber(buf: Uint8Array, s: number, e: number): boolean {
  let i = s;
  let neg = false;
  if (i < e && buf[i] === 0x2d) {
    neg = true;
    i++;
  }
  let mant = 0;
  let dec = -1;
  let digits = 0;
  for (; i < e; i++) {
    const c = buf[i]!;
    if (c >= 0x30 && c <= 0x39) {
      mant = mant * 10 + (c - 0x30);
      digits++;
      if (dec >= 0) dec++;
    } else if (c === DOT && dec < 0) dec = 0;
    else break;
  }
  if (digits === 0 || digits > 17) return false;
  if (i < e) {
    if (buf[i] !== STAR) return false;
    num.unitAt = i + 1;
  } else num.unitAt = -1;
  num.mant = neg ? -mant : mant;
  num.dec = Math.max(dec, 0);
  return true;
}

const POW10 = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18];

/** mant × 10^(exp − dec), computed so that a decimal like 0.244 kW becomes exactly 244 W. */
function scaled(mant: number, dec: number, exp: number): number {
  const k = exp - dec;
  return k >= 0 ? mant * POW10[k]! : mant / POW10[-k]!;
}

function latin1(buf: Buffer, s: number, e: number): string {
  return buf.toString("latin1", s, e);
}

/** Unit text → conversion; cached by the unit's bytes so the hot path allocates no strings. */
const unitCache = new Map<number, { unit: string; exp: number } | null>();
function unitAt(buf: Buffer, s: number, e: number): { unit: string; exp: number } | null {
  let h = e - s;
  for (let i = s; i < e; i++) h = (h * 131 + buf[i]!) % 2147483647;
  let u = unitCache.get(h);
  if (u === undefined) {
    u = unitOf(latin1(buf, s, e)) ?? null;
    unitCache.set(h, u);
  }
  return u;
}

/** Reads group g as a number in catalogue units; NaN when it is not one. */
function groupNumber(ctx: Ctx, g: number): number {
  const s = ctx.gs[g]!;
  const e = ctx.ge[g]!;
  if (!parseNumber(ctx.buf, s, e)) return Number.NaN;
  if (num.unitAt < 0) return scaled(num.mant, num.dec, 0);
  const u = unitAt(ctx.buf, num.unitAt, e);
  return scaled(num.mant, num.dec, u ? u.exp : 0);
}

function groupUnit(ctx: Ctx, g: number): string | undefined {
  const e = ctx.ge[g]!;
  if (!parseNumber(ctx.buf, ctx.gs[g]!, e) || num.unitAt < 0) return undefined;
  return unitAt(ctx.buf, num.unitAt, e)?.unit ?? latin1(ctx.buf, num.unitAt, e);
}

function groupTime(ctx: Ctx, g: number): number | null {
  return parseDsmrTime(ctx.buf, ctx.gs[g]!, ctx.ge[g]!, ctx.zone);
}

/** Equipment ids are ASCII written as hex; show the text when it is printable, else the hex. */
const idCache = new Map<string, string>();
function groupId(ctx: Ctx, g: number): string {
  const hex = latin1(ctx.buf, ctx.gs[g]!, ctx.ge[g]!);
  let id = idCache.get(hex);
  if (id === undefined) {
    id = hexText(hex);
    if (idCache.size > 256) idCache.clear();
    idCache.set(hex, id);
  }
  return id;
}
function hexText(hex: string): string {
  if (hex.length % 2 !== 0 || !/^[0-9A-Fa-f]+$/.test(hex)) return hex;
  let text = "";
  for (let i = 0; i < hex.length; i += 2) {
    const c = Number.parseInt(hex.slice(i, i + 2), 16);
    if (c < 0x20 || c > 0x7e) return hex;
    text += String.fromCharCode(c);
  }
  return text;
}

// ---- handlers ------------------------------------------------------------------------------

/**
 * Handlers by a small-integer key (a 4 bits, b 3 bits, c, d, e 8 bits each: 31 bits, a V8 "Smi"), which a
 * Map looks up faster than the 40-bit double of obisKey. DSMR uses a ≤ 1 and b ≤ 4 only.
 */
const handlers = new Map<number, Handler>();
function hkey(a: number, b: number, c: number, d: number, e: number): number {
  return a > 15 || b > 7 ? -1 : (a << 27) | (b << 24) | (c << 16) | (d << 8) | e;
}
function hkeyOf(code: string): number {
  const k = parseObis(code);
  return hkey(
    Math.floor(k / 2 ** 32),
    Math.floor(k / 2 ** 24) % 256,
    Math.floor(k / 2 ** 16) % 256,
    Math.floor(k / 2 ** 8) % 256,
    k % 256,
  );
}
/** M-Bus objects are looked up with channel b replaced by this wildcard. */
const ANY_CHANNEL = 7;

/**
 * A store through a variable key (`values[name] = x`) is megamorphic and was a sixth of the decode time;
 * a setter per quantity makes each store a plain named one. Names come from our own table, never input.
 */
function setter(name: string): (values: Record<string, number | string>, x: number) => void {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`bad quantity name ${name}`);
  return new Function("v", "x", `v.${name} = x;`) as (values: Record<string, number | string>, x: number) => void;
}

const byCode = new Map<string, { unit: string | undefined; set: ReturnType<typeof setter> }[]>();
for (const [code, name] of NUMERIC) {
  const list = byCode.get(code) ?? [];
  list.push({ unit: QUANTITIES.get(name)?.unit, set: setter(name) });
  byCode.set(code, list);
}
for (const [code, targets] of byCode) {
  const first = targets[0]!;
  const expected = first.unit;
  const set = first.set;
  handlers.set(
    hkeyOf(code),
    targets.length === 1
      ? (ctx) => {
          const s = ctx.gs[0]!;
          const e = ctx.ge[0]!;
          if (ctx.n === 0 || !parseNumber(ctx.buf, s, e)) return;
          let exp = 0;
          if (num.unitAt >= 0) {
            // A register in a unit we cannot convert (a DSMR 3 limiter in A instead of kW) stays unmapped.
            const u = unitAt(ctx.buf, num.unitAt, e);
            if (!u || (expected !== undefined && u.unit !== expected)) return;
            exp = u.exp;
          }
          set(ctx.t.values, scaled(num.mant, num.dec, exp));
        }
      : (ctx) => {
          // One code, a quantity per unit: the limiter threshold is kW in NL, kVA in Luxembourg.
          const s = ctx.gs[0]!;
          const e = ctx.ge[0]!;
          if (ctx.n === 0 || !parseNumber(ctx.buf, s, e)) return;
          const u = num.unitAt >= 0 ? unitAt(ctx.buf, num.unitAt, e) : null;
          if (num.unitAt >= 0 && !u) return;
          const target = u ? targets.find((x) => x.unit === u.unit) : first;
          if (target) target.set(ctx.t.values, scaled(num.mant, num.dec, u ? u.exp : 0));
        },
  );
}

handlers.set(hkeyOf("0-0:1.0.0"), (ctx) => {
  const t = groupTime(ctx, 0);
  if (t !== null) ctx.t.time = t;
});
handlers.set(hkeyOf("1-3:0.2.8"), (ctx) => {
  ctx.t.version = latin1(ctx.buf, ctx.gs[0]!, ctx.ge[0]!);
});
handlers.set(hkeyOf("0-0:96.1.4"), (ctx) => {
  // Fluvius states its own e-MUCS version here; 1-3:0.2.8 is absent on Belgian meters.
  ctx.t.version ??= latin1(ctx.buf, ctx.gs[0]!, ctx.ge[0]!);
});
/** An id of only zeros (the Irish 1-0:0.0.0(00000000)) is a placeholder: a real one may follow. */
function placeholderId(ctx: Ctx, g: number): boolean {
  for (let i = ctx.gs[g]!; i < ctx.ge[g]!; i++) if (ctx.buf[i] !== 0x30) return false;
  return true;
}
const setEquipment: Handler = (ctx) => {
  if (ctx.ge[0]! > ctx.gs[0]! && !placeholderId(ctx, 0)) ctx.t.equipmentId ??= groupId(ctx, 0);
};
for (const code of ["0-0:96.1.1", "0-0:96.1.0", "0-0:42.0.0", "1-0:0.0.0", "0-0:96.1.255"]) {
  handlers.set(hkeyOf(code), setEquipment);
}
handlers.set(hkeyOf("0-0:96.13.0"), (ctx) => {
  if (ctx.ge[0]! > ctx.gs[0]!) ctx.t.values.text_message = groupId(ctx, 0);
});
handlers.set(hkeyOf("0-0:96.13.1"), (ctx) => {
  if (ctx.ge[0]! > ctx.gs[0]!) ctx.t.values.text_message_code = groupId(ctx, 0);
});
handlers.set(hkeyOf("0-0:96.1.2"), (ctx) => {
  // e-MUCS: the meter's own serial number, beside the equipment identifier of 0-0:96.1.1.
  if (ctx.ge[0]! > ctx.gs[0]! && !placeholderId(ctx, 0)) ctx.t.values.meter_serial = groupId(ctx, 0);
});
handlers.set(hkeyOf("1-0:96.5.5"), (ctx) => {
  // EasyMeter Q3D status word, as the meter writes it (hex).
  if (ctx.ge[0]! > ctx.gs[0]!) ctx.t.values.meter_status = latin1(ctx.buf, ctx.gs[0]!, ctx.ge[0]!);
});

handlers.set(hkeyOf("1-0:1.6.0"), (ctx) => {
  // Belgian capacity tariff: (when)(peak kW) of the current month.
  if (ctx.n < 2) return;
  const at = groupTime(ctx, 0);
  const w = groupNumber(ctx, 1);
  if (!Number.isNaN(w)) ctx.t.values.demand_month_peak_w = w;
  if (at !== null && !isPlaceholderTime(at)) ctx.t.values.demand_month_peak_at = peakIso(at);
});

handlers.set(hkeyOf("0-0:98.1.0"), (ctx) => {
  // Fluvius: (count)(1-0:1.6.0)(1-0:1.6.0) then per month (month start)(when)(peak).
  // E.ON Hungary uses the same code for a billing snapshot: (when)(register)(register)…; not mapped.
  if (ctx.n < 3 || latin1(ctx.buf, ctx.gs[1]!, ctx.ge[1]!) !== "1-0:1.6.0") return;
  const count = groupNumber(ctx, 0);
  const peaks: MonthPeak[] = [];
  for (let i = 0; i < count && 3 + 3 * i + 2 < ctx.n; i++) {
    const g = 3 + 3 * i;
    const w = groupNumber(ctx, g + 2);
    if (Number.isNaN(w)) continue;
    const at = groupTime(ctx, g + 1);
    peaks.push({ month: groupTime(ctx, g), at: isPlaceholderTime(at) ? null : at, w });
  }
  ctx.t.monthPeaks = peaks;
});

handlers.set(hkeyOf("1-0:99.97.0"), (ctx) => {
  // (count)(0-0:96.7.19)(end)(duration*s)…; meters also send "()" or "(0)()" for an empty log.
  const count = ctx.n > 0 ? groupNumber(ctx, 0) : 0;
  const log: PowerFailure[] = [];
  for (let i = 0; i < (Number.isNaN(count) ? 0 : count) && 2 + 2 * i + 1 < ctx.n; i++) {
    const g = 2 + 2 * i;
    const d = groupNumber(ctx, g + 1);
    if (Number.isNaN(d)) continue;
    log.push({ end: groupTime(ctx, g), durationS: d });
  }
  ctx.t.powerFailureLog = log;
  let last: PowerFailure | undefined;
  for (const f of log) if (f.end !== null && !isPlaceholderTime(f.end) && (!last || f.end > last.end!)) last = f;
  if (last) {
    ctx.t.values.last_long_power_failure_at = failureIso(last.end!);
    ctx.t.values.last_long_power_failure_s = last.durationS;
  }
});

function mbus(ctx: Ctx, channel: number): MbusDevice {
  let dev = ctx.t.mbus.find((d) => d.channel === channel);
  if (!dev) {
    dev = { channel };
    ctx.t.mbus.push(dev);
  }
  return dev;
}
handlers.set(hkey(0, ANY_CHANNEL, 24, 1, 0), (ctx, ch) => {
  const v = groupNumber(ctx, 0);
  if (!Number.isNaN(v)) mbus(ctx, ch).type = v;
});
const mbusId: Handler = (ctx, ch) => {
  const dev = mbus(ctx, ch);
  if (ctx.ge[0]! > ctx.gs[0]!) dev.id = groupId(ctx, 0);
};
handlers.set(hkey(0, ANY_CHANNEL, 96, 1, 0), mbusId);
handlers.set(hkey(0, ANY_CHANNEL, 96, 1, 1), mbusId);
handlers.set(hkey(0, ANY_CHANNEL, 24, 4, 0), (ctx, ch) => {
  const v = groupNumber(ctx, 0);
  if (!Number.isNaN(v)) mbus(ctx, ch).valve = v;
});
// (when)(value*unit): 24.2.1 is the plain reading, 24.2.3 the temperature-corrected one (Fluvius).
const mbusReading: Handler = (ctx, ch) => {
  if (ctx.n < 2) return;
  const dev = mbus(ctx, ch);
  const v = groupNumber(ctx, 1);
  if (Number.isNaN(v)) return;
  dev.value = v;
  dev.at = groupTime(ctx, 0);
  const unit = groupUnit(ctx, 1);
  if (unit) dev.unit = unit;
};
handlers.set(hkey(0, ANY_CHANNEL, 24, 2, 1), mbusReading);
handlers.set(hkey(0, ANY_CHANNEL, 24, 2, 3), mbusReading);
// DSMR 2.2/3 gas: (when)(00)(60)(1)(0-1:24.2.1)(m3) and the value on the next line.
handlers.set(hkey(0, ANY_CHANNEL, 24, 3, 0), (ctx, ch) => {
  if (ctx.n < 7) return;
  const dev = mbus(ctx, ch);
  const v = groupNumber(ctx, 6);
  if (Number.isNaN(v)) return;
  dev.value = v;
  dev.at = groupTime(ctx, 0);
  dev.unit = latin1(ctx.buf, ctx.gs[5]!, ctx.ge[5]!);
});

// ---- the decoder ---------------------------------------------------------------------------

const MAX_GROUPS = 128;
const gsScratch = new Int32Array(MAX_GROUPS);
const geScratch = new Int32Array(MAX_GROUPS);

/** Manufacturer and model from the header; a meter sends the same header every time, so it is cached. */
const headerCache = new Map<string, { manufacturer: string; model: string }>();
function identify(header: string): { manufacturer: string; model: string } {
  let id = headerCache.get(header);
  if (!id) {
    const flag = header.slice(0, 3);
    // "/ISk5\2MT382-1000": FLAG code, baud-rate digit, then an optional "\x" marker before the model.
    id = {
      manufacturer: MANUFACTURERS[flag.toUpperCase()] ?? flag,
      model: header.slice(4).replace(/^(\\.|[\x00-\x1f])/, ""),
    };
    if (headerCache.size > 64) headerCache.clear();
    headerCache.set(header, id);
  }
  return id;
}

/** toISOString with a one-entry memory per call site: M-Bus and peak times repeat telegram after telegram. */
function isoCache(): (ms: number) => string {
  let lastMs = Number.NaN;
  let lastIso = "";
  return (ms) => {
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    return lastIso;
  };
}
const peakIso = isoCache();
const failureIso = isoCache();
const mbusIso = [isoCache(), isoCache(), isoCache(), isoCache(), isoCache(), isoCache()];

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * Decodes one telegram. `frame` must start with '/' and contain '!' (the framer guarantees it);
 * anything after the CRC digits is ignored. Never throws.
 */
export function decodeTelegram(frame: Uint8Array, opts: DecodeOptions = {}): DecodeResult {
  try {
    return decode(frame, opts);
  } catch (err) {
    return { ok: false, reason: `decoder error: ${(err as Error).message}` };
  }
}

function decode(bytes: Uint8Array, opts: DecodeOptions): DecodeResult {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = buf.length;
  if (len === 0 || buf[0] !== SLASH) return { ok: false, reason: "does not start with '/'" };
  let bang = buf.indexOf(BANG);
  let crc: Telegram["crc"] = "absent";
  if (bang < 0) {
    if (!opts.unterminated) return { ok: false, reason: "no '!' end marker (truncated telegram)" };
    bang = len;
  } else {
    // CRC: up to four hex digits after '!'. Some meters drop a leading zero ("B9F"), so 1–4 digits
    // are read as a number rather than requiring exactly four.
    let crcEnd = bang + 1;
    while (crcEnd < len && crcEnd - bang <= 4 && isHex(buf[crcEnd]!)) crcEnd++;
    if (crcEnd > bang + 1) {
      const given = Number.parseInt(latin1(buf, bang + 1, crcEnd), 16);
      const computed = crc16(buf, 0, bang + 1);
      if (given === computed) crc = "valid";
      else if (opts.authenticated) crc = "encrypted";
      else
        return {
          ok: false,
          reason: `CRC mismatch: telegram says ${latin1(buf, bang + 1, crcEnd)}, computed ${computed.toString(16).toUpperCase().padStart(4, "0")}`,
        };
    }
  }
  if (opts.authenticated) crc = "encrypted";

  // Identification line: "/XXXZ…" up to the line end. Anything else starting with '/' is not a telegram.
  const i0 = identLineEnd(buf, 0, bang);
  if (i0 < 0) return { ok: false, reason: "no identification line of the DSMR form (/XXX5…) at the start" };
  let i = i0;
  const header = latin1(buf, 1, i);
  const id = identify(header);
  const t: Telegram = {
    header,
    manufacturer: id.manufacturer,
    model: id.model,
    crc,
    values: {},
    mbus: [],
  };
  if (opts.raw) t.raw = {};
  const ctx: Ctx = { buf, gs: gsScratch, ge: geScratch, n: 0, zone: opts.timezone ?? "Europe/Amsterdam", t };
  let objects = 0;
  /** The first line that is no data object (skipped), for the reason when the telegram is refused for it. */
  let stray: { at: number; end: number } | undefined;

  while (i < bang) {
    const c = buf[i]!;
    if (c === CR || c === LF || c === 0x20) {
      i++;
      continue;
    }
    // OBIS reference a-b:c.d.e[*f]; anything else on a line start is skipped to the line end.
    let a = 0;
    let b = 0;
    let cc = 0;
    let d = 0;
    let e = 0;
    let part = 0;
    let digits = 0;
    let ok = true;
    for (; i < bang; i++) {
      const ch = buf[i]!;
      if (ch >= 0x30 && ch <= 0x39) {
        const v = ch - 0x30;
        if (part === 0) a = a * 10 + v;
        else if (part === 1) b = b * 10 + v;
        else if (part === 2) cc = cc * 10 + v;
        else if (part === 3) d = d * 10 + v;
        else if (part === 4) e = e * 10 + v;
        digits++;
      } else if (
        (ch === 0x2d && part === 0) ||
        (ch === 0x3a && part === 1) ||
        (ch === DOT && (part === 2 || part === 3))
      ) {
        part++;
      } else if (ch === STAR && part === 4) {
        part = 5; // EasyMeter's "*255" billing-period suffix
      } else if (ch === LPAREN) break;
      else {
        ok = false;
        break;
      }
    }
    if (!ok || part < 4 || digits === 0 || a > 255 || b > 255 || cc > 255 || d > 255 || e > 255) {
      const at = lineStart(buf, i);
      while (i < bang && buf[i] !== LF) i++;
      stray ??= { at, end: i };
      continue;
    }
    // Value groups "(…)", possibly continued on following lines that start with '('.
    let n = 0;
    while (i < bang && buf[i] === LPAREN) {
      const s = i + 1;
      let j = s;
      while (j < bang && buf[j] !== RPAREN && buf[j] !== LF) j++;
      if (j >= bang || buf[j] !== RPAREN) {
        i = j;
        break;
      }
      if (n < MAX_GROUPS) {
        ctx.gs[n] = s;
        ctx.ge[n] = j;
        n++;
      }
      i = j + 1;
      let k = i;
      while (k < bang && (buf[k] === CR || buf[k] === LF)) k++;
      if (k < bang && buf[k] === LPAREN) i = k;
    }
    ctx.n = n;
    if (n > 0) objects++;
    if (t.raw) {
      const groups: string[] = [];
      for (let g = 0; g < n; g++) groups.push(latin1(buf, ctx.gs[g]!, ctx.ge[g]!));
      t.raw[obisString(obisKey(a, b, cc, d, e))] = groups;
    }
    let h = handlers.get(hkey(a, b, cc, d, e));
    if (h) {
      h(ctx, b);
    } else if (a === 0 && b >= 1 && b <= 4 && (h = handlers.get(hkey(0, ANY_CHANNEL, cc, d, e)))) {
      h(ctx, b);
    } else if (a === 1 && b !== 0 && (h = handlers.get(hkey(1, 0, cc, d, e)))) {
      // Electricity on channel 1 (Sagemcom XT211, the Luxembourg spec: 1-1:1.8.1) reads as channel 0.
      h(ctx, 0);
    }
  }

  if (objects === 0) return { ok: false, reason: "no data objects after the identification line" };
  // A CRC catches all but one in 65,536 damaged telegrams: one that passes it with a line no meter writes was
  // damaged all the same, and taking the rest of it would publish a reading with a value gone missing.
  if (stray && crc === "valid")
    return {
      ok: false,
      reason: `a line that is no data object despite a matching CRC: ${JSON.stringify(latin1(buf, stray.at, Math.min(stray.end, stray.at + 60)).trim())}`,
    };
  if (opts.unterminated && t.version !== undefined && /^[4-9]/.test(t.version)) {
    return {
      ok: false,
      reason: "truncated telegram: it ended before '!' (this meter's telegrams end with '!' and a CRC)",
    };
  }
  if (crc === "absent" && t.version !== undefined && /^[4-9]/.test(t.version)) {
    return { ok: false, reason: `DSMR ${t.version} telegram without CRC` };
  }
  derive(t);
  return { ok: true, telegram: t };
}

/** Where the line holding `i` begins (after the previous line end). */
function lineStart(buf: Buffer, i: number): number {
  let s = i;
  while (s > 0 && buf[s - 1] !== LF) s--;
  return s;
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

const TOTALS = (["import", "export"] as const).map((dir) => ({
  total: `energy_${dir}_kwh`,
  tariffs: [1, 2, 3, 4].map((k) => `energy_${dir}_tariff${k}_kwh`),
}));
const MBUS_NAMES = {
  gas: [
    { value: "gas_m3", at: "gas_at" },
    { value: "gas_2_m3", at: "gas_2_at" },
  ],
  water: [
    { value: "water_m3", at: "water_at" },
    { value: "water_2_m3", at: "water_2_at" },
  ],
  heat: [
    { value: "heat_gj", at: "heat_at" },
    { value: "heat_2_gj", at: "heat_2_at" },
  ],
} as const;

/** Quantities computed from others: totals over tariffs, net power, M-Bus devices by kind. */
function derive(t: Telegram): void {
  const v = t.values;
  for (const { total, tariffs } of TOTALS) {
    if (v[total] !== undefined) continue;
    let sum = 0;
    let seen = 0;
    for (const name of tariffs) {
      const x = v[name];
      if (typeof x === "number") {
        sum += x;
        seen++;
      }
    }
    if (seen > 0) v[total] = round6(sum);
  }
  const imp = v.power_import_w;
  const exp = v.power_export_w;
  if (typeof imp === "number" && typeof exp === "number") v.power_net_w = round6(imp - exp);
  else if (typeof imp === "number") v.power_net_w = imp;

  if (t.mbus.length === 0) return;
  let gas = 0;
  let water = 0;
  let heat = 0;
  if (t.mbus.length > 1) t.mbus.sort((x, y) => x.channel - y.channel);
  let slot = 0;
  for (const dev of t.mbus) {
    if (dev.value === undefined) continue;
    // Empty M-Bus slots report 0 with a placeholder date and no unit; they are not a meter at 0.
    if (!dev.unit && (dev.at === undefined || isPlaceholderTime(dev.at ?? null))) continue;
    let kind = dev.type !== undefined ? MBUS_KIND[dev.type] : undefined;
    kind ??= dev.unit === "GJ" ? "heat" : dev.unit === "m3" ? "gas" : undefined;
    if (!kind) continue;
    const nth = kind === "gas" ? gas++ : kind === "water" ? water++ : heat++;
    const names = MBUS_NAMES[kind][nth];
    if (!names) continue;
    v[names.value] = dev.value;
    const iso = mbusIso[slot++];
    if (dev.at !== undefined && dev.at !== null && !isPlaceholderTime(dev.at))
      v[names.at] = iso ? iso(dev.at) : new Date(dev.at).toISOString();
  }
}
