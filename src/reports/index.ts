/**
 * `meter2mqtt report daily|monthly --meter ID [--from] [--to] [--format table|csv|json] [--reprice]`: the archive's
 * views report_daily and report_monthly (sql/007) for one meter, after the calendar they join with is brought up to
 * date for the range. The figures are the views' own, so a user querying the archive gets the same numbers.
 * For a meter whose tariff has Belgium's `capacity`, the rows also carry the capacity charge (withCapacity).
 */

import { parseArgs } from "node:util";
import type Database from "better-sqlite3";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { localMidnight, zoneOf } from "../intervals/time.js";
import { migrate, openWritable, sqlDir } from "../outputs/archive/db.js";
import { type CalendarMeter, writeCalendar } from "../tariffs/calendar.js";
import { capacityCharge, capacityMonths, monthPeaks, monthsBefore } from "../tariffs/capacity.js";
import { calendarMeters } from "../tariffs/index.js";
import { localDay, nextDay } from "../tariffs/tariff.js";
import { REPORT_USAGE } from "../usage.js";
import { loadCliConfig } from "./cli-config.js";
import { DateRangeError, daysBetween, isDay, isMonth, MAX_REPORT_DAYS, yearsTaken } from "./range.js";

export { DateRangeError } from "./range.js";
export { REPORT_USAGE };

export type Period = "daily" | "monthly";
export type Row = Record<string, string | number | null>;

/** The meter the command is for: --meter, or the only one configured. */
export function pickMeter(config: Config, id: string | undefined, command: string): CalendarMeter {
  const meters = calendarMeters(config);
  const meter = id ? meters.find((m) => m.id === id) : meters.length === 1 ? meters[0] : undefined;
  if (!meter)
    throw new ConfigError(
      id
        ? `${command}: no meter "${id}" in the configuration (meters: ${meters.map((m) => m.id).join(", ")})`
        : `${command}: pass --meter, there are several meters (${meters.map((m) => m.id).join(", ")})`,
    );
  return meter;
}

/** Local days [from, to] of a report; months are widened to whole months. Defaults: the last 7 days, 12 months. */
export function reportRange(
  period: Period,
  timezone: string,
  now: number,
  from?: string,
  to?: string,
): { from: string; to: string } {
  const today = localDay(zoneOf(timezone), now);
  const check = (v: string | undefined, name: string): string | undefined => {
    if (v === undefined) return undefined;
    if (isDay(v)) return v;
    if (isMonth(v)) return name === "from" ? `${v}-01` : lastOfMonth(v);
    throw new DateRangeError(
      `report: --${name} ${v}: expected a day YYYY-MM-DD or a month YYYY-MM (a real date, years ${yearsTaken})`,
    );
  };
  let f = check(from, "from");
  let t = check(to, "to") ?? today;
  if (period === "monthly") {
    f = f ? `${f.slice(0, 7)}-01` : `${shiftMonth(t.slice(0, 7), -11)}-01`;
    t = lastOfMonth(t.slice(0, 7));
  } else f ??= addDays(t, -6);
  if (f > t) throw new DateRangeError(`report: --from ${f} is after --to ${t}`);
  const days = daysBetween(f, t);
  if (days > MAX_REPORT_DAYS)
    throw new DateRangeError(
      `report: ${f} to ${t} is ${days} days; a report covers at most ${MAX_REPORT_DAYS} (about ten years): narrow --from/--to`,
    );
  return { from: f, to: t };
}

function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}
function shiftMonth(month: string, n: number): string {
  const d = new Date(Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)) - 1 + n, 1));
  return d.toISOString().slice(0, 7);
}
function lastOfMonth(month: string): string {
  return addDays(`${shiftMonth(month, 1)}-01`, -1);
}

/** Calendar for the local days, then the view's rows. */
export function queryReport(
  db: Database.Database,
  meter: CalendarMeter,
  period: Period,
  range: { from: string; to: string },
  now: number,
  opts: { reprice?: boolean } = {},
): Row[] {
  const zone = zoneOf(meter.timezone);
  const start = localMidnight(zone, range.from);
  const end = localMidnight(zone, nextDay(range.to)) - 1;
  writeCalendar(db, meter, start, end, now, opts);
  return withCapacity(db, meter, period, viewRows(db, meter, period, range), now);
}

function viewRows(
  db: Database.Database,
  meter: CalendarMeter,
  period: Period,
  range: { from: string; to: string },
): Row[] {
  if (period === "daily")
    return db
      .prepare(`SELECT * FROM report_daily WHERE meter_id = ? AND day BETWEEN ? AND ? ORDER BY day`)
      .all(meter.id, range.from, range.to) as Row[];
  const from = `${range.from.slice(0, 7)}-01`;
  const to = `${range.to.slice(0, 7)}-31`;
  const bounded = monthsOf(db);
  if (bounded) return db.prepare(`${bounded} ORDER BY month`).all(meter.id, from, to) as Row[];
  return db
    .prepare(`SELECT * FROM report_monthly WHERE meter_id = ? AND month BETWEEN ? AND ? ORDER BY month`)
    .all(meter.id, range.from.slice(0, 7), range.to.slice(0, 7)) as Row[];
}

/**
 * Belgium's capacity tariff, for a meter whose tariff has `capacity`: per month the month's peak
 * (`capacity_peak_kw`), the kW billed (`capacity_kw`: the peak, at least the minimum, or the 12-month average) and
 * the month's charge (`capacity_cost`: the whole month's, or the running month's so far); per day the month's kW
 * billed and the day's share of the charge. Computed by src/tariffs/capacity.ts, as the live sensors are, from each
 * month's peak in the archive (one indexed look-up per month). Other meters' rows are left as they are.
 */
function withCapacity(db: Database.Database, meter: CalendarMeter, period: Period, rows: Row[], now: number): Row[] {
  const tariff = meter.tariff;
  const cfg = tariff?.config.capacity;
  if (!tariff || !cfg || rows.length === 0) return rows;
  const zone = tariff.timezone;
  const key = (r: Row): string => String(period === "daily" ? r.day : r.month).slice(0, 7);
  const first = key(rows[0] as Row);
  const last = key(rows[rows.length - 1] as Row);
  const months: string[] = [];
  for (let m = first; m <= last; m = shiftMonth(m, 1)) months.push(m);
  const peaks = monthPeaks(db, meter.id, zone, [...monthsBefore(first, 11), ...months]);
  const figures = capacityMonths(cfg, zone, peaks, months, now);
  return rows.map((r) => {
    const f = figures.get(key(r));
    if (period === "monthly")
      return {
        ...r,
        capacity_peak_kw: f ? round(f.peakKw, 3) : null,
        capacity_kw: f ? round(f.basisKw, 3) : null,
        capacity_cost: f ? f.cost : null,
      };
    const dayStart = localMidnight(zoneOf(zone), String(r.day));
    const dayEnd = Math.min(localMidnight(zoneOf(zone), nextDay(String(r.day))), f?.until ?? dayStart);
    return {
      ...r,
      capacity_kw: f ? round(f.basisKw, 3) : null,
      capacity_cost: f && dayEnd > dayStart ? round(capacityCharge(cfg, zone, f.basisKw, dayStart, dayEnd), 6) : null,
    };
  });
}

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;

/**
 * The view report_monthly as the archive defines it, reading only the days of one meter's months (a filter on the
 * view's `month` cannot reach report_daily's days, so it would read all of the meter's days): the same expressions,
 * with `WHERE meter_id = ? AND day BETWEEN ? AND ?` where the view reads report_daily. Undefined when the view is not
 * in the expected shape; the view itself is queried then.
 */
function monthsOf(db: Database.Database): string | undefined {
  const row = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = 'report_monthly'").get() as
    | { sql: string }
    | undefined;
  const head = /^CREATE VIEW report_monthly AS\s*/;
  const read = /FROM report_daily\s+GROUP BY meter_id, month/;
  if (!row || !head.test(row.sql) || (row.sql.match(new RegExp(read, "g")) ?? []).length !== 1) return undefined;
  return row.sql
    .replace(head, "")
    .replace(read, "FROM report_daily WHERE meter_id = ? AND day BETWEEN ? AND ? GROUP BY meter_id, month")
    .replace(/;\s*$/, "");
}

const csvCell = (v: unknown): string => {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function toCsv(rows: readonly Row[], columns: readonly string[]): string {
  return `${[columns.join(","), ...rows.map((r) => columns.map((c) => csvCell(r[c])).join(","))].join("\n")}\n`;
}

const fixed = (v: unknown, digits: number): string => (typeof v === "number" ? v.toFixed(digits) : "");

/** Columns for people: what matters first, money in the tariff's currency. */
export function toTable(rows: readonly Row[], period: Period): string {
  const key = period === "daily" ? "day" : "month";
  const currency = rows.find((r) => r.currency)?.currency;
  // Belgium's capacity tariff: the kW billed and the charge, for meters whose tariff has `capacity`.
  const capacity = rows.some((r) => "capacity_kw" in r);
  const head = [
    period === "daily" ? "day" : "month",
    ...(period === "monthly" ? ["days"] : []),
    "import kWh",
    "hours",
    "kWh/h",
    period === "daily" ? "24h est. kWh" : "month est. kWh",
    "export kWh",
    ...(currency ? [`cost ${currency}`] : []),
    ...(capacity ? ["capacity kW", `capacity ${currency ?? ""}`.trim()] : []),
  ];
  const body = rows.map((r) => {
    const partial = period === "daily" ? r.complete === 0 : Number(r.hours) < Number(r.month_hours);
    return [
      String(r[key]),
      ...(period === "monthly" ? [String(r.days)] : []),
      fixed(r.import_kwh, 3),
      fixed(r.hours, 2),
      fixed(r.avg_kwh_per_hour, 3),
      partial ? `${fixed(r.estimate_kwh, 3)}*` : fixed(r.estimate_kwh, 3),
      fixed(r.export_kwh, 3),
      ...(currency ? [fixed(r.cost, 2)] : []),
      ...(capacity ? [fixed(r.capacity_kw, 3), fixed(r.capacity_cost, 2)] : []),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
  const out = [line(head), ...body.map(line)];
  if (body.length === 0) out.push("(no data in this range)");
  if (rows.some((r) => (period === "daily" ? r.complete === 0 : Number(r.hours) < Number(r.month_hours))))
    out.push("* partial: the estimate is the average per hour over the whole period");
  return `${out.join("\n")}\n`;
}

export async function runReport(args: string[], now = Date.now()): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      meter: { type: "string", short: "m" },
      from: { type: "string" },
      to: { type: "string" },
      format: { type: "string", short: "f", default: "table" },
      reprice: { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const period = positionals[0];
  if ((period !== "daily" && period !== "monthly") || positionals.length > 1) {
    process.stderr.write(`report: expected daily or monthly\n\n${REPORT_USAGE}\n`);
    return 2;
  }
  const format = values.format;
  if (format !== "table" && format !== "csv" && format !== "json") {
    process.stderr.write(`report: --format ${format}: expected table, csv or json\n`);
    return 2;
  }
  const config = await loadCliConfig(values.config);
  if (!config.archive.enabled) throw new ConfigError("report: the archive is disabled (archive.enabled: false)");
  const meter = pickMeter(config, values.meter, "report");
  const range = reportRange(period, meter.timezone, now, values.from, values.to);
  const db = openWritable(config.archive.path);
  let rows: Row[];
  try {
    migrate(db, sqlDir());
    rows = queryReport(db, meter, period, range, now, { reprice: values.reprice });
  } finally {
    db.close();
  }
  if (format === "json") process.stdout.write(`${JSON.stringify(rows, null, 1)}\n`);
  else if (format === "csv") {
    const columns = rows[0]
      ? Object.keys(rows[0])
      : period === "daily"
        ? ["meter_id", "day", "import_kwh"]
        : ["meter_id", "month", "import_kwh"];
    process.stdout.write(toCsv(rows, columns));
  } else {
    process.stdout.write(`${meter.id}, ${range.from} to ${range.to} (${meter.timezone})\n`);
    process.stdout.write(toTable(rows, period));
  }
  return 0;
}
