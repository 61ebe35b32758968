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
    const year = local.daysInYear;
    const elapsed = local.diff(start, "days").days;
    const basis = this.basis(now);
    const perDay = (basis * this.cfg.price_per_kw_year) / year;
    return {
      capacity_basis_kw: round(basis, 3),
      capacity_cost_month: round(perDay * elapsed, 2),
      capacity_cost_month_projected: round(perDay * days, 2),
    };
  }
}

/** The months' peaks (kW) of a meter before `before` ("yyyy-MM"), from the archive's readings, at most 12. */
export function peaksFromArchive(
  db: { prepare(sql: string): { all(...args: unknown[]): unknown[] } },
  meterId: string,
  zone: string,
  now: number,
): Map<string, number> {
  const from = DateTime.fromMillis(now, { zone }).startOf("month").minus({ months: 12 });
  const rows = db
    .prepare(
      "SELECT time, demand_month_peak_w AS w FROM readings WHERE meter_id = ? AND time >= ? AND demand_month_peak_w IS NOT NULL",
    )
    .all(meterId, from.toUTC().toISO()) as { time: string; w: number }[];
  const out = new Map<string, number>();
  const current = monthKey(now, zone);
  for (const r of rows) {
    const m = monthKey(Date.parse(r.time), zone);
    if (m === current) continue;
    out.set(m, Math.max(out.get(m) ?? 0, r.w / 1000));
  }
  return out;
}

/**
 * The bus step adding the capacity values to the readings of meters whose tariff has `capacity`, or undefined when
 * none has. `archive`: where the earlier months' peaks are read once at start.
 */
export function capacityTransform(
  meters: ReadonlyArray<{ id: string; capacity: CapacityConfig; timezone: string; currency: string }>,
  openArchive: (() => { prepare(sql: string): { all(...args: unknown[]): unknown[] }; close(): void }) | undefined,
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
