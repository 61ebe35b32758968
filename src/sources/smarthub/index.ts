/**
 * NISC SmartHub co-op portals: 15- or 60-minute usage (and cost, where the co-op gives it) fetched from the portal
 * into the interval pipeline (archive with revisions → HA long-term statistics, MQTT).
 *
 * Fetched at start-up and then every `fetch_every_hours`; each fetch reads the last `refetch_days` days again, so
 * data the co-op revises replace what was stored (a revision is kept only when a value changed), and reaches back
 * to the newest stored day when the bridge was off for longer. A fetch that fails on the way is tried again after
 * a growing delay; a refused login is not retried before the next regular fetch, since asking again with the same
 * password can only lock the account. History goes in with `meter2mqtt backfill` (backfill.ts).
 */
import type { Source } from "../../app.js";
import type { Bus } from "../../bus.js";
import type { SmarthubMeterConfig } from "../../config/schema.js";
import type { IntervalPipeline } from "../../intervals/pipeline.js";
import { ImportStatus } from "../../intervals/status.js";
import type { MeterInfo } from "../../model/types.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { SmarthubClient, type SmarthubClientOptions, SmarthubError, type SmarthubErrorKind } from "./client.js";
import { chooseLocation, serviceLocations } from "./locations.js";
import {
  addDays,
  dayIn,
  daysBetween,
  importWindow,
  type SmarthubTarget,
  splitWindows,
  type WindowReport,
} from "./windows.js";

export interface SmarthubSourceOptions {
  clock?: Clock;
  log?: Logger;
  /** Where intervals go; without it (archive disabled) the source cannot keep anything and says so. */
  intervals?: IntervalPipeline;
  /** Client settings beyond the configuration (tests shorten the delays). */
  client?: Partial<SmarthubClientOptions>;
  /** Waits before trying a failed fetch again, growing; the last repeats (capped at fetch_every_hours). */
  retryDelaysMs?: readonly number[];
}

export interface FetchReport {
  windows: number;
  intervals: number;
  revisions: number;
  rejected: number;
  /** Days read, YYYY-MM-DD in the co-op's zone. */
  from?: string;
  to?: string;
  error?: string;
  errorKind?: SmarthubErrorKind;
}

const RETRY_DELAYS_MS = [5 * 60_000, 15 * 60_000, 60 * 60_000];
/** A longer gap is fetched by `backfill`, not in one go at start-up. */
const CATCH_UP_DAYS = 90;
const REJECTIONS_LOGGED = 5;

/** The client of a configured meter. */
export function clientFor(
  cfg: SmarthubMeterConfig,
  opts: { clock?: Clock; log?: Logger } & Partial<SmarthubClientOptions> = {},
): SmarthubClient {
  const o: SmarthubClientOptions = {
    baseUrl: cfg.base_url,
    username: cfg.username,
    password: cfg.password,
    ...opts,
  };
  if (cfg.totp_secret) o.totpSecret = cfg.totp_secret;
  return new SmarthubClient(o);
}

/** The account and service location: configured, or found in the portal's user-data. */
export async function resolveTarget(
  cfg: SmarthubMeterConfig,
  client: SmarthubClient,
  log: Logger,
): Promise<{ target: SmarthubTarget; meters: string[] }> {
  const base = { meterId: cfg.id, timezone: cfg.timezone, host: client.host };
  if (cfg.account && cfg.service_location)
    return { target: { ...base, account: cfg.account, serviceLocation: cfg.service_location }, meters: [] };
  const found = chooseLocation(serviceLocations(await client.userData()), {
    account: cfg.account,
    serviceLocation: cfg.service_location,
  });
  if ("error" in found) throw new SmarthubError(`user-data: ${found.error}`, "answer");
  const { chosen, others } = found;
  log.info(
    `account ${chosen.account}, service location ${chosen.serviceLocation} (from the portal's user-data)${
      others.length > 0
        ? `; also there: ${others.map((o) => `${o.account}/${o.serviceLocation}`).join(", ")} (set account and service_location to read another)`
        : ""
    }`,
  );
  return {
    target: { ...base, account: chosen.account, serviceLocation: chosen.serviceLocation },
    meters: chosen.meters,
  };
}

export class SmarthubSource implements Source {
  readonly id: string;
  readonly client: SmarthubClient;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly pipeline?: IntervalPipeline;
  private readonly retryDelays: readonly number[];
  private target?: SmarthubTarget;
  private meters: string[] = [];
  private timer?: Timer;
  private running: Promise<FetchReport> | null = null;
  private failures = 0;
  private stopped = false;

  private readonly importStatus: ImportStatus;

  constructor(
    private readonly cfg: SmarthubMeterConfig,
    private readonly bus: Bus,
    opts: SmarthubSourceOptions = {},
  ) {
    this.id = cfg.id;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger(`smarthub:${cfg.id}`);
    this.importStatus = new ImportStatus(cfg.id, bus, this.clock, this.log, "fetching");
    this.pipeline = opts.intervals;
    this.retryDelays = opts.retryDelaysMs ?? RETRY_DELAYS_MS;
    this.client = clientFor(cfg, { clock: this.clock, log: this.log, ...opts.client });
  }

  start(): void {
    if (!this.pipeline) {
      this.log.error("SmartHub data is kept in the archive: set archive.enabled to true");
      this.importStatus.publish("error: the archive is disabled");
      return;
    }
    this.log.info(
      `reading ${this.client.host} every ${this.cfg.fetch_every_hours} h, the last ${this.cfg.refetch_days} day(s) again each time (${this.cfg.timezone})`,
    );
    this.pipeline
      .publishSummary(this.id, this.cfg.timezone)
      .catch((err: Error) => this.log.warn(`cannot read the archive: ${err.message}`));
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.client.close();
    await this.running?.catch(() => {});
  }

  /** Fetches now; a fetch already under way is joined. */
  fetchNow(): Promise<FetchReport> {
    if (!this.pipeline)
      return Promise.resolve({ windows: 0, intervals: 0, revisions: 0, rejected: 0, error: "the archive is disabled" });
    this.running ??= this.fetch().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async fetch(): Promise<FetchReport> {
    const pipeline = this.pipeline as IntervalPipeline;
    const report: FetchReport = { windows: 0, intervals: 0, revisions: 0, rejected: 0 };
    try {
      if (!this.target) {
        const resolved = await resolveTarget(this.cfg, this.client, this.log);
        this.target = resolved.target;
        this.learnMeters(resolved.meters);
      }
      const target = this.target;
      const now = this.clock.now();
      const today = dayIn(now, this.cfg.timezone);
      let from = addDays(today, -this.cfg.refetch_days);
      const newest = (await pipeline.summary(this.id, this.cfg.timezone)).newestEnd;
      if (newest !== undefined) {
        const day = dayIn(newest - 1, this.cfg.timezone);
        const earliest = addDays(today, -CATCH_UP_DAYS);
        if (day < earliest) {
          from = earliest;
          this.log.warn(
            `the newest data in the archive are from ${day}: reading back to ${earliest} only; use \`meter2mqtt backfill\` for the days before`,
          );
        } else if (day < from) from = day;
      }
      report.from = from;
      report.to = today;
      for (const w of splitWindows(from, today)) {
        const r = await importWindow(this.client, pipeline, target, w, () => this.clock.now());
        report.windows++;
        report.intervals += r.intervals;
        report.revisions += r.revisions;
        report.rejected += r.rejected.length;
        this.learnMeters(r.meters);
        this.logWindow(r);
      }
    } catch (err) {
      // Stopping aborts the request under way: not an error worth a line in the log.
      if (this.stopped) return report;
      report.error = err instanceof SmarthubError ? err.message : `fetch: ${(err as Error).message}`;
      report.errorKind = err instanceof SmarthubError ? err.kind : "answer";
    }
    if (report.revisions > 0)
      await pipeline
        .publishSummary(this.id, this.cfg.timezone)
        .catch((err: Error) => this.log.warn(`cannot read the archive: ${err.message}`));
    this.importStatus.report(report.error, report.rejected, "point(s)");
    if (!this.stopped) this.scheduleNext(report);
    return report;
  }

  private logWindow(r: WindowReport): void {
    const days = daysBetween(r.window.from, r.window.to);
    this.log.info(
      `${r.window.from}…${r.window.to} (${days} day(s)): ${r.intervals} intervals, ${r.revisions} new revision(s)${r.rejected.length ? `, ${r.rejected.length} point(s) rejected` : ""}`,
    );
    for (const why of r.rejected.slice(0, REJECTIONS_LOGGED)) this.log.warn(`rejected ${why}`);
    if (r.rejected.length > REJECTIONS_LOGGED) this.log.warn(`… and ${r.rejected.length - REJECTIONS_LOGGED} more`);
    for (const n of r.notes) this.log.debug(n);
  }

  private learnMeters(meters: string[]): void {
    const fresh = meters.filter((m) => !this.meters.includes(m));
    if (fresh.length === 0) return;
    this.meters.push(...fresh);
    const info: MeterInfo = {
      meterId: this.id,
      manufacturer: "NISC SmartHub",
      model: this.client.host,
      serialNumber: this.meters.join(", "),
    };
    this.bus.emit("meterInfo", info);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.fetchNow();
    }, ms);
  }

  private scheduleNext(r: FetchReport): void {
    const regular = this.cfg.fetch_every_hours * 3_600_000;
    if (!r.error || r.errorKind === "auth") {
      this.failures = 0;
      this.schedule(regular);
      return;
    }
    const delay = this.retryDelays[Math.min(this.failures, this.retryDelays.length - 1)] ?? regular;
    this.failures++;
    this.schedule(Math.min(delay, regular));
  }
}
