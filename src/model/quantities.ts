/**
 * The quantity catalogue: every value a meter can report, described once.
 * Decode output, JSON state, MQTT discovery and archive columns are all derived from this table.
 */

export type Kind =
  | "energy"
  | "power"
  | "voltage"
  | "current"
  | "gas"
  | "water"
  | "heat"
  | "reactive_energy"
  | "reactive_power"
  | "frequency"
  | "power_factor"
  | "demand"
  | "count"
  | "timestamp"
  | "text"
  | "tariff"
  | "price"
  | "cost";

export type StateClass = "measurement" | "total" | "total_increasing";

export interface QuantitySpec {
  /** Public name, stable: decode output, JSON state key, archive column. */
  readonly name: string;
  /** Human label used as the HA entity name (the device name is prepended by HA). */
  readonly label: string;
  readonly kind: Kind;
  readonly type: "number" | "string";
  readonly unit?: string;
  readonly deviceClass?: string;
  readonly stateClass?: StateClass;
  readonly icon?: string;
  readonly entityCategory?: "diagnostic";
  /** Suggested display precision in HA. */
  readonly precision?: number;
  /** Stored as a column of the `readings` table. */
  readonly archive: boolean;
  /** Hidden in HA until the user enables it (rarely useful values). */
  readonly disabledByDefault?: boolean;
  /** A `total` that starts over: the value (an ISO time) HA takes as its last_reset. */
  readonly lastResetFrom?: string;
}

const specs: QuantitySpec[] = [];
const add = (q: Omit<QuantitySpec, "archive"> & { archive?: boolean }): void => {
  specs.push({ archive: q.type === "number", ...q });
};

const PHASES = [1, 2, 3] as const;
const TARIFFS = [1, 2, 3, 4] as const;

// Energy registers. state_class "total" (not total_increasing): HA treats any decrease of a
// total_increasing sensor as a meter reset and books the whole new value as consumption, which
// is the spike users see after one glitched reading. With "total" a dip and its recovery cancel out.
for (const dir of ["import", "export"] as const) {
  const Dir = dir === "import" ? "Energy import" : "Energy export";
  add({
    name: `energy_${dir}_kwh`,
    label: Dir,
    kind: "energy",
    type: "number",
    unit: "kWh",
    deviceClass: "energy",
    stateClass: "total",
    precision: 3,
  });
  for (const t of TARIFFS) {
    add({
      name: `energy_${dir}_tariff${t}_kwh`,
      label: `${Dir} tariff ${t}`,
      kind: "energy",
      type: "number",
      unit: "kWh",
      deviceClass: "energy",
      stateClass: "total",
      precision: 3,
    });
  }
}
add({
  name: "energy_absolute_kwh",
  label: "Energy absolute (import + export)",
  kind: "energy",
  type: "number",
  unit: "kWh",
  deviceClass: "energy",
  stateClass: "total",
  precision: 3,
  disabledByDefault: true,
});

// Power.
for (const [name, label] of [
  ["power_import_w", "Power import"],
  ["power_export_w", "Power export"],
  ["power_net_w", "Power net"],
  // Computed by the bridge (src/derived/): export, 0 while importing; what the load advisor shares out.
  ["power_surplus_w", "Power surplus"],
] as const) {
  add({
    name,
    label,
    kind: "power",
    type: "number",
    unit: "W",
    deviceClass: "power",
    stateClass: "measurement",
    precision: 0,
  });
}
for (const p of PHASES) {
  add({
    name: `power_import_l${p}_w`,
    label: `Power import L${p}`,
    kind: "power",
    type: "number",
    unit: "W",
    deviceClass: "power",
    stateClass: "measurement",
    precision: 0,
  });
  add({
    name: `power_export_l${p}_w`,
    label: `Power export L${p}`,
    kind: "power",
    type: "number",
    unit: "W",
    deviceClass: "power",
    stateClass: "measurement",
    precision: 0,
  });
  add({
    name: `voltage_l${p}_v`,
    label: `Voltage L${p}`,
    kind: "voltage",
    type: "number",
    unit: "V",
    deviceClass: "voltage",
    stateClass: "measurement",
    precision: 1,
  });
  add({
    name: `current_l${p}_a`,
    label: `Current L${p}`,
    kind: "current",
    type: "number",
    unit: "A",
    deviceClass: "current",
    stateClass: "measurement",
    precision: 2,
  });
  add({
    name: `power_factor_l${p}`,
    label: `Power factor L${p}`,
    kind: "power_factor",
    type: "number",
    deviceClass: "power_factor",
    stateClass: "measurement",
    precision: 3,
    disabledByDefault: true,
  });
  add({
    name: `voltage_sags_l${p}`,
    label: `Voltage sags L${p}`,
    kind: "count",
    type: "number",
    stateClass: "total",
    icon: "mdi:flash-triangle",
    entityCategory: "diagnostic",
    disabledByDefault: true,
  });
  add({
    name: `voltage_swells_l${p}`,
    label: `Voltage swells L${p}`,
    kind: "count",
    type: "number",
    stateClass: "total",
    icon: "mdi:flash-triangle",
    entityCategory: "diagnostic",
    disabledByDefault: true,
  });
  for (const dir of ["import", "export"] as const) {
    add({
      name: `reactive_power_${dir}_l${p}_var`,
      label: `Reactive power ${dir} L${p}`,
      kind: "reactive_power",
      type: "number",
      unit: "var",
      deviceClass: "reactive_power",
      stateClass: "measurement",
      precision: 0,
      disabledByDefault: true,
    });
  }
}
add({
  name: "power_factor",
  label: "Power factor",
  kind: "power_factor",
  type: "number",
  deviceClass: "power_factor",
  stateClass: "measurement",
  precision: 3,
  disabledByDefault: true,
});
add({
  name: "frequency_hz",
  label: "Frequency",
  kind: "frequency",
  type: "number",
  unit: "Hz",
  deviceClass: "frequency",
  stateClass: "measurement",
  precision: 2,
});
for (const dir of ["import", "export"] as const) {
  add({
    name: `reactive_power_${dir}_var`,
    label: `Reactive power ${dir}`,
    kind: "reactive_power",
    type: "number",
    unit: "var",
    deviceClass: "reactive_power",
    stateClass: "measurement",
    precision: 0,
    disabledByDefault: true,
  });
  add({
    name: `reactive_energy_${dir}_kvarh`,
    label: `Reactive energy ${dir}`,
    kind: "reactive_energy",
    type: "number",
    unit: "kvarh",
    stateClass: "total",
    icon: "mdi:sine-wave",
    precision: 3,
    disabledByDefault: true,
  });
}
for (const dir of ["import", "export"] as const) {
  for (const t of TARIFFS) {
    add({
      name: `reactive_energy_${dir}_tariff${t}_kvarh`,
      label: `Reactive energy ${dir} tariff ${t}`,
      kind: "reactive_energy",
      type: "number",
      unit: "kvarh",
      stateClass: "total",
      icon: "mdi:sine-wave",
      precision: 3,
      disabledByDefault: true,
    });
  }
  add({
    name: `apparent_power_${dir}_va`,
    label: `Apparent power ${dir}`,
    kind: "power",
    type: "number",
    unit: "VA",
    deviceClass: "apparent_power",
    stateClass: "measurement",
    precision: 0,
    disabledByDefault: true,
  });
}
for (const q of [1, 2, 3, 4] as const) {
  add({
    name: `reactive_power_q${q}_var`,
    label: `Reactive power quadrant ${q}`,
    kind: "reactive_power",
    type: "number",
    unit: "var",
    deviceClass: "reactive_power",
    stateClass: "measurement",
    precision: 0,
    disabledByDefault: true,
  });
  add({
    name: `reactive_energy_q${q}_kvarh`,
    label: `Reactive energy quadrant ${q}`,
    kind: "reactive_energy",
    type: "number",
    unit: "kvarh",
    stateClass: "total",
    icon: "mdi:sine-wave",
    precision: 3,
    disabledByDefault: true,
  });
}

// Belgian capacity tariff (Fluvius): the running quarter-hour average and this month's peak.
add({
  name: "demand_quarter_hour_w",
  label: "Quarter-hour average demand",
  kind: "demand",
  type: "number",
  unit: "W",
  deviceClass: "power",
  stateClass: "measurement",
  precision: 0,
});
// Computed by the bridge (src/derived/): the quarter-hour's average if the current import held to its end.
add({
  name: "demand_quarter_hour_projected_w",
  label: "Quarter-hour demand projected",
  kind: "demand",
  type: "number",
  unit: "W",
  deviceClass: "power",
  stateClass: "measurement",
  precision: 0,
});
add({
  name: "demand_month_peak_w",
  label: "Month peak demand",
  kind: "demand",
  type: "number",
  unit: "W",
  deviceClass: "power",
  stateClass: "measurement",
  precision: 0,
});
add({
  name: "demand_month_peak_at",
  label: "Month peak demand at",
  kind: "timestamp",
  type: "string",
  deviceClass: "timestamp",
  archive: true,
});

// Tariff, failures, thresholds.
add({ name: "tariff", label: "Tariff", kind: "tariff", type: "number", icon: "mdi:clock-outline" });
add({
  name: "power_failures",
  label: "Power failures",
  kind: "count",
  type: "number",
  stateClass: "total",
  icon: "mdi:flash-off",
  entityCategory: "diagnostic",
});
add({
  name: "long_power_failures",
  label: "Long power failures",
  kind: "count",
  type: "number",
  stateClass: "total",
  icon: "mdi:flash-off",
  entityCategory: "diagnostic",
});
add({
  name: "last_long_power_failure_at",
  label: "Last long power failure ended",
  kind: "timestamp",
  type: "string",
  deviceClass: "timestamp",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "last_long_power_failure_s",
  label: "Last long power failure duration",
  kind: "count",
  type: "number",
  unit: "s",
  deviceClass: "duration",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "breaker_state",
  label: "Breaker state",
  kind: "count",
  type: "number",
  icon: "mdi:electric-switch",
  entityCategory: "diagnostic",
  archive: false,
  disabledByDefault: true,
});
add({
  name: "limiter_threshold_w",
  label: "Limiter threshold",
  kind: "power",
  type: "number",
  unit: "W",
  deviceClass: "power",
  entityCategory: "diagnostic",
  archive: false,
  disabledByDefault: true,
});
for (const p of PHASES) {
  add({
    name: `fuse_threshold_l${p}_a`,
    label: `Fuse threshold L${p}`,
    kind: "current",
    type: "number",
    unit: "A",
    deviceClass: "current",
    entityCategory: "diagnostic",
    archive: false,
    disabledByDefault: true,
  });
}
add({
  name: "limiter_threshold_va",
  label: "Limiter threshold",
  kind: "power",
  type: "number",
  unit: "VA",
  deviceClass: "apparent_power",
  entityCategory: "diagnostic",
  archive: false,
  disabledByDefault: true,
});
add({
  // When the grid operator replaced the meter (src/derived/replacement.ts); also HA's last_reset of its registers.
  name: "meter_replaced_at",
  label: "Meter replaced",
  kind: "timestamp",
  type: "string",
  deviceClass: "timestamp",
  icon: "mdi:meter-electric-outline",
  entityCategory: "diagnostic",
});
add({
  name: "text_message_code",
  label: "Text message code",
  kind: "text",
  type: "string",
  icon: "mdi:message-alert-outline",
  entityCategory: "diagnostic",
  disabledByDefault: true,
});
add({
  name: "meter_serial",
  label: "Meter serial number",
  kind: "text",
  type: "string",
  icon: "mdi:identifier",
  entityCategory: "diagnostic",
  disabledByDefault: true,
});
add({
  name: "meter_status",
  label: "Meter status",
  kind: "text",
  type: "string",
  icon: "mdi:list-status",
  entityCategory: "diagnostic",
  disabledByDefault: true,
});
add({
  name: "text_message",
  label: "Text message",
  kind: "text",
  type: "string",
  icon: "mdi:message-text-outline",
  entityCategory: "diagnostic",
  disabledByDefault: true,
});

// M-Bus devices: the first of a kind has the plain name, a second one gets `_2`.
for (const suffix of ["", "_2"] as const) {
  const n = suffix ? " 2" : "";
  add({
    name: `gas${suffix}_m3`,
    label: `Gas${n}`,
    kind: "gas",
    type: "number",
    unit: "m³",
    deviceClass: "gas",
    stateClass: "total",
    precision: 3,
  });
  add({
    name: `gas${suffix}_at`,
    label: `Gas${n} reading time`,
    kind: "timestamp",
    type: "string",
    deviceClass: "timestamp",
    entityCategory: "diagnostic",
    archive: true,
  });
  add({
    name: `water${suffix}_m3`,
    label: `Water${n}`,
    kind: "water",
    type: "number",
    unit: "m³",
    deviceClass: "water",
    stateClass: "total",
    precision: 3,
  });
  add({
    name: `water${suffix}_at`,
    label: `Water${n} reading time`,
    kind: "timestamp",
    type: "string",
    deviceClass: "timestamp",
    entityCategory: "diagnostic",
    archive: true,
  });
  add({
    name: `heat${suffix}_gj`,
    label: `Heat${n}`,
    kind: "heat",
    type: "number",
    unit: "GJ",
    deviceClass: "energy",
    stateClass: "total",
    precision: 3,
  });
  add({
    name: `heat${suffix}_at`,
    label: `Heat${n} reading time`,
    kind: "timestamp",
    type: "string",
    deviceClass: "timestamp",
    entityCategory: "diagnostic",
    archive: true,
  });
}

// Price (RAVEn, tariffs).
add({
  name: "price_per_kwh",
  label: "Price",
  kind: "price",
  type: "number",
  icon: "mdi:currency-usd",
  stateClass: "measurement",
  precision: 4,
});
// Dynamic tariffs (src/tariffs/dynamic.ts): where the price now comes from, and when the source last gave one.
add({
  name: "price_source",
  label: "Price source",
  kind: "text",
  type: "string",
  icon: "mdi:cash-sync",
  entityCategory: "diagnostic",
});
add({
  name: "price_updated_at",
  label: "Price updated",
  kind: "timestamp",
  type: "string",
  deviceClass: "timestamp",
  icon: "mdi:cash-clock",
  entityCategory: "diagnostic",
});
// RAVEn / EMU-2 without summation: energy integrated from demand by the bridge. These counters start at 0 with
// the bridge, so unlike the meter's registers they are total_increasing: HA must read a restart as a reset.
for (const dir of ["import", "export"] as const) {
  add({
    name: `energy_${dir}_estimated_kwh`,
    label: `Energy ${dir} (estimated from demand)`,
    kind: "energy",
    type: "number",
    unit: "kWh",
    deviceClass: "energy",
    stateClass: "total_increasing",
    precision: 3,
  });
}
// RAVEn / EMU-2 diagnostics: the ZigBee link to the meter, and the device's firmware.
add({
  name: "link_strength_pct",
  label: "Link strength",
  kind: "count",
  type: "number",
  unit: "%",
  stateClass: "measurement",
  icon: "mdi:wifi",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "connection_status",
  label: "Connection status",
  kind: "text",
  type: "string",
  icon: "mdi:lan-connect",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "firmware",
  label: "Firmware",
  kind: "text",
  type: "string",
  icon: "mdi:chip",
  entityCategory: "diagnostic",
  archive: false,
});
// Interval meters (Smart Meter Texas, SmartHub): data a day late, summarised from the archive's intervals (so not
// archived again as readings). The day's energy has neither state_class nor the energy device class on purpose:
// HA would book each day at the moment it arrived, and offer the sensor to the Energy dashboard; the hourly
// energy goes there as external statistics instead (src/outputs/statistics/).
for (const dir of ["import", "export"] as const) {
  add({
    name: `energy_${dir}_last_day_kwh`,
    label: `Energy ${dir} last full day`,
    kind: "energy",
    type: "number",
    unit: "kWh",
    precision: 3,
    icon: dir === "import" ? "mdi:transmission-tower-import" : "mdi:transmission-tower-export",
    archive: false,
  });
}
add({
  name: "last_day",
  label: "Last full day",
  kind: "text",
  type: "string",
  deviceClass: "date",
  archive: false,
});
add({
  name: "interval_end_at",
  label: "Newest interval end",
  kind: "timestamp",
  type: "string",
  deviceClass: "timestamp",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "import_status",
  label: "Import status",
  kind: "text",
  type: "string",
  icon: "mdi:email-sync-outline",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "import_checked_at",
  label: "Import checked",
  kind: "timestamp",
  type: "string",
  deviceClass: "timestamp",
  entityCategory: "diagnostic",
  archive: false,
});
// Bridge diagnostics per meter (not from the meter itself).
add({
  name: "frames_received",
  label: "Frames received",
  kind: "count",
  type: "number",
  stateClass: "total_increasing",
  icon: "mdi:counter",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "frames_rejected",
  label: "Frames rejected",
  kind: "count",
  type: "number",
  stateClass: "total_increasing",
  icon: "mdi:alert-circle-outline",
  entityCategory: "diagnostic",
  archive: false,
});
// The archive (src/outputs/archive/diagnostics.ts): its file size (the same on every meter) and this meter's rows.
add({
  name: "archive_size_mb",
  label: "Archive size",
  kind: "count",
  type: "number",
  unit: "MB",
  deviceClass: "data_size",
  stateClass: "measurement",
  icon: "mdi:database",
  precision: 1,
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "archive_rows",
  label: "Archive rows",
  kind: "count",
  type: "number",
  stateClass: "measurement",
  icon: "mdi:database-outline",
  entityCategory: "diagnostic",
  archive: false,
});
add({
  name: "currency",
  label: "Currency",
  kind: "text",
  type: "string",
  entityCategory: "diagnostic",
  archive: false,
});

// Cost from the meter's tariff (src/tariffs/), in the tariff's currency (the unit is set per meter, as for the price).
// Monetary sensors take state_class total only; totals carry on across restarts from the archive (src/tariffs/live.ts).
// The import cost includes the tariff's daily charge, so the Energy dashboard's grid cost matches the bill.
for (const [name, label] of [
  ["cost_import_total", "Cost import"],
  ["cost_export_total", "Compensation export"],
] as const) {
  add({
    name,
    label,
    kind: "cost",
    type: "number",
    deviceClass: "monetary",
    stateClass: "total",
    icon: "mdi:cash",
    precision: 2,
  });
}

// Belgium's capacity tariff in money (src/tariffs/capacity.ts): the kW billed and this month's charge.
add({
  name: "capacity_basis_kw",
  label: "Capacity tariff basis",
  kind: "demand",
  type: "number",
  unit: "kW",
  deviceClass: "power",
  stateClass: "measurement",
  icon: "mdi:chart-bell-curve-cumulative",
  precision: 3,
  archive: false,
});
for (const [name, label] of [
  ["capacity_cost_month", "Capacity charge this month"],
  ["capacity_cost_month_projected", "Capacity charge this month, projected"],
] as const) {
  // No state_class: a monthly figure that starts over, for display; the Energy dashboard takes cost_import_total.
  add({
    name,
    label,
    kind: "cost",
    type: "number",
    deviceClass: "monetary",
    icon: "mdi:cash-clock",
    precision: 2,
    archive: false,
  });
}

// What the load advisor's peak guard saved this month on the capacity tariff (src/loads/savings.ts), for meters whose
// tariff has `capacity` and that have loads with peak_guard. A monthly total: HA's last_reset is the month's start.
add({
  name: "peak_guard_saved_month",
  label: "Peak guard savings this month",
  kind: "cost",
  type: "number",
  deviceClass: "monetary",
  stateClass: "total",
  icon: "mdi:shield-check-outline",
  precision: 2,
  archive: false,
  lastResetFrom: "peak_guard_saved_since",
});
add({
  name: "peak_guard_saved_since",
  label: "Peak guard savings since",
  kind: "timestamp",
  type: "string",
  deviceClass: "timestamp",
  entityCategory: "diagnostic",
  archive: false,
});

export const QUANTITIES: ReadonlyMap<string, QuantitySpec> = new Map(specs.map((s) => [s.name, s]));

export function quantity(name: string): QuantitySpec | undefined {
  return QUANTITIES.get(name);
}

/**
 * True when every value is one of the bridge's own diagnostics (the archive's size, frame counters): such a
 * reading says nothing about the meter, so it neither proves the meter alive nor moves its time.
 */
export function bridgeDiagnosticsOnly(values: Readonly<Record<string, unknown>>): boolean {
  for (const name of Object.keys(values)) {
    const q = QUANTITIES.get(name);
    if (q?.entityCategory !== "diagnostic" || q.archive) return false;
  }
  return true;
}

/** Columns of the archive's `readings` table, in catalogue order. */
export const ARCHIVE_COLUMNS: readonly QuantitySpec[] = specs.filter((s) => s.archive);

/** Units a spec's unit_of_measurement is published in; currency-based price units are set per meter. */
export function priceUnit(currency: string | undefined): string | undefined {
  return currency ? `${currency}/kWh` : undefined;
}
