/**
 * `meter2mqtt export`: a meter's archived readings or intervals as CSV or line protocol on stdout (or --output), or
 * with --backfill the archive's history sent to the configured InfluxDB / VictoriaMetrics (`influx:`), so that a
 * series there starts where the archive starts and not on the day the output was switched on.
 */
import { createWriteStream, existsSync } from "node:fs";
import { parseArgs } from "node:util";
import type Database from "better-sqlite3";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { localMidnight, zoneOf } from "../intervals/time.js";
import { ARCHIVE_COLUMNS } from "../model/quantities.js";
import type { Interval } from "../model/types.js";
import { openReadOnly } from "../outputs/archive/db.js";
import { intervalLine, readingLine } from "../outputs/influx/line.js";
import type { InfluxConfig } from "../outputs/influx/schema.js";
import { describeUrl, httpPost, type Post, WriteError } from "../outputs/influx/writer.js";
import { loadCliConfig } from "../reports/cli-config.js";
import { pickMeter } from "../reports/index.js";
import { DateRangeError, isDay, isoTime, yearsTaken } from "../reports/range.js";
import type { CalendarMeter } from "../tariffs/calendar.js";
import { calendarMeters } from "../tariffs/index.js";
import { nextDay } from "../tariffs/tariff.js";
import { EXPORT_USAGE } from "../usage.js";
import { Progress } from "../util/progress.js";

export { EXPORT_USAGE };

export type DataKind = "readings" | "intervals";

/**
 * UTC ms bounds [from, to) from --from/--to: local days of the meter (to inclusive) or ISO times, real dates of the
 * years report takes; without them from the archive's start to its end. A bad one is a DateRangeError (exit 2).
 */
export function exportRange(timezone: string, from?: string, to?: string): { from: number; to: number } {
  const zone = zoneOf(timezone);
  const parse = (v: string | undefined, name: "from" | "to"): number | undefined => {
    if (v === undefined) return undefined;
    if (isDay(v)) return localMidnight(zone, name === "from" ? v : nextDay(v));
    const ms = isoTime(v);
    if (ms === undefined)
      throw new DateRangeError(
        `export: --${name} ${v}: expected a day YYYY-MM-DD or a time like 2025-03-30T01:00:00Z (a real date, years ${yearsTaken})`,
      );
    return ms;
  };
  const range = { from: parse(from, "from") ?? 0, to: parse(to, "to") ?? Date.UTC(9999, 11, 31) };
  if (range.from >= range.to)
    throw new DateRangeError(`export: --from ${from ?? "(the start)"} is not before --to ${to ?? "(the end)"}`);
  return range;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** What a meter has in the archive, when --data does not say. */
export function dataOf(db: Database.Database, meterId: string): DataKind {
  const r = db.prepare("SELECT 1 FROM readings WHERE meter_id = ? LIMIT 1").get(meterId);
  return r ? "readings" : "intervals";
}

/** Archive columns holding at least one value for the meter in the range, in catalogue order. */
export function usedColumns(db: Database.Database, meterId: string, from: number, to: number): string[] {
  const names = ARCHIVE_COLUMNS.map((c) => c.name);
  const counts = db
    .prepare(
      `SELECT ${names.map((n, i) => `count("${n}") AS c${i}`).join(", ")} FROM readings WHERE meter_id = ? AND time >= ? AND time < ?`,
    )
    .get(meterId, iso(from), iso(to)) as Record<string, number>;
  return names.filter((_, i) => (counts[`c${i}`] ?? 0) > 0);
}

export function* readingRows(
  db: Database.Database,
  meterId: string,
  from: number,
  to: number,
): Generator<Record<string, string | number | null>> {
  yield* db
    .prepare("SELECT * FROM readings WHERE meter_id = ? AND time >= ? AND time < ? ORDER BY time")
    .iterate(meterId, iso(from), iso(to)) as Iterable<Record<string, string | number | null>>;
}

export const INTERVAL_COLUMNS = [
  "start",
  "end",
  "day",
  "direction",
  "energy_kwh",
  "quality",
  "cost",
  "revised_at",
  "received_at",
] as const;

export function* intervalRows(
  db: Database.Database,
  meterId: string,
  from: number,
  to: number,
): Generator<Record<string, string | number | null>> {
  yield* db
    .prepare(
      `SELECT ${INTERVAL_COLUMNS.map((c) => `"${c}"`).join(", ")} FROM intervals_current
        WHERE meter_id = ? AND start >= ? AND start < ? ORDER BY start, direction`,
    )
    .iterate(meterId, iso(from), iso(to)) as Iterable<Record<string, string | number | null>>;
}

export function rowToReadingLine(
  meterId: string,
  row: Record<string, string | number | null>,
  measurement: string,
): string | undefined {
  const values: Record<string, number> = {};
  for (const [k, v] of Object.entries(row)) if (typeof v === "number" && k !== "time") values[k] = v;
  return readingLine({ meterId, time: Date.parse(String(row.time)), values }, measurement);
}

export function rowToIntervalLine(
  meterId: string,
  row: Record<string, string | number | null>,
  measurement: string,
): string | undefined {
  const i: Interval = {
    meterId,
    start: Date.parse(String(row.start)),
    end: Date.parse(String(row.end)),
    energyKwh: typeof row.energy_kwh === "number" ? row.energy_kwh : null,
    direction: row.direction === "export" ? "export" : "import",
    quality: row.quality as Interval["quality"],
  };
  if (typeof row.cost === "number") i.cost = row.cost;
  return intervalLine(i, measurement);
}

const csvCell = (v: unknown): string => {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** Writes one meter's data; returns the rows written. */
export async function writeExport(
  db: Database.Database,
  meter: CalendarMeter,
  data: DataKind,
  format: "csv" | "line",
  range: { from: number; to: number },
  out: NodeJS.WritableStream,
  measurement = "meter2mqtt",
): Promise<number> {
  let n = 0;
  const write = async (text: string): Promise<void> => {
    if (!out.write(text)) await new Promise((r) => out.once("drain", r));
  };
  if (data === "readings") {
    const columns = ["time", ...usedColumns(db, meter.id, range.from, range.to)];
    if (format === "csv") await write(`${columns.join(",")}\n`);
    for (const row of readingRows(db, meter.id, range.from, range.to)) {
      n++;
      if (format === "csv") await write(`${columns.map((c) => csvCell(row[c])).join(",")}\n`);
      else {
        const line = rowToReadingLine(meter.id, row, measurement);
        if (line) await write(`${line}\n`);
      }
    }
  } else {
    if (format === "csv") await write(`${INTERVAL_COLUMNS.join(",")}\n`);
    for (const row of intervalRows(db, meter.id, range.from, range.to)) {
      n++;
      if (format === "csv") await write(`${INTERVAL_COLUMNS.map((c) => csvCell(row[c])).join(",")}\n`);
      else {
        const line = rowToIntervalLine(meter.id, row, measurement);
        if (line) await write(`${line}\n`);
      }
    }
  }
  return n;
}

export interface BackfillResult {
  meterId: string;
  points: number;
}

/**
 * Sends the meters' archived readings and intervals in batches of batch_size, one request at a time; a failed batch
 * is retried with the output's backoff, `attempts` times in all, then the backfill stops with the error (what was
 * sent stays sent, and sending it again overwrites the same points).
 */
export async function backfill(
  db: Database.Database,
  meters: readonly CalendarMeter[],
  influx: InfluxConfig,
  range: { from: number; to: number },
  opts: { post?: Post; attempts?: number; progress?: NodeJS.WritableStream & { isTTY?: boolean } } = {},
): Promise<BackfillResult[]> {
  const post = opts.post ?? httpPost(influx);
  const attempts = opts.attempts ?? 5;
  const sendBatch = async (lines: string[]): Promise<void> => {
    let delay = influx.retry_min * 1000;
    for (let attempt = 1; ; attempt++) {
      try {
        await post(lines.join("\n"));
        return;
      } catch (err) {
        const retry = !(err instanceof WriteError) || err.retry;
        if (!retry || attempt >= attempts) throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, Math.max(influx.retry_max, influx.retry_min) * 1000);
      }
    }
  };
  const count = db.prepare("SELECT count(*) AS n FROM readings WHERE meter_id = ? AND time >= ? AND time < ?");
  const countIntervals = db.prepare(
    "SELECT count(*) AS n FROM interval_revisions WHERE meter_id = ? AND start >= ? AND start < ?",
  );
  const results: BackfillResult[] = [];
  for (const m of meters) {
    const args = [m.id, iso(range.from), iso(range.to)] as const;
    const total = (count.get(...args) as { n: number }).n + (countIntervals.get(...args) as { n: number }).n || 0;
    const progress = opts.progress
      ? new Progress(opts.progress, Math.ceil(total / influx.batch_size), `batches of ${m.id}`)
      : undefined;
    let batch: string[] = [];
    let points = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      await sendBatch(batch);
      points += batch.length;
      progress?.tick(`${points} points`);
      batch = [];
    };
    for (const row of readingRows(db, m.id, range.from, range.to)) {
      const line = rowToReadingLine(m.id, row, influx.measurement);
      if (line) batch.push(line);
      if (batch.length >= influx.batch_size) await flush();
    }
    for (const row of intervalRows(db, m.id, range.from, range.to)) {
      const line = rowToIntervalLine(m.id, row, influx.measurement);
      if (line) batch.push(line);
      if (batch.length >= influx.batch_size) await flush();
    }
    await flush();
    progress?.finish();
    results.push({ meterId: m.id, points });
  }
  return results;
}

export async function runExport(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      meter: { type: "string", short: "m" },
      from: { type: "string" },
      to: { type: "string" },
      data: { type: "string" },
      format: { type: "string", short: "f", default: "csv" },
      output: { type: "string", short: "o" },
      backfill: { type: "boolean", default: false },
    },
    strict: true,
  });
  const config: Config = await loadCliConfig(values.config);
  if (!config.archive.enabled) throw new ConfigError("export: the archive is disabled (archive.enabled: false)");
  if (values.data !== undefined && values.data !== "readings" && values.data !== "intervals")
    throw new ConfigError(`export: --data ${values.data}: expected readings or intervals`);
  // Everything the command line says is checked before the archive is opened.
  const format = values.format;
  if (!values.backfill && format !== "csv" && format !== "line")
    throw new ConfigError(`export: --format ${format}: expected csv or line`);
  if (values.backfill && !config.influx)
    throw new ConfigError("export --backfill: configure influx: (url, version, …) first");
  const meters =
    values.meter || !values.backfill ? [pickMeter(config, values.meter, "export")] : calendarMeters(config);
  const range = exportRange(meters[0]?.timezone ?? "UTC", values.from, values.to);
  if (!existsSync(config.archive.path))
    throw new ConfigError(
      `export: there is no archive at ${config.archive.path} (archive.path) yet: the bridge makes it when it first runs`,
    );
  const db = openReadOnly(config.archive.path);
  try {
    if (values.backfill && config.influx) {
      process.stderr.write(`backfill to ${describeUrl(config.influx.url)}\n`);
      try {
        for (const r of await backfill(db, meters, config.influx, range, { progress: process.stderr }))
          process.stdout.write(`${r.meterId}: ${r.points} point(s) sent\n`);
      } catch (err) {
        process.stderr.write(`backfill stopped: ${(err as Error).message}\n`);
        return 1;
      }
      return 0;
    }
    const meter = meters[0] as CalendarMeter;
    const data = (values.data as DataKind | undefined) ?? dataOf(db, meter.id);
    const out = values.output ? createWriteStream(values.output) : process.stdout;
    const n = await writeExport(db, meter, data, format as "csv" | "line", range, out, config.influx?.measurement);
    if (values.output)
      await new Promise<void>((resolve, reject) => out.end((err?: Error) => (err ? reject(err) : resolve())));
    process.stderr.write(`${meter.id}: ${n} ${data === "readings" ? "reading(s)" : "interval(s)"} exported\n`);
    return 0;
  } finally {
    db.close();
  }
}
