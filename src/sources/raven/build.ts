import { RAVEN_EPOCH_S } from "./decode.js";
import { CP1252_80_9F } from "./text.js";

/**
 * Builds fragments as RAVEn sticks and EMU-2s write them, for the project's own fixtures (tests, the device
 * emulator, the benchmark): made, not copied from captures.
 */

/** How a device lays a fragment out: the EMU-2 indents with LF, the RAVEn with CRLF, aioraven's fixtures not at all. */
export interface Layout {
  indent: string;
  eol: string;
}
export const LAYOUTS = Object.freeze({
  emu2: { indent: "  ", eol: "\n" },
  raven: { indent: "  ", eol: "\r\n" },
  compact: { indent: "    ", eol: "" },
} satisfies Record<string, Layout>);

/** `0x` and at least `digits` hex digits, lower case as the EMU-2 prints them; negatives as 32-bit two's complement. */
export function hex(value: bigint | number, digits: number): string {
  let v = BigInt(value);
  if (v < 0n) v = BigInt.asUintN(32, v);
  return `0x${v.toString(16).padStart(digits, "0")}`;
}

/** UTC ms → seconds since 2000-01-01T00:00:00Z. */
export function ravenSeconds(ms: number): number {
  return Math.floor(ms / 1000) - RAVEN_EPOCH_S;
}

const CP1252_HIGH = new Map<string, number>(CP1252_80_9F.map((c, i) => [String.fromCharCode(c), 0x80 + i]));

/** Text as the device stores it: Windows-1252; a character it cannot hold becomes '?'. */
export function encodeCp1252(text: string): Buffer {
  const out = Buffer.alloc(text.length);
  let n = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    out[n++] = CP1252_HIGH.get(ch) ?? (c < 0x80 || (c >= 0xa0 && c <= 0xff) ? c : 0x3f);
  }
  return out.subarray(0, n);
}

export function buildFragment(
  name: string,
  fields: readonly [string, string][],
  layout: Layout = LAYOUTS.emu2,
): Buffer {
  const { indent, eol } = layout;
  const body = fields.map(([k, v]) => `${indent}<${k}>${v}</${k}>${eol}`).join("");
  return encodeCp1252(`<${name}>${eol}${body}</${name}>${eol}`);
}

export interface Ids {
  /** 16 hex digits, without 0x. */
  deviceMac: string;
  meterMac: string;
}

const mac = (m: string): string => `0x${m.toLowerCase()}`;
const ids = (i: Ids): [string, string][] => [
  ["DeviceMacId", mac(i.deviceMac)],
  ["MeterMacId", mac(i.meterMac)],
];
const stamp = (ms: number): [string, string] => ["TimeStamp", hex(ravenSeconds(ms), 8)];
const display = (right: number, left: number): [string, string][] => [
  ["DigitsRight", hex(right, 2)],
  ["DigitsLeft", hex(left, 2)],
  ["SuppressLeadingZero", "Y"],
];

export interface DemandSpec {
  time: number;
  /** Negative while exporting. */
  watts: number;
  multiplier?: number;
  divisor?: number;
  /** Hex digits printed: the EMU-2 prints 6, aioraven's fixtures 8. */
  digits?: number;
}

export function instantaneousDemand(i: Ids, s: DemandSpec, layout?: Layout): Buffer {
  const multiplier = s.multiplier ?? 1;
  const divisor = s.divisor ?? 1000;
  const raw = Math.round((s.watts * divisor) / (multiplier * 1000));
  return buildFragment(
    "InstantaneousDemand",
    [
      ...ids(i),
      stamp(s.time),
      ["Demand", hex(raw, s.digits ?? 6)],
      ["Multiplier", hex(multiplier, 8)],
      ["Divisor", hex(divisor, 8)],
      ...display(3, 15),
    ],
    layout,
  );
}

export interface SummationSpec {
  time: number;
  importKwh: number;
  /** Left out when undefined, as meters without export do. */
  exportKwh?: number;
  multiplier?: number;
  divisor?: number;
}

export function currentSummation(i: Ids, s: SummationSpec, layout?: Layout): Buffer {
  const multiplier = s.multiplier ?? 1;
  const divisor = s.divisor ?? 1000;
  const raw = (kwh: number): string => hex(BigInt(Math.round((kwh * divisor) / multiplier)), 16);
  const fields: [string, string][] = [...ids(i), stamp(s.time), ["SummationDelivered", raw(s.importKwh)]];
  if (s.exportKwh !== undefined) fields.push(["SummationReceived", raw(s.exportKwh)]);
  fields.push(["Multiplier", hex(multiplier, 8)], ["Divisor", hex(divisor, 8)], ...display(1, 6));
  return buildFragment("CurrentSummationDelivered", fields, layout);
}

export interface PriceSpec {
  time?: number;
  /** Per kWh, in the currency's units. */
  price: number;
  trailingDigits?: number;
  /** ISO 4217 numeric (840 = USD). */
  currency?: number;
  tier?: number;
  label?: string;
}

export function priceCluster(i: Ids, s: PriceSpec, layout?: Layout): Buffer {
  const digits = s.trailingDigits ?? 4;
  const fields: [string, string][] = [...ids(i)];
  if (s.time !== undefined) fields.push(stamp(s.time));
  fields.push(
    ["Price", hex(Math.round(s.price * 10 ** digits), 8)],
    ["Currency", hex(s.currency ?? 840, 4)],
    ["TrailingDigits", hex(digits, 2)],
    ["Tier", hex(s.tier ?? 1, 2)],
    ["TierLabel", s.label ?? "Tier 1"],
    ["RateLabel", s.label ?? "Tier 1"],
  );
  return buildFragment("PriceCluster", fields, layout);
}

export interface NetworkSpec {
  status?: string;
  description?: string;
  linkStrength: number;
  channel?: number;
  /** The push on a change of state; get_network_info is answered with NetworkInfo. */
  fragment?: "NetworkInfo" | "ConnectionStatus";
}

export function networkInfo(i: Ids, s: NetworkSpec, layout?: Layout): Buffer {
  return buildFragment(
    s.fragment ?? "NetworkInfo",
    [
      ["DeviceMacId", mac(i.deviceMac)],
      ["CoordMacId", mac(i.meterMac)],
      ["Status", s.status ?? "Connected"],
      ["Description", s.description ?? "Successfully Joined"],
      ["ExtPanId", mac(i.meterMac)],
      ["Channel", String(s.channel ?? 18)],
      ["ShortAddr", hex(0x2776, 4)],
      ["LinkStrength", hex(s.linkStrength, 2)],
    ],
    layout,
  );
}

export interface DeviceSpec {
  firmware: string;
  hardware?: string;
  manufacturer?: string;
  model?: string;
  dateCode?: string;
}

export function deviceInfo(i: Pick<Ids, "deviceMac">, s: DeviceSpec, layout?: Layout): Buffer {
  return buildFragment(
    "DeviceInfo",
    [
      ["DeviceMacId", mac(i.deviceMac)],
      // Made-up keys: the real ones are the device's network secrets.
      ["InstallCode", "0x0000000000000000"],
      ["LinkKey", "0x00000000000000000000000000000000"],
      ["FWVersion", s.firmware],
      ["HWVersion", s.hardware ?? "1.0.0"],
      ["ImageType", "0x1301"],
      ["Manufacturer", s.manufacturer ?? "Rainforest Automation, Inc."],
      ["ModelId", s.model ?? "Z105-2-EMU2-LEDD_JM"],
      ["DateCode", s.dateCode ?? "20140520e0000001"],
    ],
    layout,
  );
}

export function meterList(deviceMac: string, meters: readonly string[], layout?: Layout): Buffer {
  return buildFragment(
    "MeterList",
    [["DeviceMacId", mac(deviceMac)], ...meters.map((m): [string, string] => ["MeterMacId", mac(m)])],
    layout,
  );
}

export function warning(text: string, layout?: Layout): Buffer {
  return buildFragment("Warning", [["Text", text]], layout);
}
