/**
 * CSVs downloaded from the Smart Meter Texas portal (or saved from the emails): read from files and folders, for
 * `meter2mqtt import` and the watched folder.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { IntervalPipeline } from "../../intervals/pipeline.js";
import { parseSmtCsv, type RowError } from "./csv.js";

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
 * The revision order is the CSV's REVISION_DATE, then the file's modification time.
 */
export async function importFile(
  pipeline: IntervalPipeline,
  target: FileTarget,
  path: string,
  opts: { skipImported?: boolean } = {},
): Promise<FileReport> {
  const s = await stat(path);
  const origin = fileOrigin(path, s.mtimeMs);
  if (opts.skipImported && (await pipeline.imported(target.meterId, origin)))
    return { file: path, intervals: 0, revisions: 0, changed: 0, errors: [], warnings: [], skipped: true };
  const parsed = parseSmtCsv(await readFile(path), {
    file: path,
    meterId: target.meterId,
    timezone: target.timezone,
    esiid: target.esiid,
  });
  const r = await pipeline.ingest({
    meterId: target.meterId,
    timezone: target.timezone,
    intervals: parsed.intervals,
    receivedAt: Math.trunc(s.mtimeMs),
    origin,
    errors: parsed.errors.length,
  });
  return {
    file: path,
    intervals: r.intervals,
    revisions: r.revisions,
    changed: r.changed,
    // Rows the shared value check (src/model/plausible.ts) kept out of the archive count as rejected too.
    errors: [...parsed.errors, ...r.rejected.map((reason) => ({ file: path, line: 0, reason }))],
    warnings: parsed.warnings,
  };
}
