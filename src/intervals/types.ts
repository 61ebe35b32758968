import type { Interval } from "../model/types.js";

/**
 * What a source hands to the interval pipeline: intervals of one meter read from one email or file.
 * Revisions are ordered by each interval's `revision` (an ISO time: when the utility revised the data, SMT's
 * REVISION_DATE) and, between equal ones, by `receivedAt`; an interval without `revision` is ordered by
 * `receivedAt` alone.
 */
export interface IntervalBatch {
  meterId: string;
  /** IANA zone whose civil days the meter's data is reported in (America/Chicago for SMT). */
  timezone: string;
  intervals: readonly Interval[];
  /** When the data reached us, UTC ms: the email's date, the file's modification time. */
  receivedAt: number;
  /** Where it came from (imap:…, file:…), recorded once per meter in interval_imports. */
  origin?: string;
  /** Rows of the origin the source had to reject (recorded with the origin). */
  errors?: number;
  /** Advanced in the same transaction as the intervals are stored: a mailbox is never read past unsaved data. */
  cursor?: ImapCursor;
  /** What earlier batches of the same origin (a big file stored in parts) held, counted with this one's. */
  earlier?: { intervals: number; revisions: number };
}

export interface ImapCursor {
  meterId: string;
  /** user@host: which mailbox this is, without the password. */
  account: string;
  mailbox: string;
  uidValidity: string;
  lastUid: number;
}

export interface IngestResult {
  /** Intervals in the batch. */
  intervals: number;
  /** Why each interval that failed the value check (src/model/plausible.ts) was not stored. */
  rejected: string[];
  /** Where each of those is in the batch's intervals (indexes, in the order of `rejected`). */
  rejectedAt: number[];
  /** New revisions stored (0 when the batch was imported before). */
  revisions: number;
  /** Intervals whose current value changed (new, or revised with the newest revision). */
  changed: number;
  /** Start of the earliest changed interval, UTC ms: where statistics must be recomputed from. */
  firstChanged?: number;
  /** True when the origin had been imported before. */
  seenBefore: boolean;
}

/** An interval as it travels to the archive worker: times already as the archive's ISO text. */
export interface IntervalRow {
  start: string;
  end: string;
  day: string;
  direction: "import" | "export";
  energyKwh: number | null;
  quality: "actual" | "estimated" | "missing";
  cost: number | null;
  revisedAt: string;
}

export interface IntervalBatchRows {
  meterId: string;
  timezone: string;
  rows: IntervalRow[];
  receivedAt: string;
  importedAt: string;
  origin: string | null;
  errors: number;
  cursor: ImapCursor | null;
  earlier: { intervals: number; revisions: number } | null;
}

/** Energy of one direction in one UTC hour, from the current intervals. */
export interface HourRow {
  /** Start of the UTC hour, ms. */
  hour: number;
  /** kWh × 10⁶, an integer: running sums over years stay exact. */
  microKwh: number;
}

export interface DayRow {
  day: string;
  direction: "import" | "export";
  /** Intervals with a reading. */
  readings: number;
  /** Minutes covered by intervals with a reading: a whole day covers the day's length (1380, 1440 or 1500). */
  minutes: number;
  microKwh: number;
  /** End of the day's newest interval, ms. */
  lastEnd: number;
}

export interface BookedHour {
  hour: number;
  stateMicro: number;
  sumMicro: number;
}
