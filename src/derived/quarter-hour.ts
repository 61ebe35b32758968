import { DateTime } from "luxon";

/**
 * The quarter-hour demand a Belgian meter reports (1-0:1.4.0 and 1-0:1.6.0), computed from the import energy
 * register for meters that do not report it. Pure bookkeeping over (time, kWh) samples, no clock.
 *
 * Like the meter's own register (a DLMS demand register's "current average"), the running value is the energy
 * drawn since the quarter began divided by the whole quarter-hour: it climbs through the quarter and equals the
 * quarter's average demand at its end. Quarters start on fixed boundaries (:00, :15, :30, :45 UTC, which are
 * also the local ones: every time zone is offset by whole quarter-hours), never at the first reading.
 */

export const QUARTER_MS = 15 * 60_000;
/**
 * The register's value at a boundary is interpolated between the readings either side; across a longer gap
 * (a bridge that was down, a cable unplugged) it is a guess, and the quarters it touches are not reported.
 */
export const MAX_INTERPOLATION_GAP_MS = 5 * 60_000;

export const quarterStart = (t: number): number => Math.floor(t / QUARTER_MS) * QUARTER_MS;

export interface QuarterValues {
  /** Energy since the quarter began / 15 min, W; absent until the bridge has seen the quarter begin. */
  demandW?: number;
  /** The month's highest completed quarter-hour average, W, and the end of that quarter; absent before one. */
  monthPeakW?: number;
  monthPeakAt?: number;
}

export class QuarterHourDemand {
  private last?: { t: number; kwh: number };
  private qStart = Number.NaN;
  /** Register at qStart, kWh; undefined when the quarter began before the bridge could see it. */
  private kwhAtStart?: number;
  private peak?: { month: number; w: number; at: number };
  private month = { start: Number.NaN, end: Number.NaN };

  /** `timezone`: where the month (the peak's period) begins; the meter's zone. */
  constructor(private readonly timezone = "UTC") {}

  /** Takes the register's value (kWh) at `t` (UTC ms) and returns what is known after it. */
  add(t: number, kwh: number): QuarterValues {
    const last = this.last;
    if (!last || kwh < last.kwh || t - last.t > MAX_INTERPOLATION_GAP_MS) {
      // First sample, a register that went backwards (replaced meter, glitch) or a long gap: start afresh.
      this.qStart = quarterStart(t);
      this.kwhAtStart = t === this.qStart ? kwh : undefined;
    } else if (t > last.t) {
      for (let b = this.qStart + QUARTER_MS; b <= t; b += QUARTER_MS) {
        const atBoundary = last.kwh + ((kwh - last.kwh) * (b - last.t)) / (t - last.t);
        if (this.kwhAtStart !== undefined) this.completed(this.qStart, (atBoundary - this.kwhAtStart) * 4000);
        this.qStart = b;
        this.kwhAtStart = atBoundary;
      }
    }
    if (!last || t >= last.t) this.last = { t, kwh };

    const out: QuarterValues = {};
    if (this.kwhAtStart !== undefined) out.demandW = Math.round(Math.max(0, kwh - this.kwhAtStart) * 4000);
    const peak = this.peak;
    // A new month has no peak until its first quarter ends (the meter's 1-0:1.6.0 starts over too).
    if (peak && peak.month === this.monthOf(t)) {
      out.monthPeakW = Math.round(peak.w);
      out.monthPeakAt = peak.at;
    }
    return out;
  }

  /**
   * The month's peak as it stood before the bridge restarted (`at`: the end of that quarter hour), so that the
   * computed peak does not start over with each start. Ignored once a higher quarter has been seen.
   */
  restorePeak(w: number, at: number): void {
    const month = this.monthOf(at - QUARTER_MS);
    if (!this.peak || this.peak.month !== month || w > this.peak.w) this.peak = { month, w, at };
  }

  private completed(start: number, averageW: number): void {
    const month = this.monthOf(start);
    if (!this.peak || this.peak.month !== month || averageW > this.peak.w)
      this.peak = { month, w: averageW, at: start + QUARTER_MS };
  }

  /** Start of the month holding `t` in the meter's zone; cached, as almost every call falls in the same month. */
  private monthOf(t: number): number {
    if (!(t >= this.month.start && t < this.month.end)) {
      const start = DateTime.fromMillis(t, { zone: this.timezone }).startOf("month");
      this.month = { start: start.toMillis(), end: start.plus({ months: 1 }).toMillis() };
    }
    return this.month.start;
  }
}

/**
 * The running quarter's average if the current import held until the quarter ends: what was drawn by `t` (the
 * time `demandW` was known; `demandW` follows the meter's convention, energy so far / 15 min) plus the rest of
 * the quarter at `importW`.
 */
export function projectQuarter(t: number, demandW: number, importW: number): number {
  const remaining = quarterStart(t) + QUARTER_MS - t;
  return Math.round(demandW + (Math.max(0, importW) * remaining) / QUARTER_MS);
}
