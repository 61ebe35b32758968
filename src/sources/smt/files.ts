/**
 * CSVs downloaded from the Smart Meter Texas portal (or saved from the emails): read from files and folders, for
 * `meter2mqtt import` and the watched folder.
 */
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { IntervalPipeline } from "../../intervals/pipeline.js";
import { type RowError, type SmtInterval, streamSmtCsv } from "./csv.js";

/** Intervals handed to the archive at a time (a few MB of objects; a year of two channels is 4 chunks). */
export const IMPORT_CHUNK = 20_000;

export interface FileTarget {
  meterId: string;
  timezone: string;
  esiid?: string;
}

export interface FileReport {
  file: string;
  intervals: number;
  revisions: number;
  changed: number;
  errors: RowError[];
  warnings: string[];
  /** The file was imported before, unchanged, and skipped (watched folder). */
  skipped?: boolean;
}

/** The file's identity in interval_imports: a file saved again (a newer download) is read again. */
export function fileOrigin(path: string, mtimeMs: number): string {
  return `file:${resolve(path)}@${new Date(mtimeMs).toISOString()}`;
}

/** The CSV files among `paths`, folders searched recursively, in name order within each folder. */
export async function csvFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = await stat(p);
    if (!s.isDirectory()) {
      out.push(p);
      continue;
    }
    const entries = (await readdir(p, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    const below: string[] = [];
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      if (e.isDirectory()) below.push(join(p, e.name));
      else if (/\.csv$/i.test(e.name)) out.push(join(p, e.name));
    }
    out.push(...(await csvFiles(below)));
  }
  return out;
}

/**
 * Reads one CSV and hands its intervals to the pipeline. Rejected rows are reported, the others imported.
 * The revision order is the CSV's REVISION_DATE, then the file's modification time. The file is streamed and stored
 * IMPORT_CHUNK intervals at a time; only the last chunk records the file as imported, so a file cut short by a crash
 * is read again whole (storing an interval twice changes nothing).
 */
export async function importFile(
  pipeline: IntervalPipeline,
  target: FileTarget,
  path: string,
  opts: { skipImported?: boolean; chunk?: number } = {},
): Promise<FileReport> {
  const s = await stat(path);
  const origin = fileOrigin(path, s.mtimeMs);
  if (opts.skipImported && (await pipeline.imported(target.meterId, origin)))
    return { file: path, intervals: 0, revisions: 0, changed: 0, errors: [], warnings: [], skipped: true };
  const report: FileReport = { file: path, intervals: 0, revisions: 0, changed: 0, errors: [], warnings: [] };
  // Intervals stored so far (not those the value check kept out), for the file's record with the last part.
  let stored = 0;
  const store = async (intervals: SmtInterval[], lines: number[], last: boolean): Promise<void> => {
    const r = await pipeline.ingest({
      meterId: target.meterId,
      timezone: target.timezone,
      intervals,
      receivedAt: Math.trunc(s.mtimeMs),
      origin: last ? origin : undefined,
      errors: last ? report.errors.length : 0,
      earlier: last ? { intervals: stored, revisions: report.revisions } : undefined,
    });
    stored += r.intervals - r.rejected.length;
    report.intervals += r.intervals;
    report.revisions += r.revisions;
    report.changed += r.changed;
    // Rows the shared value check (src/model/plausible.ts) kept out of the archive count as rejected too.
    r.rejected.forEach((reason, k) => {
      report.errors.push({ file: path, line: lines[r.rejectedAt[k] as number] ?? 0, reason });
    });
  };
  const size = opts.chunk ?? IMPORT_CHUNK;
  let chunk: SmtInterval[] = [];
  let lines: number[] = [];
  const rows = streamSmtCsv(createReadStream(path), {
    file: path,
    meterId: target.meterId,
    timezone: target.timezone,
    esiid: target.esiid,
  });
  for await (const item of rows) {
    if ("interval" in item) {
      chunk.push(item.interval);
      lines.push(item.line);
      if (chunk.length >= size) {
        await store(chunk, lines, false);
        chunk = [];
        lines = [];
      }
    } else if ("error" in item) report.errors.push(item.error);
    else report.warnings.push(item.warning);
  }
  await store(chunk, lines, true);
  return report;
}
