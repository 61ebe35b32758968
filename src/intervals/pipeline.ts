import type { Bus } from "../bus.js";
import { checkInterval } from "../model/plausible.js";
import type { Interval } from "../model/types.js";
import type { Archive } from "../outputs/archive/index.js";
import { type Clock, systemClock } from "../util/clock.js";
import { createLogger, type Logger } from "../util/log.js";
import { dayMinutes, zoneOf } from "./time.js";
import type { IngestResult, IntervalBatch, IntervalBatchRows, IntervalRow } from "./types.js";

const HOUR_MS = 3_600_000;
/** Year 9999: later times would not print as the 24-character ISO strings the archive sorts. */
const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const iso = (ms: number): string => new Date(ms).toISOString();

/** The civil date of UTC instants in one zone; the offset is looked up once per UTC hour. */
export function dayFinder(timezone: string): (ms: number) => string {
  const zone = zoneOf(timezone);
  let hour = Number.NaN;
  let offsetMs = 0;
  return (ms) => {
    const h = Math.floor(ms / HOUR_MS);
    if (h !== hour) {
      hour = h;
      offsetMs = zone.offset(ms) * 60_000;
    }
    return iso(ms + offsetMs).slice(0, 10);
  };
}

/**
 * Why an interval cannot be stored, or undefined when it can: the importers' shared value check
 * (src/model/plausible.ts) against `now`, plus what the archive's columns need.
 */
function problem(i: Interval, now: number): string | undefined {
  if (!Number.isFinite(i.start) || i.start < 0 || i.start > MAX_TIME_MS) return `start ${String(i.start)}`;
  if (!Number.isFinite(i.end) || i.end <= i.start || i.end > MAX_TIME_MS) return `end ${String(i.end)}`;
  if (i.direction !== "import" && i.direction !== "export") return `direction ${String(i.direction)}`;
  if (i.quality !== "actual" && i.quality !== "estimated" && i.quality !== "missing")
    return `quality ${String(i.quality)}`;
  return checkInterval(i, now);
}

export function toRows(batch: IntervalBatch): { rows: IntervalRow[]; rejected: string[]; rejectedAt: number[] } {
  const dayOf = dayFinder(batch.timezone);
  // The data cannot be newer than when they were received, nor than now (a file's receivedAt may be its mtime).
  const now = Math.max(batch.receivedAt, Date.now());
  const received = iso(batch.receivedAt);
  const rows: IntervalRow[] = [];
  const rejected: string[] = [];
  const rejectedAt: number[] = [];
  batch.intervals.forEach((i, at) => {
    const why = problem(i, now);
    if (why) {
      rejected.push(`${batch.meterId}: interval not stored, ${why}`);
      rejectedAt.push(at);
      return;
    }
    const revision = i.revision === undefined ? Number.NaN : Date.parse(i.revision);
    rows.push({
      start: iso(i.start),
      end: iso(i.end),
      day: dayOf(i.start),
      direction: i.direction,
      energyKwh: i.energyKwh,
      quality: i.energyKwh === null ? "missing" : i.quality,
      cost: i.cost ?? null,
      revisedAt: Number.isFinite(revision) ? iso(revision) : received,
    });
  });
  return { rows, rejected, rejectedAt };
}

export interface MeterSummary {
  /** The newest civil day whose import intervals all have readings. */
  day?: string;
  importKwh?: number;
  exportKwh?: number;
  /** End of the newest interval, UTC ms. */
  newestEnd?: number;
}

/**
 * The interval pipeline shared by the sources that deliver intervals late (SMT, SmartHub): a source hands over a
 * batch, the archive stores it as revisions (idempotently, in one transaction with the source's cursor), and the
 * intervals whose current value changed go out on the bus (`intervals`) for the statistics output and others.
 * After a round of batches (one mailbox check) the source asks for the meter's summary (latest full day, newest
 * interval) to go out as one Reading for MQTT: per batch, a catch-up of many emails would publish a day each.
 */
export class IntervalPipeline {
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    private readonly archive: Archive,
    private readonly bus: Bus,
    opts: { clock?: Clock; log?: Logger } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger("intervals");
  }

  async ingest(batch: IntervalBatch): Promise<IngestResult> {
    const now = this.clock.now();
    const { rows, rejected, rejectedAt } = toRows(batch);
    for (const r of rejected.slice(0, 5)) this.log.warn(r);
    if (rejected.length > 5) this.log.warn(`${batch.meterId}: … and ${rejected.length - 5} more intervals not stored`);
    const message: IntervalBatchRows = {
      meterId: batch.meterId,
      timezone: batch.timezone,
      rows,
      receivedAt: iso(batch.receivedAt),
      importedAt: iso(now),
      origin: batch.origin ?? null,
      errors: (batch.errors ?? 0) + rejected.length,
      cursor: batch.cursor ?? null,
      earlier: batch.earlier ?? null,
    };
    const r = await this.archive.call("importBatch", message);
    const result: IngestResult = {
      intervals: batch.intervals.length,
      rejected,
      rejectedAt,
      revisions: r.revisions,
      changed: r.changed,
      seenBefore: r.seenBefore,
    };
    if (r.firstChanged !== null) result.firstChanged = Date.parse(r.firstChanged);
    if (r.changed > 0) {
      const from = result.firstChanged ?? 0;
      const stored = Math.max(batch.receivedAt, Date.now());
      this.bus.emit(
        "intervals",
        batch.intervals.filter((i) => i.start >= from && problem(i, stored) === undefined),
      );
    }
    return result;
  }

  /** Where a meter's mailbox was read up to, or null before the first message. */
  imapCursor(
    meterId: string,
    account: string,
    mailbox: string,
  ): Promise<{ uidValidity: string; lastUid: number } | null> {
    return this.archive.call("imapCursor", meterId, account, mailbox);
  }

  /** Whether an email or file (by origin) was imported for the meter before. */
  imported(meterId: string, origin: string): Promise<boolean> {
    return this.archive.call("imported", meterId, origin);
  }

  /** The latest full day and newest interval of a meter, from the archive. */
  async summary(meterId: string, timezone: string): Promise<MeterSummary> {
    const newest = await this.archive.call("newest", meterId);
    if (!newest) return {};
    const zone = zoneOf(timezone);
    const dayOf = dayFinder(timezone);
    // A week back is plenty: the utility sends every day, and a gap longer than that is news on its own.
    const from = dayOf(Date.parse(`${newest.day}T12:00:00Z`) - 7 * 24 * HOUR_MS);
    const days = await this.archive.call("days", meterId, from);
    const out: MeterSummary = { newestEnd: newest.end };
    const byDay = new Map<string, { import?: (typeof days)[number]; export?: (typeof days)[number] }>();
    for (const d of days) {
      const e = byDay.get(d.day) ?? {};
      e[d.direction] = d;
      byDay.set(d.day, e);
    }
    for (const [day, e] of [...byDay].sort((a, b) => (a[0] < b[0] ? 1 : -1))) {
      const imp = e.import;
      if (!imp || imp.minutes !== dayMinutes(zone, day)) continue;
      out.day = day;
      out.importKwh = imp.microKwh / 1e6;
      if (e.export && e.export.minutes === imp.minutes) out.exportKwh = e.export.microKwh / 1e6;
      break;
    }
    return out;
  }

  async publishSummary(meterId: string, timezone: string): Promise<void> {
    const s = await this.summary(meterId, timezone);
    const values: Record<string, number | string> = {};
    if (s.day !== undefined) values.last_day = s.day;
    if (s.importKwh !== undefined) values.energy_import_last_day_kwh = s.importKwh;
    if (s.exportKwh !== undefined) values.energy_export_last_day_kwh = s.exportKwh;
    if (s.newestEnd !== undefined) values.interval_end_at = iso(s.newestEnd);
    if (Object.keys(values).length > 0) this.bus.emit("reading", { meterId, time: this.clock.now(), values });
  }
}
