import { DateTime } from "luxon";
import type { Reading } from "../model/types.js";

/**
 * The Belgian (Flemish) capacity tariff in money. The grid fee's capacity part is a price per kW per year applied
 * to the household's peak demand: the highest quarter-hour average of each month, at least `minimum_kw` (2.5 kW),
 * and, where the operator uses it, averaged over the last 12 months (this month included). It accrues day by day,
 * so the month's charge so far is basis × price × days elapsed / days in the year, and the projection is the same
 * for the whole month at the current basis.
 *
 *   capacity_basis_kw               the kW the charge is computed on now
 *   capacity_cost_month             this month's capacity charge so far
 *   capacity_cost_month_projected   the whole month's at the current basis
 *
 * The month's peak comes from the meter (Belgian 1-0:1.6.0) or the bridge's own quarter-hours; the earlier months'
 * peaks from the archive (their highest demand_month_peak_w), kept as months end.
 */
export interface CapacityConfig {
  price_per_kw_year: number;
  minimum_kw: number;
  average: "month" | "12_months";
}

export interface CapacityValues {
  capacity_basis_kw: number;
  capacity_cost_month: number;
  capacity_cost_month_projected: number;
}

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;

/** "2026-03" in the tariff's zone. */
export function monthKey(ms: number, zone: string): string {
  return DateTime.fromMillis(ms, { zone }).toFormat("yyyy-MM");
}

export class CapacityCost {
  /** Peaks (kW) of the months before the current one, by "yyyy-MM". */
  private readonly months = new Map<string, number>();
  private current?: { month: string; kw: number };

  constructor(
    private readonly cfg: CapacityConfig,
    private readonly zone: string,
    history: ReadonlyMap<string, number> = new Map(),
  ) {
    for (const [m, kw] of history) this.months.set(m, kw);
  }

  /** The capacity values for a reading with the month's peak (W); none for one without. */
  add(r: Reading): CapacityValues | undefined {
    const peakW = r.values.demand_month_peak_w;
    if (typeof peakW !== "number" || !Number.isFinite(peakW)) return undefined;
    const month = monthKey(r.time, this.zone);
    if (this.current && this.current.month !== month) this.months.set(this.current.month, this.current.kw);
    const kw = peakW / 1000;
    this.current = { month, kw: this.current?.month === month ? Math.max(this.current.kw, kw) : kw };
    return this.values(r.time);
  }

  /** The kW the charge is computed on at `now`. */
  basis(now: number): number {
    const month = monthKey(now, this.zone);
    const min = this.cfg.minimum_kw;
    const cur = Math.max(min, this.current?.month === month ? this.current.kw : 0);
    if (this.cfg.average === "month") return cur;
    // The last 12 months, this one included; months without data (before the meter was read) are left out.
    const start = DateTime.fromMillis(now, { zone: this.zone }).startOf("month");
    const peaks = [cur];
    for (let i = 1; i < 12; i++) {
      const kw = this.months.get(start.minus({ months: i }).toFormat("yyyy-MM"));
      if (kw !== undefined) peaks.push(Math.max(min, kw));
    }
    return peaks.reduce((a, b) => a + b, 0) / peaks.length;
  }

  values(now: number): CapacityValues {
    const local = DateTime.fromMillis(now, { zone: this.zone });
    const start = local.startOf("month");
    const days = local.daysInMonth ?? 30;
    const basis = this.basis(now);
    return {
      capacity_basis_kw: round(basis, 3),
      capacity_cost_month: round(capacityCharge(this.cfg, this.zone, basis, start.toMillis(), now), 2),
      capacity_cost_month_projected: round((basis * this.cfg.price_per_kw_year * days) / local.daysInYear, 2),
    };
  }
}

/**
 * The capacity charge, unrounded, for `basisKw` from `from` to `to` (UTC ms, within one month): the charge accrues by
 * the day, basis × price per kW per year × days / days in the year (a partial day counts its share of 24 hours).
 */
export function capacityCharge(cfg: CapacityConfig, zone: string, basisKw: number, from: number, to: number): number {
  const a = DateTime.fromMillis(from, { zone });
  const days = DateTime.fromMillis(to, { zone }).diff(a, "days").days;
  return (basisKw * cfg.price_per_kw_year * days) / a.daysInYear;
}

/** Local month ("yyyy-MM") to its [start, end) in UTC ms. */
export function monthBounds(month: string, zone: string): { start: number; end: number } {
  const start = DateTime.fromFormat(month, "yyyy-MM", { zone }).startOf("month");
  return { start: start.toMillis(), end: start.plus({ months: 1 }).toMillis() };
}

type ReadDb = { prepare(sql: string): { get(...args: unknown[]): unknown } };

/**
 * Each month's peak (kW) of a meter from the archive: the month-peak register (`demand_month_peak_w`, which only
 * grows within a month) at the month's last reading that has it. One look-up per month along the readings' primary
 * key (meter_id, time), read backwards from the month's end, so years of readings cost no more than a few rows each.
 * Months without a peak reading are left out.
 */
export function monthPeaks(db: ReadDb, meterId: string, zone: string, months: readonly string[]): Map<string, number> {
  const last = db.prepare(
    `SELECT demand_month_peak_w AS w FROM readings
      WHERE meter_id = ? AND time >= ? AND time < ? AND demand_month_peak_w IS NOT NULL
      ORDER BY time DESC LIMIT 1`,
  );
  const out = new Map<string, number>();
  for (const m of months) {
    const { start, end } = monthBounds(m, zone);
    const row = last.get(meterId, new Date(start).toISOString(), new Date(end).toISOString()) as
      | { w: number }
      | undefined;
    if (row && typeof row.w === "number" && Number.isFinite(row.w)) out.set(m, row.w / 1000);
  }
  return out;
}

/** The `n` months ("yyyy-MM") before `month`, oldest first. */
export function monthsBefore(month: string, n: number): string[] {
  const m = DateTime.fromFormat(month, "yyyy-MM", { zone: "UTC" });
  return Array.from({ length: n }, (_, i) => m.minus({ months: n - i }).toFormat("yyyy-MM"));
}

/** A month's capacity figures as the sensor has them at the month's end (or at `now` for the running month). */
export interface CapacityMonth {
  /** The month's own peak, kW. */
  peakKw: number;
  /** The kW billed: the peak (at least the minimum) or the 12-month average, unrounded. */
  basisKw: number;
  /** The month's charge: the whole month's, or the running month's so far, rounded as the sensor is. */
  cost: number;
  /** Until when the month is charged: its end, or `now` while it runs (UTC ms). */
  until: number;
}

/**
 * The capacity figures of `months` (each "yyyy-MM"), computed by CapacityCost from the months' peaks (`peaks`, kW,
 * which must hold the 11 months before the first as well for the 12-month average): the same rules and rounding as
 * the live sensors, so a month's charge equals capacity_cost_month_projected at its end and, for the running month,
 * capacity_cost_month now. Months without a peak, and months not yet begun, are left out.
 */
export function capacityMonths(
  cfg: CapacityConfig,
  zone: string,
  peaks: ReadonlyMap<string, number>,
  months: readonly string[],
  now: number,
): Map<string, CapacityMonth> {
  const out = new Map<string, CapacityMonth>();
  for (const month of months) {
    const peakKw = peaks.get(month);
    const { start, end } = monthBounds(month, zone);
    if (peakKw === undefined || start > now) continue;
    const history = new Map([...peaks].filter(([m]) => m < month));
    const c = new CapacityCost(cfg, zone, history);
    const at = Math.min(now, end - 1);
    c.add({ meterId: "", time: at, values: { demand_month_peak_w: peakKw * 1000 } });
    const v = c.values(at);
    const running = now < end;
    out.set(month, {
      peakKw,
      basisKw: c.basis(at),
      cost: running ? v.capacity_cost_month : v.capacity_cost_month_projected,
      until: running ? now : end,
    });
  }
  return out;
}

/** The months' peaks (kW) of a meter in the 12 months before `now`'s, from the archive (see monthPeaks). */
export function peaksFromArchive(db: ReadDb, meterId: string, zone: string, now: number): Map<string, number> {
  return monthPeaks(db, meterId, zone, monthsBefore(monthKey(now, zone), 12));
}

/**
 * The bus step adding the capacity values to the readings of meters whose tariff has `capacity`, or undefined when
 * none has. `archive`: where the earlier months' peaks are read once at start.
 */
export function capacityTransform(
  meters: ReadonlyArray<{ id: string; capacity: CapacityConfig; timezone: string; currency: string }>,
  openArchive: (() => ReadDb & { close(): void }) | undefined,
  now: number,
): ((r: Reading) => Reading) | undefined {
  if (meters.length === 0) return undefined;
  const byMeter = new Map<string, CapacityCost>();
  const db = openArchive?.();
  try {
    for (const m of meters) {
      const history = db ? peaksFromArchive(db, m.id, m.timezone, now) : new Map<string, number>();
      byMeter.set(m.id, new CapacityCost(m.capacity, m.timezone, history));
    }
  } finally {
    db?.close();
  }
  return (r) => {
    const c = byMeter.get(r.meterId);
    const v = c?.add(r);
    return v ? { ...r, values: { ...r.values, ...v } } : r;
  };
}
