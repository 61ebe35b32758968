/**
 * The DSMR dialects as one declarative table: OBIS reference → quantity name.
 * NL (DSMR 2.2–5), BE Fluvius e-MUCS, LU Smarty, SE, HU, AT and the EasyMeter Q3D all use subsets of
 * these codes; where a dialect differs it is in the units (W vs kW, Wh vs kWh), which the decoder
 * normalises from the unit the telegram itself carries.
 */

/** Numeric OBIS key a-b:c.d.e; the decoder builds the same number while scanning a line. */
export function obisKey(a: number, b: number, c: number, d: number, e: number): number {
  return a * 2 ** 32 + b * 2 ** 24 + c * 2 ** 16 + d * 2 ** 8 + e;
}

export function parseObis(code: string): number {
  const m = /^(\d+)-(\d+):(\d+)\.(\d+)\.(\d+)$/.exec(code);
  if (!m) throw new Error(`bad OBIS code ${code}`);
  return obisKey(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
}

export function obisString(key: number): string {
  const e = key % 256;
  const d = Math.floor(key / 2 ** 8) % 256;
  const c = Math.floor(key / 2 ** 16) % 256;
  const b = Math.floor(key / 2 ** 24) % 256;
  const a = Math.floor(key / 2 ** 32);
  return `${a}-${b}:${c}.${d}.${e}`;
}

/** Plain numeric registers: the first value group is the reading. */
export const NUMERIC: ReadonlyArray<readonly [string, string]> = [
  ["1-0:1.8.0", "energy_import_kwh"],
  ["1-0:1.8.1", "energy_import_tariff1_kwh"],
  ["1-0:1.8.2", "energy_import_tariff2_kwh"],
  ["1-0:1.8.3", "energy_import_tariff3_kwh"],
  ["1-0:1.8.4", "energy_import_tariff4_kwh"],
  ["1-0:2.8.0", "energy_export_kwh"],
  ["1-0:2.8.1", "energy_export_tariff1_kwh"],
  ["1-0:2.8.2", "energy_export_tariff2_kwh"],
  ["1-0:2.8.3", "energy_export_tariff3_kwh"],
  ["1-0:2.8.4", "energy_export_tariff4_kwh"],
  ["1-0:15.8.0", "energy_absolute_kwh"],
  ["1-0:3.8.0", "reactive_energy_import_kvarh"],
  ["1-0:4.8.0", "reactive_energy_export_kvarh"],
  ["1-0:3.8.1", "reactive_energy_import_tariff1_kvarh"],
  ["1-0:3.8.2", "reactive_energy_import_tariff2_kvarh"],
  ["1-0:3.8.3", "reactive_energy_import_tariff3_kvarh"],
  ["1-0:3.8.4", "reactive_energy_import_tariff4_kvarh"],
  ["1-0:4.8.1", "reactive_energy_export_tariff1_kvarh"],
  ["1-0:4.8.2", "reactive_energy_export_tariff2_kvarh"],
  ["1-0:4.8.3", "reactive_energy_export_tariff3_kvarh"],
  ["1-0:4.8.4", "reactive_energy_export_tariff4_kvarh"],
  ["1-0:5.8.0", "reactive_energy_q1_kvarh"],
  ["1-0:6.8.0", "reactive_energy_q2_kvarh"],
  ["1-0:7.8.0", "reactive_energy_q3_kvarh"],
  ["1-0:8.8.0", "reactive_energy_q4_kvarh"],
  ["1-0:1.7.0", "power_import_w"],
  ["1-0:2.7.0", "power_export_w"],
  ["1-0:21.7.0", "power_import_l1_w"],
  ["1-0:41.7.0", "power_import_l2_w"],
  ["1-0:61.7.0", "power_import_l3_w"],
  ["1-0:22.7.0", "power_export_l1_w"],
  ["1-0:42.7.0", "power_export_l2_w"],
  ["1-0:62.7.0", "power_export_l3_w"],
  ["1-0:3.7.0", "reactive_power_import_var"],
  ["1-0:4.7.0", "reactive_power_export_var"],
  ["1-0:23.7.0", "reactive_power_import_l1_var"],
  ["1-0:43.7.0", "reactive_power_import_l2_var"],
  ["1-0:63.7.0", "reactive_power_import_l3_var"],
  ["1-0:24.7.0", "reactive_power_export_l1_var"],
  ["1-0:44.7.0", "reactive_power_export_l2_var"],
  ["1-0:64.7.0", "reactive_power_export_l3_var"],
  ["1-0:32.7.0", "voltage_l1_v"],
  ["1-0:52.7.0", "voltage_l2_v"],
  ["1-0:72.7.0", "voltage_l3_v"],
  ["1-0:31.7.0", "current_l1_a"],
  ["1-0:51.7.0", "current_l2_a"],
  ["1-0:71.7.0", "current_l3_a"],
  ["1-0:13.7.0", "power_factor"],
  ["1-0:33.7.0", "power_factor_l1"],
  ["1-0:53.7.0", "power_factor_l2"],
  ["1-0:73.7.0", "power_factor_l3"],
  ["1-0:14.7.0", "frequency_hz"],
  ["1-0:1.4.0", "demand_quarter_hour_w"],
  ["0-0:96.14.0", "tariff"],
  ["0-0:96.7.21", "power_failures"],
  ["0-0:96.7.9", "long_power_failures"],
  ["1-0:32.32.0", "voltage_sags_l1"],
  ["1-0:52.32.0", "voltage_sags_l2"],
  ["1-0:72.32.0", "voltage_sags_l3"],
  ["1-0:32.36.0", "voltage_swells_l1"],
  ["1-0:52.36.0", "voltage_swells_l2"],
  ["1-0:72.36.0", "voltage_swells_l3"],
  ["0-0:96.3.10", "breaker_state"],
  // The same code in two units: kW (NL) or kVA (Luxembourg); the unit in the telegram picks the quantity.
  ["0-0:17.0.0", "limiter_threshold_w"],
  ["0-0:17.0.0", "limiter_threshold_va"],
  ["1-0:9.7.0", "apparent_power_import_va"],
  ["1-0:10.7.0", "apparent_power_export_va"],
  ["1-0:31.4.0", "fuse_threshold_l1_a"],
  ["1-0:51.4.0", "fuse_threshold_l2_a"],
  ["1-0:71.4.0", "fuse_threshold_l3_a"],
  ["1-0:5.7.0", "reactive_power_q1_var"],
  ["1-0:6.7.0", "reactive_power_q2_var"],
  ["1-0:7.7.0", "reactive_power_q3_var"],
  ["1-0:8.7.0", "reactive_power_q4_var"],
];

/** Unit conversions to the catalogue's units: factor applied as value × 10^exp. */
export const UNIT_EXP: Readonly<Record<string, { unit: string; exp: number }>> = {
  kWh: { unit: "kWh", exp: 0 },
  Wh: { unit: "kWh", exp: -3 },
  MWh: { unit: "kWh", exp: 3 },
  kW: { unit: "W", exp: 3 },
  W: { unit: "W", exp: 0 },
  kvarh: { unit: "kvarh", exp: 0 },
  kVArh: { unit: "kvarh", exp: 0 },
  varh: { unit: "kvarh", exp: -3 },
  kvar: { unit: "var", exp: 3 },
  kVAr: { unit: "var", exp: 3 },
  var: { unit: "var", exp: 0 },
  kVA: { unit: "VA", exp: 3 },
  VA: { unit: "VA", exp: 0 },
  V: { unit: "V", exp: 0 },
  A: { unit: "A", exp: 0 },
  Hz: { unit: "Hz", exp: 0 },
  m3: { unit: "m3", exp: 0 },
  GJ: { unit: "GJ", exp: 0 },
  s: { unit: "s", exp: 0 },
};

const UNIT_LOWER = new Map(Object.entries(UNIT_EXP).map(([k, v]) => [k.toLowerCase(), v]));

/** A unit as a telegram writes it, in any case (a Landis+Gyr E350 writes `*kwh`, `*kw`, `*v`), or undefined. */
export function unitOf(text: string): { unit: string; exp: number } | undefined {
  return UNIT_EXP[text] ?? UNIT_LOWER.get(text.toLowerCase());
}

/** M-Bus device types (EN 13757-3) that a P1 port reports on channels 0-1 … 0-4. */
export const MBUS_KIND: Readonly<Record<number, "gas" | "water" | "heat">> = {
  3: "gas",
  4: "heat",
  6: "water", // warm water
  7: "water",
  10: "heat", // heat (inlet)
  12: "heat",
  13: "heat", // heat / cooling
};

/** Manufacturer from the three-letter FLAG code at the start of the header. */
export const MANUFACTURERS: Readonly<Record<string, string>> = {
  ISK: "Iskra",
  KFM: "Kaifa",
  XMX: "Landis+Gyr",
  KMP: "Kamstrup",
  KAM: "Kamstrup",
  FLU: "Fluvius",
  SAG: "Sagemcom",
  LUX: "Sagemcom (Luxembourg Smarty)",
  ESY: "EasyMeter",
  EST: "Sagemcom",
  ENE: "Eneco",
  EIT: "E.ON",
  ZCF: "Landis+Gyr",
};
