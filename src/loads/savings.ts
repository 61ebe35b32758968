/**
 * What the peak guard saved this month on Belgium's capacity tariff, for a meter whose tariff has `capacity`
 * (src/tariffs/capacity.ts): `peak_guard_saved_month`, in the tariff's currency.
 *
 * The rule, in three steps:
 *  1. The power the guard held back. A load the guard switches off, or keeps from switching on (it is off with
 *     reason `peak_guard`), counts as drawing its configured power from that moment to the end of that quarter-hour,
 *     as long as it stays off. A later quarter-hour counts it again only if the guard holds it off there too: what
 *     the load would have done beyond the quarter-hour the guard protected is not guessed.
 *  2. The peak that would have been. Each sample's grid power and held-back power hold until the next sample (at
 *     most 5 minutes: a longer gap says nothing). Only import counts, so the quarter-hour's extra average is the
 *     integral of max(0, net + held back) − max(0, net) over 15 minutes; the quarter-hour that would have been is
 *     the one that was (the bridge's projection at the quarter-hour's last sample, which is its average once it
 *     ends) plus that extra. The month's peak that would have been is the highest of these and the month's peak.
 *     Quarter-hours count once they end.
 *  3. Money. Saved kW = max(minimum, peak that would have been) − max(minimum, month's peak): under the minimum
 *     (2.5 kW in Flanders) nothing is saved. A kW of a month's billed peak is worth, with the sensor's rules:
 *       `average: month`      price per kW per year × days in the month / days in the year (that month's charge);
 *       `average: 12_months`  the month's peak is one of 12 in the average of this month and each of the next 11,
 *                             so 1/12 of each of those months' charge: price × Σ (days / days in the year) / 12
 *                             over the 12 months, which is price / 12 (within a leap day). The whole of it is
 *                             booked in the month the peak was avoided, though the bill spreads it over a year.
 * The figure starts over at each month's start (HA's last_reset, `peak_guard_saved_since`). It can go down within
 * the month: a later, higher peak the guard did not prevent makes an earlier avoided one worth less. It is kept in
 * memory only: after a restart it counts from then.
 */
import { DateTime } from "luxon";
import { type CapacityConfig, monthBounds, monthKey } from "../tariffs/capacity.js";
import { type LoadStatus, QUARTER_MS } from "./control.js";

/** The longest time one sample's power is taken to hold. */
export const MAX_SAMPLE_MS = 5 * 60_000;

const quarterOf = (t: number): number => Math.floor(t / QUARTER_MS) * QUARTER_MS;

/** What a kW of `month`'s billed peak costs in all (see the rule above). */
export function peakKwValue(cfg: CapacityConfig, zone: string, month: string): number {
  const start = DateTime.fromFormat(month, "yyyy-MM", { zone });
  const n = cfg.average === "month" ? 1 : 12;
  let value = 0;
  for (let k = 0; k < n; k++) {
    const m = start.plus({ months: k });
    value += (cfg.price_per_kw_year * (m.daysInMonth ?? 30)) / m.daysInYear / n;
  }
  return value;
}

export interface SavingsSample {
  /** The meter's time, UTC ms. */
  time: number;
  netW: number;
  projectedW?: number;
  monthPeakW?: number;
  /** The guarded loads after this sample's decisions. */
  loads: readonly (Pick<LoadStatus, "on" | "reason"> & { id: string; powerW: number })[];
}

export class PeakSavings {
  private month?: string;
  /** The month's peak as it is, and as it would have been without the guard, W. */
  private peakW = 0;
  private wouldW = 0;
  /** The quarter-hour being counted: its start, extra import (W·ms), last projection. */
  private quarter = Number.NaN;
  private extraWms = 0;
  private quarterW?: number;
  /** Loads counted as held back in the current quarter-hour. */
  private held = new Set<string>();
  private last?: { time: number; netW: number; loads: SavingsSample["loads"] };
  /** The month of the latest time asked about, with what follows from it: asked with every reading. */
  private calendar?: { start: number; end: number; month: string; since: string; kwValue: number };

  constructor(
    private readonly cfg: CapacityConfig,
    private readonly zone: string,
  ) {}

  sample(s: SavingsSample): void {
    const last = this.last;
    if (last && s.time > last.time) {
      const end = Math.min(s.time, last.time + MAX_SAMPLE_MS);
      for (let t = last.time; t < end; ) {
        this.enterQuarter(quarterOf(t), last.loads);
        const to = Math.min(end, quarterOf(t) + QUARTER_MS);
        let heldW = 0;
        for (const l of last.loads) if (!l.on && this.held.has(l.id)) heldW += l.powerW;
        this.extraWms += (Math.max(0, last.netW + heldW) - Math.max(0, last.netW)) * (to - t);
        t = to;
      }
    }
    if (last && s.time < last.time) return;
    this.enterQuarter(quarterOf(s.time), last?.loads ?? []);
    for (const l of s.loads) if (!l.on && l.reason === "peak_guard") this.held.add(l.id);
    if (s.projectedW !== undefined && Number.isFinite(s.projectedW)) this.quarterW = s.projectedW;
    if (s.monthPeakW !== undefined && Number.isFinite(s.monthPeakW) && this.monthAt(s.time).month === this.month)
      this.peakW = Math.max(this.peakW, s.monthPeakW);
    this.last = { time: s.time, netW: s.netW, loads: s.loads };
  }

  /** The money saved this month (at `now`), rounded to cents; 0 in a month not yet seen. */
  savedMonth(now: number): number {
    const m = this.monthAt(now);
    if (m.month !== this.month) return 0;
    const min = this.cfg.minimum_kw * 1000;
    const kw = (Math.max(min, this.peakW, this.wouldW) - Math.max(min, this.peakW)) / 1000;
    return Math.round(kw * m.kwValue * 100) / 100;
  }

  /** The start of the month the saving is counted for (HA's last_reset). */
  since(now: number): string {
    return this.monthAt(now).since;
  }

  /** The month `t` is in, worked out (with luxon) only when `t` leaves the month asked about last. */
  private monthAt(t: number): { month: string; since: string; kwValue: number } {
    const c = this.calendar;
    if (c && t >= c.start && t < c.end) return c;
    const month = monthKey(t, this.zone);
    const { start, end } = monthBounds(month, this.zone);
    this.calendar = {
      start,
      end,
      month,
      since: new Date(start).toISOString(),
      kwValue: peakKwValue(this.cfg, this.zone, month),
    };
    return this.calendar;
  }

  /** Moves to quarter-hour `q`, closing the one before; loads the guard held at the boundary carry on. */
  private enterQuarter(q: number, atBoundary: SavingsSample["loads"]): void {
    if (q === this.quarter) return;
    if (!Number.isNaN(this.quarter)) this.closeQuarter();
    this.quarter = q;
    this.extraWms = 0;
    this.quarterW = undefined;
    this.held = new Set(atBoundary.filter((l) => !l.on && l.reason === "peak_guard").map((l) => l.id));
    const { month } = this.monthAt(q);
    if (month !== this.month) {
      this.month = month;
      this.peakW = 0;
      this.wouldW = 0;
    }
  }

  private closeQuarter(): void {
    const actual = this.quarterW;
    if (actual === undefined) return;
    this.peakW = Math.max(this.peakW, actual);
    if (this.extraWms > 0) this.wouldW = Math.max(this.wouldW, actual + this.extraWms / QUARTER_MS);
  }
}
