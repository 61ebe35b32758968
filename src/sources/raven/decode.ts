import type { Fragment } from "./fragments.js";

/**
 * RAVEn / EMU-2 fragments → catalogue quantities (and, for `decode`, everything else they carry).
 *
 * Numbers are hex text of any width ("0x0003c4", "0x0000000006bc5b7d"). Demand is a signed 32-bit value;
 * summations are unsigned up to 64 bits, parsed as BigInt and divided once, so nothing is masked to 32 bits
 * (aioraven's bug) and the only rounding is the final one to a double. A Multiplier or Divisor of 0 means 1
 * (RAVEn XML API r1.27). Times are seconds since 2000-01-01T00:00:00Z.
 */

export interface DeviceIdentity {
  manufacturer?: string;
  model?: string;
  firmware?: string;
  hardware?: string;
}

export interface Decoded {
  name: string;
  /** 16 upper-case hex digits, without 0x. */
  deviceMac?: string;
  meterMac?: string;
  /** UTC ms, from the fragment's TimeStamp. */
  time?: number;
  /** Catalogue quantities (src/model/quantities.ts). */
  values: Record<string, number | string>;
  /** What else it carries, for `decode` output; snake_case. Secrets (link key, install code, auth) are left out. */
  detail: Record<string, unknown>;
  /** MeterList. */
  meters?: string[];
  /** DeviceInfo. */
  device?: DeviceIdentity;
  /** Warning: the device's reply to a command it did not carry out. */
  warning?: string;
}

export type DecodeResult = { ok: true; decoded: Decoded } | { ok: false; reason: string; unknown?: boolean };

/** 2000-01-01T00:00:00Z in Unix seconds (pyraven's 946645200 is 11 h off). */
export const RAVEN_EPOCH_S = 946_684_800;

class FieldError extends Error {}

const HEX = /^(?:0x)?([0-9a-fA-F]+)$/;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const TWO_32 = 1n << 32n;
const TWO_64 = 1n << 64n;

export function parseHex(text: string): bigint | undefined {
  const m = HEX.exec(text);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/** value ÷ divisor as a double, rounded once (exact integers below 2^53 divide with a single rounding). */
function ratio(num: bigint, den: bigint): number {
  const neg = num < 0n;
  const a = neg ? -num : num;
  if (a <= MAX_SAFE && den <= MAX_SAFE) return Number(num) / Number(den);
  const v = Number(a / den) + Number(a % den) / Number(den);
  return neg ? -v : v;
}

/** raw × multiplier × factor ÷ divisor, a multiplier or divisor of 0 counting as 1. */
export function scale(raw: bigint, multiplier: bigint, divisor: bigint, factor = 1n): number {
  return ratio(raw * (multiplier === 0n ? 1n : multiplier) * factor, divisor === 0n ? 1n : divisor);
}

/** Demand is signed 32-bit; a wider field is accepted when it is only a sign extension to 64 bits. */
export function signed32(raw: bigint): bigint | undefined {
  const v = BigInt.asIntN(32, raw);
  if (raw < TWO_32) return v;
  return raw < TWO_64 && BigInt.asIntN(64, raw) === v ? v : undefined;
}

/** RAVEn seconds → UTC ms; 0 (a clock never set) and 0xFFFFFFFF (ZigBee's "invalid") → undefined. */
export function ravenTime(seconds: number): number | undefined {
  if (seconds === 0 || seconds === 0xffffffff) return undefined;
  return (seconds + RAVEN_EPOCH_S) * 1000;
}

/** ISO 4217 numeric → alphabetic, for the currencies of places with ZigBee SE meters and a few more. */
const CURRENCIES: Record<number, string> = {
  36: "AUD",
  44: "BSD",
  52: "BBD",
  124: "CAD",
  152: "CLP",
  156: "CNY",
  170: "COP",
  188: "CRC",
  203: "CZK",
  208: "DKK",
  214: "DOP",
  320: "GTQ",
  340: "HNL",
  344: "HKD",
  348: "HUF",
  352: "ISK",
  356: "INR",
  376: "ILS",
  388: "JMD",
  392: "JPY",
  410: "KRW",
  458: "MYR",
  484: "MXN",
  554: "NZD",
  558: "NIO",
  578: "NOK",
  590: "PAB",
  604: "PEN",
  608: "PHP",
  682: "SAR",
  702: "SGD",
  710: "ZAR",
  752: "SEK",
  756: "CHF",
  764: "THB",
  780: "TTD",
  784: "AED",
  826: "GBP",
  840: "USD",
  901: "TWD",
  946: "RON",
  949: "TRY",
  975: "BGN",
  978: "EUR",
  985: "PLN",
  986: "BRL",
};

export function currencyCode(numeric: number): string | undefined {
  return CURRENCIES[numeric];
}

/** Field access for one fragment; errors name the element. */
class Fields {
  constructor(private readonly f: Fragment) {}

  text(name: string): string | undefined {
    for (const [k, v] of this.f.fields) if (k === name) return v;
    return undefined;
  }

  entries(): readonly [string, string][] {
    return this.f.fields;
  }

  all(name: string): string[] {
    const out: string[] = [];
    for (const [k, v] of this.f.fields) if (k === name) out.push(v);
    return out;
  }

  required(name: string): string {
    const v = this.text(name);
    if (v === undefined) throw new FieldError(`<${this.f.name}> without <${name}>`);
    return v;
  }

  big(name: string, required = false): bigint | undefined {
    const t = required ? this.required(name) : this.text(name);
    if (t === undefined || (t === "" && !required)) return undefined;
    const v = parseHex(t);
    if (v === undefined) throw new FieldError(`<${name}> is not hex: ${JSON.stringify(t.slice(0, 40))}`);
    return v;
  }

  /** A hex field that fits a double exactly (counts, flags, 32-bit times). */
  num(name: string, required = false): number | undefined {
    const v = this.big(name, required);
    if (v === undefined) return undefined;
    if (v > MAX_SAFE) throw new FieldError(`<${name}> is too large: ${this.text(name)}`);
    return Number(v);
  }

  /** Channel and ProfileIntervalPeriod are decimal text (tolerating hex, should a firmware send it). */
  decimal(name: string): number | undefined {
    const t = this.text(name);
    if (t === undefined || t === "") return undefined;
    if (/^\d{1,9}$/.test(t)) return Number(t);
    return this.num(name);
  }

  mac(name: string): string | undefined {
    const t = this.text(name);
    if (t === undefined || t === "") return undefined;
    return normalMac(t) ?? t;
  }

  time(name: string): number | undefined {
    const s = this.num(name);
    return s === undefined ? undefined : ravenTime(s);
  }

  flag(name: string): boolean | undefined {
    const t = this.text(name);
    return t === undefined ? undefined : /^y/i.test(t);
  }

  /** Multiplier and divisor, 0 (or absent) meaning 1. */
  scaling(): { multiplier: bigint; divisor: bigint } {
    return { multiplier: this.big("Multiplier") ?? 1n, divisor: this.big("Divisor") ?? 1n };
  }
}

/** "0xd8d5b900000041d7" → "D8D5B900000041D7"; undefined when it is not a 64-bit hex id. */
export function normalMac(text: string): string | undefined {
  const m = /^(?:0x)?([0-9a-fA-F]{1,16})$/.exec(text.trim());
  return m ? m[1]!.toUpperCase().padStart(16, "0") : undefined;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** "20220101a0000042": manufacturing date and lot; null when the date part is not a date (0xFF filler). */
function dateCode(text: string | undefined): { date: string; lot: string } | null {
  const m = /^(\d{4})(\d{2})(\d{2})(.*)$/s.exec(text ?? "");
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = Date.UTC(y, mo - 1, d);
  const back = new Date(t);
  if (mo < 1 || mo > 12 || back.getUTCDate() !== d || back.getUTCMonth() !== mo - 1) return null;
  return { date: `${m[1]}-${m[2]}-${m[3]}`, lot: m[4]! };
}

/** ZigBee SE ProfileIntervalPeriod → minutes. */
const INTERVAL_MINUTES = [24 * 60, 60, 30, 15, 10, 7.5, 5, 2.5];

type Body = (f: Fields, d: Decoded) => void;

function network(f: Fields, d: Decoded): void {
  const status = f.text("Status");
  const link = f.num("LinkStrength");
  if (status) d.values.connection_status = status;
  if (link !== undefined) d.values.link_strength_pct = link;
  d.detail = {
    status: status ?? null,
    description: f.text("Description") ?? null,
    status_code: f.num("StatusCode") ?? null,
    coordinator_mac: f.mac("CoordMacId") ?? null,
    ext_pan_id: f.mac("ExtPanId") ?? null,
    channel: f.decimal("Channel") ?? null,
    short_address: f.num("ShortAddr") ?? null,
    link_strength_pct: link ?? null,
  };
}

function usage(element: string): Body {
  return (f, d) => {
    const { multiplier, divisor } = f.scaling();
    d.detail = {
      usage_kwh: scale(f.big(element, true)!, multiplier, divisor),
      start: iso(f.time("StartDate")),
      ...(f.text("EndDate") !== undefined ? { end: iso(f.time("EndDate")) } : {}),
    };
  };
}

const BODIES: Record<string, Body> = {
  InstantaneousDemand(f, d) {
    const raw = f.big("Demand", true)!;
    const demand = signed32(raw);
    if (demand === undefined) throw new FieldError(`<Demand> wider than 32 bits: ${f.text("Demand")}`);
    const { multiplier, divisor } = f.scaling();
    const w = scale(demand, multiplier, divisor, 1000n);
    d.values.power_net_w = w;
    d.values.power_import_w = Math.max(w, 0);
    d.values.power_export_w = Math.max(-w, 0);
    d.detail = { demand_kw: scale(demand, multiplier, divisor) };
  },

  CurrentSummationDelivered(f, d) {
    const { multiplier, divisor } = f.scaling();
    const summation = (name: string, required: boolean): number | undefined => {
      const raw = f.big(name, required);
      if (raw === undefined) return undefined;
      if (raw >= TWO_64) throw new FieldError(`<${name}> wider than 64 bits`);
      return scale(raw, multiplier, divisor);
    };
    const delivered = summation("SummationDelivered", true)!;
    const received = summation("SummationReceived", false);
    d.values.energy_import_kwh = delivered;
    if (received !== undefined) d.values.energy_export_kwh = received;
    d.detail = { delivered_kwh: delivered, received_kwh: received ?? null };
  },

  CurrentPeriodUsage: usage("CurrentUsage"),
  LastPeriodUsage: usage("LastUsage"),

  PriceCluster(f, d) {
    const price = f.num("Price", true)!;
    const digits = f.num("TrailingDigits") ?? 0;
    const numeric = f.num("Currency");
    const currency = numeric === undefined ? undefined : currencyCode(numeric);
    const perKwh = price / 10 ** digits;
    d.values.price_per_kwh = perKwh;
    if (currency) d.values.currency = currency;
    d.detail = {
      price_per_kwh: perKwh,
      currency: currency ?? null,
      currency_numeric: numeric ?? null,
      tier: f.num("Tier") ?? null,
      tier_label: f.text("TierLabel") ?? null,
      rate_label: f.text("RateLabel") ?? null,
    };
  },

  BlockPriceDetail(f, d) {
    const { multiplier, divisor } = f.scaling();
    const digits = f.num("TrailingDigits") ?? 0;
    const numeric = f.num("Currency");
    const blocks: { threshold_kwh: number | null; price_per_kwh: number }[] = [];
    for (let i = 1; i <= 16; i++) {
      const price = f.num(`Price${i}`);
      if (price === undefined) continue;
      const threshold = f.big(`Threshold${i}`);
      blocks.push({
        // 0xFFFFFFFF is the open-ended last block.
        threshold_kwh:
          threshold === undefined || threshold === 0xffffffffn ? null : scale(threshold, multiplier, divisor),
        price_per_kwh: price / 10 ** digits,
      });
    }
    d.detail = {
      currency: numeric === undefined ? null : (currencyCode(numeric) ?? null),
      currency_numeric: numeric ?? null,
      blocks,
    };
    const consumption = f.big("BlockPeriodConsumption");
    if (consumption !== undefined) d.detail.block_period_consumption_kwh = scale(consumption, multiplier, divisor);
  },

  ConnectionStatus: network,
  NetworkInfo: network,

  DeviceInfo(f, d) {
    const device: DeviceIdentity = {};
    const firmware = f.text("FWVersion");
    if (f.text("Manufacturer")) device.manufacturer = f.text("Manufacturer");
    if (f.text("ModelId")) device.model = f.text("ModelId");
    if (firmware) device.firmware = firmware;
    if (f.text("HWVersion")) device.hardware = f.text("HWVersion");
    d.device = device;
    if (firmware) d.values.firmware = firmware;
    // InstallCode and LinkKey are the keys of the device's ZigBee network: never printed.
    d.detail = {
      firmware: firmware ?? null,
      hardware: device.hardware ?? null,
      image_type: f.text("ImageType") ?? null,
      manufacturer: device.manufacturer ?? null,
      model: device.model ?? null,
      date_code: dateCode(f.text("DateCode")),
    };
  },

  MeterList(f, d) {
    d.meters = f.all("MeterMacId").map((m) => normalMac(m) ?? m);
    d.detail = { meters: d.meters };
  },

  MeterInfo(f, d) {
    // Auth is a credential for the utility's portal: left out.
    d.detail = {
      meter_type: f.text("MeterType") ?? null,
      nickname: f.text("NickName") ?? null,
      account: f.text("Account") ?? null,
      host: f.text("Host") ?? null,
      enabled: f.flag("Enabled") ?? null,
    };
  },

  TimeCluster(f, d) {
    const utc = f.time("UTCTime");
    const local = f.time("LocalTime");
    d.time = utc;
    // The meter's wall clock, in no particular zone: printed without one.
    d.detail = { utc: iso(utc), local: local === undefined ? null : iso(local)!.slice(0, 19) };
  },

  MessageCluster(f, d) {
    const text = f.text("Text");
    if (text) d.values.text_message = text;
    d.detail = {
      id: f.num("Id") ?? null,
      text: text ?? null,
      confirmation_required: f.flag("ConfirmationRequired") ?? null,
      confirmed: f.flag("Confirmed") ?? null,
      queue: f.text("Queue") ?? null,
    };
  },

  ScheduleInfo(f, d) {
    d.detail = { event: f.text("Event") ?? null, frequency_s: f.num("Frequency") ?? null, enabled: f.flag("Enabled") };
  },

  ProfileData(f, d) {
    const period = f.decimal("ProfileIntervalPeriod");
    const intervals: string[] = [];
    for (const [k, v] of f.entries()) if (k.startsWith("IntervalData")) intervals.push(v);
    d.detail = {
      end_time: iso(f.time("EndTime")),
      status: f.num("Status") ?? null,
      interval_minutes: period === undefined ? null : (INTERVAL_MINUTES[period] ?? null),
      periods_delivered: f.num("NumberOfPeriodsDelivered") ?? null,
      interval_data: intervals,
    };
  },

  Warning(f, d) {
    d.warning = f.text("Text") ?? "";
    d.detail = { text: d.warning };
  },
};

export const KNOWN_FRAGMENTS: readonly string[] = Object.keys(BODIES);

export function decodeFragment(fragment: Fragment): DecodeResult {
  const body = BODIES[fragment.name];
  if (!body) return { ok: false, unknown: true, reason: `unknown fragment <${fragment.name}>` };
  const f = new Fields(fragment);
  try {
    const d: Decoded = { name: fragment.name, values: {}, detail: {} };
    const device = f.mac("DeviceMacId");
    const meter = f.mac("MeterMacId");
    if (device) d.deviceMac = device;
    if (meter && fragment.name !== "MeterList") d.meterMac = meter;
    const ts = f.time("TimeStamp");
    if (ts !== undefined) d.time = ts;
    body(f, d);
    return { ok: true, decoded: d };
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, reason: err.message };
    throw err;
  }
}
