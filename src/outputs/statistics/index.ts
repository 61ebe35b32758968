/**
 * The Home Assistant long-term statistics output: after intervals change in the archive (the bus's `intervals`
 * event) and once at start-up, each interval meter's hourly energy is brought up to date in HA (see sync.ts).
 * One websocket connection per sync: the data change once a day, and a connection held open would only have to
 * survive HA's restarts in between.
 */
import type { Interval } from "../../model/types.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import type { Archive } from "../archive/index.js";
import { describeHaUrl, HaClient, HaError } from "./ha.js";
import { type StatisticsArchive, type StatisticTarget, type SyncResult, syncStatistic } from "./sync.js";

export { HaClient, HaError, takesMeanType } from "./ha.js";
export { STATISTIC_ID, statisticId } from "./sync.js";

/** Intervals of one email come in one event, those of a catch-up in many: one sync after they settle. */
const SETTLE_MS = 2000;
const RETRY_MIN_MS = 60_000;
const RETRY_MAX_MS = 30 * 60_000;

export interface StatisticsMeter {
  id: string;
  name?: string;
  /** For meters whose intervals carry a cost (SmartHub): a `<meter>_cost` statistic in this currency too. */
  currency?: string;
}

export interface StatisticsOutputOptions {
  clock?: Clock;
  log?: Logger;
  timeoutMs?: number;
}

export function archiveStatistics(archive: Archive): StatisticsArchive {
  return {
    hourly: (meterId, direction) => archive.call("hourly", meterId, direction),
    hourlyCost: (meterId) => archive.call("hourlyCost", meterId),
    booked: (id) => archive.call("booked", id),
    book: (id, from, rows, at) => archive.call("book", id, from, rows, at),
  };
}

export class StatisticsOutput {
  /** syncs: completed syncs; rows: rows sent in all. */
  readonly stats = { syncs: 0, rows: 0 };
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly dirty = new Set<string>();
  private timer?: Timer;
  private running: Promise<SyncResult[]> | null = null;
  private retryDelay = RETRY_MIN_MS;
  private lastError?: string;
  private stopped = false;

  constructor(
    private readonly ha: { url: string; token: string },
    private readonly archive: StatisticsArchive,
    private readonly meters: readonly StatisticsMeter[],
    private readonly opts: StatisticsOutputOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger("statistics");
  }

  /** Catches up every interval meter soon after start (HA may have been down when the last data came). */
  start(): void {
    this.log.info(
      `Home Assistant long-term statistics through ${describeHaUrl(this.ha.url)} for ${this.meters.map((m) => m.id).join(", ")}`,
    );
    for (const m of this.meters) this.dirty.add(m.id);
    this.schedule(0);
  }

  onIntervals(intervals: readonly Interval[]): void {
    let any = false;
    for (const i of intervals)
      if (this.meters.some((m) => m.id === i.meterId)) {
        this.dirty.add(i.meterId);
        any = true;
      }
    if (any) this.schedule(SETTLE_MS);
  }

  /** Syncs the given meters (default: all) now; a sync under way is awaited first. */
  async sync(meterIds?: readonly string[]): Promise<SyncResult[]> {
    while (this.running) await this.running.catch(() => {});
    for (const id of meterIds ?? this.meters.map((m) => m.id)) this.dirty.add(id);
    const run = this.run();
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = null;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.sync([]).then(
        () => {
          this.retryDelay = RETRY_MIN_MS;
          if (this.lastError) this.log.info("Home Assistant takes statistics again");
          this.lastError = undefined;
          if (this.dirty.size > 0) this.schedule(SETTLE_MS);
        },
        (err: Error) => {
          const message = err.message;
          if (message !== this.lastError) this.log.error(`statistics not sent: ${message}; retrying`);
          this.lastError = message;
          this.schedule(this.retryDelay);
          this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
        },
      );
    }, ms);
  }

  private targets(ids: readonly string[]): StatisticTarget[] {
    const out: StatisticTarget[] = [];
    for (const m of this.meters) {
      if (!ids.includes(m.id)) continue;
      const label = m.name ?? m.id;
      out.push({ meterId: m.id, direction: "import", name: `${label} energy import` });
      out.push({ meterId: m.id, direction: "export", name: `${label} energy export` });
      if (m.currency) out.push({ meterId: m.id, direction: "cost", name: `${label} cost`, currency: m.currency });
    }
    return out;
  }

  private async run(): Promise<SyncResult[]> {
    const ids = [...this.dirty];
    if (ids.length === 0) return [];
    this.dirty.clear();
    let client: HaClient;
    try {
      client = await HaClient.connect(this.ha.url, this.ha.token, { timeoutMs: this.opts.timeoutMs });
    } catch (err) {
      for (const id of ids) this.dirty.add(id);
      throw err;
    }
    const results: SyncResult[] = [];
    try {
      for (const target of this.targets(ids)) {
        const r = await syncStatistic(this.archive, client, target, () => this.clock.now());
        results.push(r);
        if (r.sent > 0) {
          this.stats.rows += r.sent;
          this.log.info(
            `${r.statisticId}: ${r.sent} hour(s) from ${new Date(r.from as number).toISOString()} (sum carried in ${r.base} ${target.currency ?? "kWh"})`,
          );
        }
      }
      this.stats.syncs++;
      return results;
    } catch (err) {
      // The bookkeeping says what got through; the rest is found again next time.
      for (const id of ids) this.dirty.add(id);
      throw err instanceof HaError ? err : new Error((err as Error).message);
    } finally {
      await client.close();
    }
  }
}
