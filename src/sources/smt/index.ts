/**
 * Smart Meter Texas: yesterday's 15-minute intervals, from the daily subscription email (IMAP) and from CSVs
 * dropped in a watched folder, into the interval pipeline (archive with revisions → statistics, MQTT).
 *
 * The mailbox is checked at start-up, then every day at `check_at` local time (the email comes around 11:00
 * Central), again every `recheck_minutes` while yesterday is still missing that day, and on demand (checkNow).
 * A failed check is retried with a growing delay. The folder is read at each check and whenever it changes.
 */
import { type FSWatcher, watch } from "node:fs";
import { DateTime } from "luxon";
import type { Source } from "../../app.js";
import type { Bus } from "../../bus.js";
import type { SmtMeterConfig } from "../../config/schema.js";
import type { IntervalPipeline } from "../../intervals/pipeline.js";
import { ImportStatus } from "../../intervals/status.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { parseSmtCsv, type RowError, type SmtInterval } from "./csv.js";
import { csvFiles, importFile } from "./files.js";
import { accountOf, MailError, type MailMessage, readNewMail } from "./imap.js";

export interface SmtSourceOptions {
  clock?: Clock;
  log?: Logger;
  /** Where intervals go; without it (archive disabled) the source cannot keep anything and says so. */
  intervals?: IntervalPipeline;
}

export interface CheckReport {
  emails: number;
  files: number;
  intervals: number;
  revisions: number;
  rejectedRows: number;
  /** Why the mailbox or folder could not be read; undefined when the check went through. */
  error?: string;
}

const RETRY_MIN_MS = 60_000;
const RETRY_MAX_MS = 60 * 60_000;
/** A folder being written emits several events; one read after it settles. */
const FOLDER_SETTLE_MS = 2000;
/** Row errors logged per file; the rest are counted. */
const ROW_ERRORS_LOGGED = 10;

export class SmtSource implements Source {
  readonly id: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly pipeline?: IntervalPipeline;
  private timer?: Timer;
  private folderTimer?: Timer;
  private watcher?: FSWatcher;
  private running: Promise<CheckReport> | null = null;
  private again = false;
  private retryDelay = RETRY_MIN_MS;
  private stopped = false;
  private esiid?: string;

  private readonly importStatus: ImportStatus;

  constructor(
    private readonly cfg: SmtMeterConfig,
    private readonly bus: Bus,
    opts: SmtSourceOptions = {},
  ) {
    this.id = cfg.id;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger(`smt:${cfg.id}`);
    this.importStatus = new ImportStatus(cfg.id, bus, this.clock, this.log, "reading");
    this.pipeline = opts.intervals;
    this.esiid = cfg.esiid;
  }

  start(): void {
    if (!this.pipeline) {
      this.log.error("Smart Meter Texas data is kept in the archive: set archive.enabled to true");
      this.importStatus.publish("error: the archive is disabled");
      return;
    }
    const where = [
      this.cfg.imap ? `mailbox ${this.cfg.imap.mailbox} of ${accountOf(this.cfg.imap)}` : "",
      this.cfg.folder ? `folder ${this.cfg.folder}` : "",
    ].filter(Boolean);
    this.log.info(`reading ${where.join(" and ")}; daily check at ${this.cfg.check_at} ${this.cfg.timezone}`);
    if (this.esiid) this.bus.emit("meterInfo", this.meterInfo(this.esiid));
    this.pipeline
      .publishSummary(this.id, this.cfg.timezone)
      .catch((err: Error) => this.log.warn(`cannot read the archive: ${err.message}`));
    this.watchFolder();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    if (this.folderTimer) this.clock.clearTimeout(this.folderTimer);
    this.watcher?.close();
    await this.running?.catch(() => {});
  }

  /** Reads the mailbox and the folder now; a check already running is joined (and run once more after it). */
  checkNow(): Promise<CheckReport> {
    if (!this.pipeline) return Promise.resolve(this.empty("the archive is disabled"));
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = this.check().finally(() => {
      this.running = null;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.checkNow();
      }
    });
    this.running = run;
    return run;
  }

  private empty(error?: string): CheckReport {
    const r: CheckReport = { emails: 0, files: 0, intervals: 0, revisions: 0, rejectedRows: 0 };
    if (error) r.error = error;
    return r;
  }

  private async check(): Promise<CheckReport> {
    const report = this.empty();
    const pipeline = this.pipeline as IntervalPipeline;
    const imap = this.cfg.imap;
    if (imap) {
      try {
        const account = accountOf(imap);
        const cursor = await pipeline.imapCursor(this.id, account, imap.mailbox);
        const r = await readNewMail(imap, cursor, (m) => this.importMail(m, account, report));
        if (r.reset)
          this.log.warn(`${imap.mailbox} was renumbered by the server (new UIDVALIDITY): read again from the start`);
      } catch (err) {
        report.error = err instanceof MailError ? err.message : `mail: ${(err as Error).message}`;
      }
    }
    if (this.cfg.folder) {
      try {
        await this.importFolder(report);
      } catch (err) {
        report.error ??= `folder ${this.cfg.folder}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
    }
    if (report.revisions > 0)
      await pipeline
        .publishSummary(this.id, this.cfg.timezone)
        .catch((err: Error) => this.log.warn(`cannot read the archive: ${err.message}`));
    this.importStatus.report(report.error, report.rejectedRows, "row(s)");
    if (!this.stopped) await this.scheduleNext(report);
    return report;
  }

  private async importMail(m: MailMessage, account: string, report: CheckReport): Promise<void> {
    const pipeline = this.pipeline as IntervalPipeline;
    const imap = this.cfg.imap!;
    const cursor = { meterId: this.id, account, mailbox: imap.mailbox, uidValidity: m.uidValidity, lastUid: m.uid };
    const label = `email ${m.uid} "${m.subject}"`;
    if (!m.fromSender || m.csv.length === 0) {
      if (m.fromSender)
        this.log.warn(
          `${label} has no CSV attachment${m.other.length ? ` (only ${m.other.join(", ")})` : ""}; skipped`,
        );
      else this.log.debug(() => `${label} is not from ${imap.sender}; skipped`);
      // Still advances the cursor: the message is not looked at again.
      await pipeline.ingest({
        meterId: this.id,
        timezone: this.cfg.timezone,
        intervals: [],
        receivedAt: m.date,
        cursor,
      });
      return;
    }
    const intervals: SmtInterval[] = [];
    const errors: RowError[] = [];
    for (const a of m.csv) {
      const parsed = parseSmtCsv(a.content, {
        file: `${imap.mailbox}/${m.uid}/${a.filename}`,
        meterId: this.id,
        timezone: this.cfg.timezone,
        esiid: this.esiid,
      });
      intervals.push(...parsed.intervals);
      errors.push(...parsed.errors);
      for (const w of parsed.warnings) this.log.warn(w);
      this.learnEsiid(parsed.esiids);
    }
    this.logRowErrors(errors);
    const r = await pipeline.ingest({
      meterId: this.id,
      timezone: this.cfg.timezone,
      intervals,
      receivedAt: m.date,
      origin: `imap:${account}/${imap.mailbox}/${m.uidValidity}/${m.uid}`,
      errors: errors.length,
      cursor,
    });
    report.emails++;
    report.intervals += r.intervals;
    report.revisions += r.revisions;
    // Rows the shared value check (src/model/plausible.ts) kept out of the archive count as rejected too.
    const rejected = errors.length + r.rejected.length;
    report.rejectedRows += rejected;
    this.log.info(
      `${label}: ${r.intervals} intervals, ${r.revisions} new revision(s)${rejected ? `, ${rejected} row(s) rejected` : ""}`,
    );
  }

  private async importFolder(report: CheckReport): Promise<void> {
    const pipeline = this.pipeline as IntervalPipeline;
    const target = { meterId: this.id, timezone: this.cfg.timezone, esiid: this.esiid };
    for (const file of await csvFiles([this.cfg.folder as string])) {
      const r = await importFile(pipeline, target, file, { skipImported: true });
      if (r.skipped) continue;
      report.files++;
      report.intervals += r.intervals;
      report.revisions += r.revisions;
      report.rejectedRows += r.errors.length;
      this.logRowErrors(r.errors);
      for (const w of r.warnings) this.log.warn(w);
      this.log.info(`${file}: ${r.intervals} intervals, ${r.revisions} new revision(s)`);
    }
  }

  private logRowErrors(errors: RowError[]): void {
    for (const e of errors.slice(0, ROW_ERRORS_LOGGED)) this.log.warn(`${e.file}:${e.line}: ${e.reason}`);
    if (errors.length > ROW_ERRORS_LOGGED)
      this.log.warn(`… and ${errors.length - ROW_ERRORS_LOGGED} more rejected row(s)`);
  }

  private learnEsiid(esiids: string[]): void {
    if (esiids.length > 1 && !this.cfg.esiid)
      this.log.warn(`the data holds several ESI IDs (${esiids.join(", ")}): set esiid to read only one`);
    const first = esiids[0];
    if (first && first !== this.esiid) {
      this.esiid = first;
      this.bus.emit("meterInfo", this.meterInfo(first));
    }
  }

  private meterInfo(esiid: string) {
    return {
      meterId: this.id,
      manufacturer: "Smart Meter Texas",
      model: "15-minute interval data",
      serialNumber: esiid,
    };
  }

  // ── scheduling ────────────────────────────────────────────────────────────────────────────────

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.checkNow();
    }, ms);
  }

  private async scheduleNext(r: CheckReport): Promise<void> {
    const now = this.clock.now();
    if (r.error) {
      this.schedule(this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
      return;
    }
    this.retryDelay = RETRY_MIN_MS;
    let complete = true;
    if (this.cfg.imap) {
      const summary = await (this.pipeline as IntervalPipeline).summary(this.id, this.cfg.timezone).catch(() => ({}));
      complete = isYesterdayComplete(now, this.cfg.timezone, (summary as { day?: string }).day);
    }
    this.schedule(nextCheckAt(now, this.cfg, complete) - now);
  }

  private watchFolder(): void {
    const folder = this.cfg.folder;
    if (!folder) return;
    try {
      this.watcher = watch(folder, () => {
        if (this.folderTimer) this.clock.clearTimeout(this.folderTimer);
        this.folderTimer = this.clock.setTimeout(() => {
          this.folderTimer = undefined;
          void this.checkNow();
        }, FOLDER_SETTLE_MS);
      });
      this.watcher.on("error", () => {
        // A folder that went away (unmounted share) is still read at each daily check.
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.warn(`cannot watch ${folder} (${(err as NodeJS.ErrnoException).code}); it is read at each check`);
    }
  }
}

/** True when the latest full day is yesterday (or later) in the meter's zone. */
export function isYesterdayComplete(now: number, timezone: string, lastFullDay: string | undefined): boolean {
  const yesterday = DateTime.fromMillis(now, { zone: timezone }).minus({ days: 1 }).toISODate();
  return lastFullDay !== undefined && yesterday !== null && lastFullDay >= yesterday;
}

/**
 * When to look again: today's check_at if it is still ahead; while yesterday is incomplete after it, every
 * recheck_minutes until local midnight; otherwise tomorrow's check_at.
 */
export function nextCheckAt(
  now: number,
  cfg: Pick<SmtMeterConfig, "check_at" | "timezone" | "recheck_minutes">,
  yesterdayComplete: boolean,
): number {
  const [h, m] = cfg.check_at.split(":").map(Number) as [number, number];
  const local = DateTime.fromMillis(now, { zone: cfg.timezone });
  const today = local.set({ hour: h, minute: m, second: 0, millisecond: 0 });
  if (today.toMillis() > now) return today.toMillis();
  const recheck = now + cfg.recheck_minutes * 60_000;
  if (!yesterdayComplete && recheck < local.plus({ days: 1 }).startOf("day").toMillis()) return recheck;
  return today.plus({ days: 1 }).set({ hour: h, minute: m }).toMillis();
}
