import { MANUFACTURERS, NUMERIC } from "../dsmr/obis.js";
import { type Data, numberOf, obisOf, Tag, textOf } from "./axdr.js";

/**
 * The COSEM list of a data notification, as the meters send it, turned into objects (OBIS code, value, scaler and
 * unit where known). Three shapes exist:
 * - described: each object a structure of OBIS code, value and (for registers) scaler/unit (Aidon, Kaifa's and
 *   Sagemcom's described lists);
 * - pairs: OBIS code and value one after another in one structure, after the list version (Kamstrup);
 * - values only, in an order fixed by the meter's list (Kaifa, Iskra, the Slovenian lists): the LAYOUTS table
 *   says which OBIS code and scaler each position has.
 */
export interface CosemObject {
  obis: string;
  value: Data;
  scaler?: number;
  /** DLMS unit code (27 W, 29 var, 30 Wh, 32 varh, 33 A, 35 V, 44 Hz, 255 none). */
  unit?: number;
}

export interface CosemList {
  /** Which layout matched: "described", "pairs" or a name from LAYOUTS. */
  layout: string;
  objects: CosemObject[];
  /** A list version sent before the objects of a pairs list (Kamstrup). */
  version?: string;
}

/** A position of a values-only list: its OBIS code and scaler (powers of ten), or nothing to read. */
type Slot = readonly [obis: string, scaler?: number] | null;

interface Layout {
  name: string;
  /** Whether the list's elements are this layout (element count and the types and contents that identify it). */
  test(items: readonly Data[]): boolean;
  slots: readonly Slot[];
}

const isText = (d: Data | undefined): boolean =>
  d !== undefined && (d.tag === Tag.OctetString || d.tag === Tag.VisibleString || d.tag === Tag.Utf8String);
const isUint = (d: Data | undefined, tag: Tag): boolean => d !== undefined && d.tag === tag;

// Kaifa (Norway, Sweden): list version "Kfm_001", meter id, meter type, then the values; currents in mA,
// voltages in 0.1 V, energies in Wh. List 2 every 10 s, list 3 (adds the clock and energies) every hour.
const KAIFA_HEAD: Slot[] = [
  ["1-1:0.2.129"],
  ["0-0:96.1.0"],
  ["0-0:96.1.7"],
  ["1-0:1.7.0"],
  ["1-0:2.7.0"],
  ["1-0:3.7.0"],
  ["1-0:4.7.0"],
];
const KAIFA_1P: Slot[] = [...KAIFA_HEAD, ["1-0:31.7.0", -3], ["1-0:32.7.0", -1]];
const KAIFA_3P: Slot[] = [
  ...KAIFA_HEAD,
  ["1-0:31.7.0", -3],
  ["1-0:51.7.0", -3],
  ["1-0:71.7.0", -3],
  ["1-0:32.7.0", -1],
  ["1-0:52.7.0", -1],
  ["1-0:72.7.0", -1],
];
const ENERGIES: Slot[] = [["0-0:1.0.0"], ["1-0:1.8.0"], ["1-0:2.8.0"], ["1-0:3.8.0"], ["1-0:4.8.0"]];
const isKaifa = (items: readonly Data[]): boolean => /^kfm_/i.test(textOf(items[0]) ?? "");

// Iskra (AM550 and others): the push list's own name 0-6:25.9.0.255, meter id, time, date, energies and powers.
const ISKRA_PUSH = "0-6:25.9.0";

export const LAYOUTS: readonly Layout[] = [
  { name: "kaifa-1p", test: (i) => i.length === 9 && isKaifa(i), slots: KAIFA_1P },
  { name: "kaifa-3p", test: (i) => i.length === 13 && isKaifa(i), slots: KAIFA_3P },
  { name: "kaifa-1p-hour", test: (i) => i.length === 14 && isKaifa(i), slots: [...KAIFA_1P, ...ENERGIES] },
  { name: "kaifa-3p-hour", test: (i) => i.length === 18 && isKaifa(i), slots: [...KAIFA_3P, ...ENERGIES] },
  // Kaifa's list 1: the import power alone.
  {
    name: "kaifa-power",
    test: (i) => i.length === 1 && isUint(i[0], Tag.DoubleLongUnsigned),
    slots: [["1-0:1.7.0"]],
  },
  {
    name: "iskra",
    test: (i) => i.length >= 6 && i.length <= 12 && obisOf(i[0]) === ISKRA_PUSH,
    slots: [
      null,
      ["0-0:96.1.0"],
      null,
      null,
      ["1-0:1.8.0"],
      ["1-0:2.8.0"],
      ["1-0:3.8.0"],
      ["1-0:4.8.0"],
      ["1-0:1.7.0"],
      ["1-0:2.7.0"],
      null,
      null,
    ],
  },
  // Slovenian (Elektro Celje and others, Iskra meters) list 1: logical device name, serial number, total powers,
  // voltages in 0.1 V, currents in 0.01 A, powers per phase.
  {
    name: "slovenia-1",
    test: (i) =>
      i.length === 18 &&
      isText(i[0]) &&
      isText(i[1]) &&
      [2, 3, 4, 5, 12, 13, 14, 15, 16, 17].every((k) => isUint(i[k], Tag.DoubleLongUnsigned)) &&
      [6, 7, 8, 9, 10, 11].every((k) => isUint(i[k], Tag.LongUnsigned)),
    slots: [
      ["0-0:42.0.0"],
      ["0-0:96.1.2"],
      ["1-0:1.7.0"],
      ["1-0:2.7.0"],
      ["1-0:3.7.0"],
      ["1-0:4.7.0"],
      ["1-0:32.7.0", -1],
      ["1-0:52.7.0", -1],
      ["1-0:72.7.0", -1],
      ["1-0:31.7.0", -2],
      ["1-0:51.7.0", -2],
      ["1-0:71.7.0", -2],
      ["1-0:21.7.0"],
      ["1-0:41.7.0"],
      ["1-0:61.7.0"],
      ["1-0:22.7.0"],
      ["1-0:42.7.0"],
      ["1-0:62.7.0"],
    ],
  },
];

/** Kamstrup sends no scalers: currents in 0.01 A, energies in 10 Wh, powers in W, voltages in V. */
function kamstrupScaler(obis: string): number {
  const [, c, d] = /^1-\d+:(\d+)\.(\d+)\./.exec(obis) ?? [];
  if (d === "8") return 1;
  return c === "31" || c === "51" || c === "71" ? -2 : 0;
}

function described(items: readonly Data[]): CosemObject[] | undefined {
  if (items.length === 0) return undefined;
  const out: CosemObject[] = [];
  for (const it of items) {
    if (it.tag !== Tag.Structure || it.items.length < 2 || it.items.length > 3) return undefined;
    const obis = obisOf(it.items[0]);
    if (!obis) return undefined;
    const o: CosemObject = { obis, value: it.items[1]! };
    const su = it.items[2];
    if (su) {
      if (su.tag !== Tag.Structure || su.items.length !== 2) return undefined;
      o.scaler = numberOf(su.items[0]);
      o.unit = numberOf(su.items[1]);
    }
    out.push(o);
  }
  return out;
}

/** A scaler/unit structure (int8 scaler, enum unit) as registers carry it. */
function scalerUnit(d: Data | undefined): { scaler?: number; unit?: number } | undefined {
  if (d?.tag !== Tag.Structure || d.items.length !== 2) return undefined;
  const [s, u] = d.items;
  if (s?.tag !== Tag.Integer || u?.tag !== Tag.Enum) return undefined;
  return { scaler: s.value, unit: u.value };
}

/**
 * OBIS code and value one after another, each value possibly followed by its scaler/unit structure (the wired
 * M-Bus lists of Austrian Kaifa meters); before the first code, the list version (Kamstrup) or the meter's clock.
 */
function pairs(items: readonly Data[]): { objects: CosemObject[]; version?: string } | undefined {
  let i = 0;
  let version: string | undefined;
  const objects: CosemObject[] = [];
  for (; i < items.length && !obisOf(items[i]); i++) {
    const it = items[i]!;
    if (i > 1 || !isText(it)) return undefined;
    if (it.tag === Tag.OctetString && it.bytes.length === 12) objects.push({ obis: "0-0:1.0.0", value: it });
    else version = textOf(it);
  }
  let codes = 0;
  while (i + 1 < items.length) {
    const obis = obisOf(items[i]);
    if (!obis) return undefined;
    const o: CosemObject = { obis, value: items[i + 1]! };
    i += 2;
    const su = scalerUnit(items[i]);
    if (su) {
      Object.assign(o, su);
      i++;
    }
    objects.push(o);
    codes++;
  }
  // A list cut short may end on a code without its value; a list of no codes at all is not this shape.
  if (codes === 0) return undefined;
  if (/^kamstrup/i.test(version ?? ""))
    for (const o of objects) if (o.scaler === undefined) o.scaler = kamstrupScaler(o.obis);
  return { objects, version };
}

/** The objects of the notification's body, or why the list is of no known layout. */
export function readList(body: Data): CosemList | string {
  const items = body.tag === Tag.Array || body.tag === Tag.Structure ? body.items : [body];
  const d = described(items);
  if (d) return { layout: "described", objects: d };
  const p = pairs(items);
  if (p) return { layout: "pairs", ...p };
  for (const l of LAYOUTS) {
    if (!l.test(items)) continue;
    const objects: CosemObject[] = [];
    items.forEach((value, k) => {
      const slot = l.slots[k];
      if (slot) objects.push({ obis: slot[0], value, scaler: slot[1] ?? 0 });
    });
    return { layout: l.name, objects };
  }
  return `a COSEM list of ${items.length} elements of no known layout`;
}

/** DLMS unit codes a quantity may come in (by the catalogue unit its name ends with). */
const UNIT_OF_SUFFIX: ReadonlyArray<readonly [RegExp, number, number]> = [
  // suffix, DLMS unit, power of ten to the catalogue unit
  [/_kwh$/, 30, -3],
  [/_kvarh$/, 32, -3],
  [/_var$/, 29, 0],
  [/_va$/, 28, 0],
  [/_w$/, 27, 0],
  [/_v$/, 35, 0],
  [/_a$/, 33, 0],
  [/_hz$/, 44, 0],
];

// What the objects mean: catalogue quantities (the same table as DSMR's, on channel 0 or 1: Aidon and Kamstrup
// number their registers 1-1:…), each with the DLMS unit it must come in and the power of ten to the catalogue's.
const QUANTITY = new Map<string, { name: string; unit?: number; exp: number }>();
for (const [code, name] of NUMERIC) {
  const rule = UNIT_OF_SUFFIX.find(([re]) => re.test(name));
  const q = { name, unit: rule?.[1], exp: rule?.[2] ?? 0 };
  for (const ch of ["1-0:", "1-1:"]) {
    const key = ch + code.slice(4);
    if (!QUANTITY.has(key)) QUANTITY.set(key, q);
  }
}

const IDENTITY: Readonly<Record<string, "version" | "meterId" | "meterType" | "name" | "clock">> = {
  "1-1:0.2.129": "version",
  "1-0:0.2.129": "version",
  "0-0:96.1.0": "meterId",
  "1-1:0.0.5": "meterId",
  "1-0:0.0.5": "meterId",
  "0-0:96.1.2": "meterId",
  "0-0:96.1.7": "meterType",
  "1-1:96.1.1": "meterType",
  "0-0:42.0.0": "name",
  "0-0:1.0.0": "clock",
  "0-1:1.0.0": "clock",
};

export interface Identity {
  /** The list version (AIDON_V0001, Kamstrup_V0001, Kfm_001). */
  version?: string;
  meterId?: string;
  meterType?: string;
  /** The logical device name (Slovenian and Austrian meters), whose first three letters name the maker. */
  name?: string;
  manufacturer?: string;
}

export interface ListValues {
  values: Record<string, number>;
  identity: Identity;
  /** The meter's clock when the list carries it (12-byte date-time). */
  clock?: Buffer;
  /** Objects not turned into a value (codes of no catalogue quantity, or in an unexpected unit). */
  unknown: CosemObject[];
}

/** value × 10^exp, dividing for negative exponents so 2307 × 10^-1 is 230.7 and not 230.70000000000002. */
function scale(v: number, exp: number): number {
  return exp >= 0 ? v * 10 ** exp : v / 10 ** -exp;
}

function maker(id: Identity): string | undefined {
  const v = id.version ?? "";
  if (/^aidon/i.test(v)) return "Aidon";
  if (/^kamstrup/i.test(v)) return "Kamstrup";
  if (/^kfm/i.test(v)) return "Kaifa";
  // The three-letter FLAG code starts the logical device name or the meter id ("ISK…"), after the medium digit in
  // Austrian meter numbers ("1KFM…").
  const id3 = (id.name ?? id.meterId ?? "").replace(/^\d(?=[A-Z]{3})/i, "");
  return MANUFACTURERS[id3.slice(0, 3).toUpperCase()];
}

export function listValues(list: CosemList): ListValues {
  const values: Record<string, number> = {};
  const identity: Identity = {};
  if (list.version) identity.version = list.version;
  const unknown: CosemObject[] = [];
  let clock: Buffer | undefined;
  for (const o of list.objects) {
    const role = IDENTITY[o.obis];
    if (role === "clock") {
      const b = o.value.tag === Tag.OctetString || o.value.tag === Tag.DateTime ? o.value.bytes : undefined;
      if (b?.length === 12) clock = b;
      continue;
    }
    if (role) {
      const t = textOf(o.value);
      if (t !== undefined) identity[role] = t.trim();
      continue;
    }
    const q = QUANTITY.get(o.obis);
    const raw = numberOf(o.value);
    // Unknown codes, and values in another unit than the quantity's (a meter's own reading of a code), are left.
    if (!q || raw === undefined || (q.unit !== undefined && o.unit !== undefined && o.unit !== q.unit)) {
      unknown.push(o);
      continue;
    }
    values[q.name] = scale(raw, (o.scaler ?? 0) + q.exp);
  }
  const imp = values.power_import_w;
  const exp = values.power_export_w;
  if (imp !== undefined) values.power_net_w = exp !== undefined ? Math.round((imp - exp) * 1e6) / 1e6 : imp;
  const manufacturer = maker(identity);
  if (manufacturer) identity.manufacturer = manufacturer;
  return { values, identity, clock, unknown };
}
