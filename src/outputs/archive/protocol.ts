/** Messages between the Archive (main thread) and its writer worker. */

import type { CalendarStore } from "../../tariffs/calendar.js";
import type { CostStore } from "../../tariffs/statistics.js";
import type { IntervalStore } from "./intervals.js";
import type { MaintenanceStore } from "./maintenance.js";

/** What the worker answers calls for: the interval tables, the tariff calendar and cost, retention and sizes. */
export type ArchiveStore = IntervalStore & CalendarStore & CostStore & MaintenanceStore;

export interface MeterRow {
  id: string;
  name: string | null;
  type: string | null;
  manufacturer: string | null;
  model: string | null;
  serial_number: string | null;
  sw_version: string | null;
}

/**
 * Rows in columnar form: numbers travel in one Float64Array, which the structured clone copies as a
 * block instead of visiting ~70 values per row on the main thread.
 */
export interface Batch {
  seq: number;
  count: number;
  meterIds: string[];
  /** UTC ms per row. */
  times: Float64Array;
  /** count × numberColumns.length, row by row; NaN where the reading had no value. */
  numbers: Float64Array;
  /** count × stringColumns.length, row by row. */
  strings: (string | null)[];
  meters: MeterRow[];
}

export interface WorkerInit {
  path: string;
  /** archive.retention: hours older than this many days are not recomputed from their (deleted) readings. */
  retentionDays?: number;
  numberColumns: string[];
  stringColumns: string[];
}

/** A call of one ArchiveStore method (intervals.ts, src/tariffs/calendar.ts), answered by a `reply` with the same id. */
export interface Call {
  type: "call";
  id: number;
  method: keyof ArchiveStore;
  args: unknown[];
}

export type ToWorker = { type: "batch"; batch: Batch } | Call | { type: "close" };

export type FromWorker =
  | { type: "ready"; migrations: string[] }
  | { type: "fatal"; error: string }
  | { type: "done"; seq: number; inserted: number; ms: number }
  | { type: "failed"; seq: number; error: string }
  | { type: "reply"; id: number; ok: true; value: unknown }
  | { type: "reply"; id: number; ok: false; error: string }
  | { type: "closed" };
