/**
 * Days of usage fetched in windows (the portal answers at most 45 days per poll) and handed to the interval
 * pipeline one window at a time, so that whatever was fetched before a failure (or a kill) is kept.
 *
 * Each window is recorded in the archive as an import of origin `smarthub:<host>/<account>/<location>/<from>/<to>`,
 * in the same transaction as its intervals: a backfill that is run again skips the windows it finished.
 */
import { DateTime } from "luxon";
import type { IntervalPipeline } from "../../intervals/pipeline.js";
import { localMidnight, zoneOf } from "../../intervals/time.js";
import type { Interval } from "../../model/types.js";
import type { SmarthubClient } from "./client.js";
import { decodePoll, totals } from "./decode.js";

export const MAX_WINDOW_DAYS = 45;
const DAY_MS = 86_400_000;

export interface Window {
  /** First day, YYYY-MM-DD in the co-op's zone. */
  from: string;
  /** Last day, included. */
  to: string;
}

export const addDays = (day: string, n: number): string =>
  new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);

/** Days from `from` to `to`, both included. */
export const daysBetween = (from: string, to: string): number =>
  Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS) + 1;

/** The civil day of an instant in a zone. */
export function dayIn(ms: number, timezone: string): string {
  return DateTime.fromMillis(ms, { zone: timezone }).toISODate() as string;
}

/** Consecutive windows of at most `maxDays` days covering `from`…`to`, oldest first. */
export function splitWindows(from: string, to: string, maxDays = MAX_WINDOW_DAYS): Window[] {
  const out: Window[] = [];
  for (let day = from; day <= to; day = addDays(day, maxDays)) {
    const last = addDays(day, maxDays - 1);
    out.push({ from: day, to: last < to ? last : to });
  }
  return out;
}

/** The window's bounds as the poll wants them: local midnight of the first day, and after the last. */
export function windowBounds(w: Window, timezone: string): { start: number; end: number } {
  const zone = zoneOf(timezone);
  return { start: localMidnight(zone, w.from), end: localMidnight(zone, addDays(w.to, 1)) };
}

export interface SmarthubTarget {
  meterId: string;
  timezone: string;
  host: string;
  account: string;
  serviceLocation: string;
}

export function windowOrigin(t: SmarthubTarget, w: Window): string {
  return `smarthub:${t.host}/${t.account}/${t.serviceLocation}/${w.from}/${w.to}`;
}

export interface WindowReport {
  window: Window;
  intervals: number;
  revisions: number;
  /** Start of the earliest interval whose value changed, UTC ms. */
  firstChanged?: number;
  rejected: string[];
  notes: string[];
  meters: string[];
  hasCost: boolean;
  /** Energy and money in the answer. */
  importKwh: number;
  exportKwh: number;
  cost: number;
}

/** Polls one window, decodes it and stores it (with its origin); throws what the client throws. */
export async function importWindow(
  client: SmarthubClient,
  pipeline: IntervalPipeline,
  target: SmarthubTarget,
  w: Window,
  receivedAt: () => number,
): Promise<WindowReport> {
  const answer = await client.poll({
    account: target.account,
    serviceLocation: target.serviceLocation,
    ...windowBounds(w, target.timezone),
  });
  const decoded = decodePoll(answer, { meterId: target.meterId, timezone: target.timezone });
  const intervals: Interval[] = decoded.intervals.map(({ series: _series, ...i }) => i);
  const r = await pipeline.ingest({
    meterId: target.meterId,
    timezone: target.timezone,
    intervals,
    receivedAt: receivedAt(),
    origin: windowOrigin(target, w),
    errors: decoded.rejected.length,
  });
  const report: WindowReport = {
    window: w,
    intervals: intervals.length,
    revisions: r.revisions,
    // Points the decoder took but the archive's value check (src/model/plausible.ts) did not count as rejected too.
    rejected: [...decoded.rejected, ...r.rejected],
    notes: decoded.notes,
    meters: decoded.meters,
    hasCost: decoded.hasCost,
    ...totals(intervals),
  };
  if (r.firstChanged !== undefined) report.firstChanged = r.firstChanged;
  return report;
}
