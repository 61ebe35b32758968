/**
 * Quantities computed from what a meter sends, added to each reading before any output sees it, so MQTT, the
 * archive and the load advisor all get the same values under the catalogue's names:
 *
 *   power_net_w                       import − export, where the source did not compute it
 *   power_surplus_w                   export, 0 while importing
 *   demand_quarter_hour_w             the meter's (Belgian 1-0:1.4.0), else computed from the import register
 *   demand_month_peak_w / _at         the meter's (Belgian 1-0:1.6.0), else computed the same way
 *   demand_quarter_hour_projected_w   the running quarter's average if the current import held to its end
 *
 * A value the meter sends always wins over the bridge's: the meter's is the one the grid operator bills.
 */
import type Database from "better-sqlite3";
import { DateTime } from "luxon";
import type { Reading } from "../model/types.js";
import { MAX_INTERPOLATION_GAP_MS, projectQuarter, QuarterHourDemand, quarterStart } from "./quarter-hour.js";

export {
  MAX_INTERPOLATION_GAP_MS,
  projectQuarter,
  QUARTER_MS,
  QuarterHourDemand,
  quarterStart,
} from "./quarter-hour.js";

/** A month's peak quarter hour: its average (W) and its end (UTC ms). */
export interface MonthPeak {
  w: number;
  at: number;
}

/**
 * Each meter's newest archived month peak of the current month (in the meter's zone), to carry on after a restart.
 * One indexed look-up per meter, newest first.
 */
export function monthPeaksFromArchive(
  db: Database.Database,
  meters: readonly { id: string; timezone?: string }[],
  now: number,
): Map<string, MonthPeak> {
  const out = new Map<string, MonthPeak>();
  const stmt = db.prepare<[string, string]>(
    `SELECT demand_month_peak_w AS w, demand_month_peak_at AS at FROM readings
      WHERE meter_id = ? AND time >= ? AND demand_month_peak_w IS NOT NULL AND demand_month_peak_at IS NOT NULL
      ORDER BY time DESC LIMIT 1`,
  );
  for (const m of meters) {
    const monthStart = DateTime.fromMillis(now, { zone: m.timezone ?? "UTC" })
      .startOf("month")
      .toMillis();
    const row = stmt.get(m.id, new Date(monthStart).toISOString()) as { w: number; at: string } | undefined;
    const at = row ? Date.parse(row.at) : Number.NaN;
    if (row && Number.isFinite(row.w) && at > monthStart && at <= now) out.set(m.id, { w: row.w, at });
  }
  return out;
}

/** The register the quarter-hours are computed from: the meter's, else the RAVEn's estimate from demand. */
const ENERGY_SOURCES = ["energy_import_kwh", "energy_import_estimated_kwh"] as const;

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Derived values of one meter; keeps the quarter-hour state between readings. */
export class MeterDerivation {
  private readonly quarter: QuarterHourDemand;
  private source?: (typeof ENERGY_SOURCES)[number];
  /**
   * Latest quarter demand and import power with their times. Some sources send them in separate readings (a
   * RAVEn answers demand and summation apart), and the projection needs both.
   */
  private demand?: { t: number; w: number };
  private import?: { t: number; w: number };

  constructor(timezone?: string, peak?: MonthPeak) {
    this.quarter = new QuarterHourDemand(timezone);
    if (peak) this.quarter.restorePeak(peak.w, peak.at);
  }

  /** The values `r` lacks that can be computed now (never one it has). */
  derive(r: Reading): Record<string, number | string> {
    const v = r.values;
    const out: Record<string, number | string> = {};

    const imp = num(v.power_import_w);
    const exp = num(v.power_export_w);
    let net = num(v.power_net_w);
    if (net === undefined && imp !== undefined) {
      net = imp - (exp ?? 0);
      out.power_net_w = net;
    }
    if (net !== undefined && v.power_surplus_w === undefined) out.power_surplus_w = Math.max(0, -net);
    const importNow = imp ?? (net === undefined ? undefined : Math.max(0, net));
    if (importNow !== undefined) this.import = { t: r.time, w: importNow };

    // Sticks to the first register seen: mixing two would read their difference as consumption.
    this.source ??= ENERGY_SOURCES.find((name) => num(v[name]) !== undefined);
    const kwh = this.source && num(v[this.source]);
    const computed = kwh === undefined ? {} : this.quarter.add(r.time, kwh);

    const reported = num(v.demand_quarter_hour_w);
    if (reported !== undefined) this.demand = { t: r.time, w: reported };
    else if (computed.demandW !== undefined) {
      this.demand = { t: r.time, w: computed.demandW };
      out.demand_quarter_hour_w = computed.demandW;
    }
    if (v.demand_month_peak_w === undefined && computed.monthPeakW !== undefined) {
      out.demand_month_peak_w = computed.monthPeakW;
      if (computed.monthPeakAt !== undefined) out.demand_month_peak_at = new Date(computed.monthPeakAt).toISOString();
    }

    const d = this.demand;
    const p = this.import;
    if (
      v.demand_quarter_hour_projected_w === undefined &&
      d &&
      p &&
      quarterStart(d.t) === quarterStart(r.time) &&
      r.time - p.t <= MAX_INTERPOLATION_GAP_MS
    )
      out.demand_quarter_hour_projected_w = projectQuarter(d.t, d.w, p.w);
    return out;
  }
}

/**
 * For the bus: a reading in, the same reading with the derived values added out (a new object; the source's
 * is left as it was). Meters are told apart by id; each keeps its own quarter-hour.
 */
export function createDeriver(
  meters: readonly { id: string; timezone?: string; peak?: MonthPeak }[],
): (r: Reading) => Reading {
  const zones = new Map(meters.map((m) => [m.id, m.timezone]));
  const peaks = new Map(meters.map((m) => [m.id, m.peak]));
  const byMeter = new Map<string, MeterDerivation>();
  return (r) => {
    let d = byMeter.get(r.meterId);
    if (!d) {
      d = new MeterDerivation(zones.get(r.meterId), peaks.get(r.meterId));
      byMeter.set(r.meterId, d);
    }
    const extra = d.derive(r);
    return Object.keys(extra).length === 0 ? r : { ...r, values: { ...r.values, ...extra } };
  };
}
