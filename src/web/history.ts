import type BetterSqlite3 from "better-sqlite3";

/**
 * The page's history, read from the archive's views (sql/): daily and hourly energy per meter and tariff with the
 * tariff's cost (report_daily) where one is configured, and for interval meters (SMT, SmartHub) a calendar of days
 * from their revisions. Every query is bounded: at most MAX_DAYS days, one day of hours, one month of calendar.
 */
export const MAX_DAYS = 400;

export interface DayRow {
  day: string;
  import_kwh: number | null;
  export_kwh: number | null;
  tariffs: { name: string; kwh: number }[];
  cost: number | null;
  currency: string | null;
}

export interface HourRow {
  hour: string;
  import_kwh: number | null;
  export_kwh: number | null;
  tariffs: { name: string; kwh: number }[];
}

export type DayState = "complete" | "estimated" | "missing" | "revised" | "partial";

const TARIFFS = [1, 2, 3, 4].flatMap((n) => [`import_tariff${n}_kwh`, `export_tariff${n}_kwh`]);

function tariffs(row: Record<string, unknown>): { name: string; kwh: number }[] {
  const out: { name: string; kwh: number }[] = [];
  for (const name of TARIFFS) {
    const v = row[name];
    if (typeof v === "number") out.push({ name: name.replace(/_kwh$/, ""), kwh: v });
  }
  return out;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

export class History {
  constructor(
    private readonly db: BetterSqlite3.Database,
    /** Meter id → whether its energy comes as intervals (SMT, SmartHub) rather than registers. */
    private readonly intervalMeters: ReadonlySet<string>,
  ) {}

  /** Days from `from` to `to` (YYYY-MM-DD, inclusive). */
  daily(meter: string, from: string, to: string): DayRow[] {
    const cost = new Map<string, { cost: number | null; currency: string | null }>();
    if (this.has("report_daily"))
      for (const r of this.db
        .prepare("SELECT day, cost, currency FROM report_daily WHERE meter_id = ? AND day BETWEEN ? AND ?")
        .all(meter, from, to) as { day: string; cost: unknown; currency: unknown }[])
        cost.set(r.day, { cost: num(r.cost), currency: typeof r.currency === "string" ? r.currency : null });
    const rows = this.intervalMeters.has(meter)
      ? (this.db
          .prepare(
            "SELECT day, import_kwh, export_kwh FROM intervals_daily WHERE meter_id = ? AND day BETWEEN ? AND ? ORDER BY day",
          )
          .all(meter, from, to) as Record<string, unknown>[])
      : (this.db
          .prepare("SELECT * FROM energy_daily WHERE meter_id = ? AND day BETWEEN ? AND ? ORDER BY day")
          .all(meter, from, to) as Record<string, unknown>[]);
    return rows.map((r) => {
      const day = String(r.day);
      const c = cost.get(day);
      return {
        day,
        import_kwh: num(r.import_kwh),
        export_kwh: num(r.export_kwh),
        tariffs: tariffs(r),
        cost: c?.cost ?? null,
        currency: c?.currency ?? null,
      };
    });
  }

  /** The UTC hours from `from` up to `to` (ISO, exclusive), at most 48. */
  hourly(meter: string, from: string, to: string): HourRow[] {
    const view = this.intervalMeters.has(meter) ? "intervals_hourly" : "energy_hourly";
    const rows = this.db
      .prepare(`SELECT * FROM ${view} WHERE meter_id = ? AND hour >= ? AND hour < ? ORDER BY hour LIMIT 48`)
      .all(meter, from, to) as Record<string, unknown>[];
    return rows.map((r) => ({
      hour: String(r.hour),
      import_kwh: num(r.import_kwh),
      export_kwh: num(r.export_kwh),
      tariffs: tariffs(r),
    }));
  }

  /**
   * An interval meter's days in a month (YYYY-MM): complete (every interval of the day an actual reading),
   * estimated (some estimated by the utility), missing (some without a reading, or none of the day arrived),
   * revised (the utility sent some again with other values), partial (the day is not whole yet). Days without any
   * interval are absent: the page shows them as missing up to yesterday.
   */
  calendar(meter: string, month: string): { day: string; state: DayState; intervals: number; revised: number }[] {
    const from = `${month}-01`;
    const to = `${month}-31`;
    const rows = this.db
      .prepare(
        `SELECT day,
           count(*) FILTER (WHERE direction = 'import') AS intervals,
           count(*) FILTER (WHERE quality = 'estimated') AS estimated,
           count(*) FILTER (WHERE quality = 'missing') AS missing
         FROM intervals_current WHERE meter_id = ? AND day BETWEEN ? AND ? GROUP BY day ORDER BY day`,
      )
      .all(meter, from, to) as { day: string; intervals: number; estimated: number; missing: number }[];
    const revised = new Map(
      (
        this.db
          .prepare(
            `SELECT day, count(*) - count(DISTINCT start || direction) AS revised
             FROM interval_revisions WHERE meter_id = ? AND day BETWEEN ? AND ? GROUP BY day`,
          )
          .all(meter, from, to) as { day: string; revised: number }[]
      ).map((r) => [r.day, r.revised]),
    );
    return rows.map((r) => {
      const rev = revised.get(r.day) ?? 0;
      // 92 quarter hours on the spring-forward day; fewer is a day not yet whole.
      const state: DayState =
        r.missing > 0
          ? "missing"
          : r.estimated > 0
            ? "estimated"
            : r.intervals < 92
              ? "partial"
              : rev > 0
                ? "revised"
                : "complete";
      return { day: r.day, state, intervals: r.intervals, revised: rev };
    });
  }

  private has(view: string): boolean {
    return (
      this.db.prepare("SELECT 1 FROM sqlite_master WHERE name = ? AND type IN ('view', 'table')").get(view) !==
      undefined
    );
  }
}
