/**
 * Energy from demand, for devices that report no summation: the trapezoid rule over successive demand
 * readings, import and export counted apart. A gap longer than `maxGapMs` (the device gone, the bridge
 * restarted) adds nothing: the energy of a gap is unknown, not the last demand held for hours.
 * The counters start at 0 with the source and only grow (HA's total_increasing reads a restart as a reset).
 */
export class DemandIntegrator {
  importKwh = 0;
  exportKwh = 0;
  private last: { t: number; w: number } | undefined;

  constructor(private readonly maxGapMs: number) {}

  /** A demand of `w` watts (negative: exporting) at `t` (UTC ms). */
  add(t: number, w: number): void {
    const last = this.last;
    if (last && t <= last.t) {
      // The same reading twice (a push and a poll answer), or a clock stepped back: nothing to integrate.
      if (t < last.t) this.last = { t, w };
      return;
    }
    if (last && t - last.t <= this.maxGapMs) {
      const hours = (t - last.t) / 3_600_000;
      this.importKwh += ((Math.max(last.w, 0) + Math.max(w, 0)) / 2 / 1000) * hours;
      this.exportKwh += ((Math.max(-last.w, 0) + Math.max(-w, 0)) / 2 / 1000) * hours;
    }
    this.last = { t, w };
  }

  /** The next reading starts afresh (after a reconnect). */
  gap(): void {
    this.last = undefined;
  }
}

/**
 * Hourly kWh from the estimated counters in the archive, for meters without summation (docs/raven.md quotes it).
 * Each reading's step is its counter minus the previous reading's; a counter lower than the one before is the
 * bridge restarting from 0, so its own value is the step. Hours are bucketed as energy_hourly does.
 */
export const ESTIMATED_HOURLY_SQL = `WITH steps AS (
  SELECT meter_id,
    CASE WHEN substr(time, 15) = '00:00.000Z' THEN strftime('%Y-%m-%dT%H:00:00Z', time, '-1 hour')
      ELSE substr(time, 1, 13) || ':00:00Z' END AS hour,
    energy_import_estimated_kwh AS imp, lag(energy_import_estimated_kwh) OVER w AS imp0,
    energy_export_estimated_kwh AS exp, lag(energy_export_estimated_kwh) OVER w AS exp0
  FROM readings
  WHERE energy_import_estimated_kwh IS NOT NULL
  WINDOW w AS (PARTITION BY meter_id ORDER BY time)
)
SELECT meter_id, hour,
  round(sum(CASE WHEN imp0 IS NULL OR imp < imp0 THEN imp ELSE imp - imp0 END), 6) AS import_kwh,
  round(sum(CASE WHEN exp0 IS NULL OR exp < exp0 THEN exp ELSE exp - exp0 END), 6) AS export_kwh,
  'estimated' AS quality
FROM steps
GROUP BY meter_id, hour
ORDER BY meter_id, hour`;
