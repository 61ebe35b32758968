/**
 * Tariffs in the running bridge: the live meters' cost values (a bus transform, like the derived quantities) and the
 * archive's calendar of days and prices that the report views use (kept a month and more ahead, refreshed daily).
 */
import type { Config, MeterConfig } from "../config/schema.js";
import type { Reading } from "../model/types.js";
import { migrate, openReadOnly, openWritable, sqlDir } from "../outputs/archive/db.js";
import { HaClient } from "../outputs/statistics/ha.js";
import { type Clock, systemClock, type Timer } from "../util/clock.js";
import { createLogger, type Logger } from "../util/log.js";
import {
  type CalendarMeter,
  type CalendarStore,
  calendarSpec,
  type PriceRow,
  refreshMeterCalendar,
} from "./calendar.js";
import { PriceFeed, QUARTER } from "./dynamic.js";
import { type CostState, createCoster, restoreCostStates } from "./live.js";
import { EntityPriceSource, followPriceTopic, type PriceTopicBroker } from "./price-sources.js";
import { isDynamic } from "./schema.js";
import { meterZone, type Tariff, tariffsByMeter } from "./tariff.js";

export { type CostState, createCoster, MeterCost, restoreCostStates } from "./live.js";
export { localDay, meterZone, systemZone, Tariff, tariffsByMeter } from "./tariff.js";

const DAY_MS = 86_400_000;

export function meterTimezone(m: MeterConfig): string | undefined {
  return "timezone" in m && typeof m.timezone === "string" ? m.timezone : undefined;
}

/** Every configured meter with the zone of its days and its tariff, if any. */
export function calendarMeters(cfg: Pick<Config, "meters" | "tariffs">): CalendarMeter[] {
  const meters = cfg.meters.map((m) => ({ id: m.id, timezone: meterTimezone(m) }));
  const tariffs = tariffsByMeter({ tariffs: cfg.tariffs, meters });
  return meters.map((m) => ({ id: m.id, timezone: meterZone(m, tariffs), tariff: tariffs.get(m.id) }));
}

/**
 * Brings every meter's calendar from its first data to the end of next month, on a connection of its own (tests,
 * tools); returns the quarters written. The bridge does this in the archive's worker (TariffService.startCalendar).
 */
export function refreshCalendar(path: string, meters: readonly CalendarMeter[], now: number): number {
  const db = openWritable(path);
  try {
    migrate(db, sqlDir());
    let n = 0;
    for (const m of meters) n += refreshMeterCalendar(db, m, now);
    return n;
  } finally {
    db.close();
  }
}

/** Where the bridge runs the calendar: the archive's worker (Archive.call), never the thread reading the meters. */
export interface CalendarRunner {
  call(method: "refreshCalendar", ...args: Parameters<CalendarStore["refreshCalendar"]>): Promise<number>;
}

/** Where the bridge keeps the dynamic prices: the archive's worker. */
export interface PriceRecorder {
  call(method: "recordPrices", ...args: Parameters<CalendarStore["recordPrices"]>): Promise<number>;
}

/** One dynamic price of one tariff: its feed, and the meters it prices. */
interface DynamicPrice {
  tariff: string;
  currency: string;
  direction: "import" | "export";
  feed: PriceFeed;
  meterIds: string[];
  /** The quarter hours settled since the last write to the archive. */
  pending: PriceRow[];
  /** The last quarter hour settled, UTC ms. */
  settledUpTo?: number;
  stale?: boolean;
}

export class TariffService {
  readonly tariffs: Map<string, Tariff>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private timer?: Timer;
  private stopped = false;

  constructor(
    private readonly config: Config,
    opts: { clock?: Clock; log?: Logger } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger("tariffs");
    this.tariffs = tariffsByMeter({
      tariffs: config.tariffs,
      meters: config.meters.map((m) => ({ id: m.id, timezone: meterTimezone(m) })),
    });
    // One feed per dynamic price, shared by the tariff's meters (each has a Tariff of its own).
    const now = () => this.clock.now();
    for (const [name, t] of Object.entries(config.tariffs))
      for (const direction of ["import", "export"] as const) {
        const p = t[direction];
        if (t.type !== "dynamic" || !isDynamic(p)) continue;
        const feed = new PriceFeed(p, now);
        const meterIds = t.meters.filter((id) => this.tariffs.has(id));
        for (const id of meterIds) this.tariffs.get(id)?.attach(direction, feed);
        const d: DynamicPrice = { tariff: name, currency: t.currency, direction, feed, meterIds, pending: [] };
        feed.onSettled((q) => d.pending.push({ direction, start: q.start, price: q.price, origin: q.origin }));
        this.dynamic.push(d);
      }
  }

  private readonly dynamic: DynamicPrice[] = [];
  private priceTimer?: Timer;
  private readonly unfollow: (() => void)[] = [];
  private readonly entities: EntityPriceSource[] = [];

  /** The dynamic prices' feeds (tests, the web page). */
  get feeds(): readonly { tariff: string; direction: "import" | "export"; feed: PriceFeed }[] {
    return this.dynamic;
  }

  /** Dynamic prices from MQTT topics: followed through the bridge's broker connection, re-subscribed on reconnect. */
  followTopics(broker: PriceTopicBroker): void {
    for (const d of this.dynamic) {
      const topic = d.feed.config.mqtt;
      if (!topic) continue;
      this.unfollow.push(followPriceTopic(d.feed, topic.topic, topic.path, broker, this.log, () => this.clock.now()));
      this.log.info(`tariff ${d.tariff}: ${d.direction} price from the MQTT topic ${topic.topic}`);
    }
  }

  /**
   * Dynamic prices from Home Assistant entities, and the quarter-hour round that settles each quarter's price and
   * keeps it in the archive (`archive` absent: not kept).
   */
  startPrices(
    archive: PriceRecorder | undefined,
    connect: (url: string, token: string, opts: { maxPayload: number }) => Promise<HaClient> = (url, token, opts) =>
      HaClient.connect(url, token, opts),
  ): void {
    if (this.dynamic.length === 0) return;
    const ha = this.config.homeassistant;
    for (const d of this.dynamic) {
      const entity = d.feed.config.entity;
      // The schema takes an entity only with homeassistant.url and homeassistant.token.
      if (!entity || !ha.url || !ha.token) continue;
      const source = new EntityPriceSource(d.feed, entity, { url: ha.url, token: ha.token }, this.log, connect, () =>
        this.clock.now(),
      );
      this.entities.push(source);
      source.start();
    }
    // A moment after each quarter hour: a price sent on the hour has come by then.
    const next = (): void => {
      const now = this.clock.now();
      this.priceTimer = this.clock.setTimeout(round, QUARTER - (now % QUARTER) + 2000);
    };
    const round = (): void => {
      if (this.stopped) return;
      void this.settle(archive);
      next();
    };
    const now = this.clock.now();
    for (const d of this.dynamic) d.settledUpTo = Math.floor(now / QUARTER) * QUARTER - QUARTER;
    next();
  }

  /** Settles the quarter hours that have ended, writes them to the archive, and says when a source goes quiet. */
  settle(archive: PriceRecorder | undefined): Promise<void> {
    const writes: Promise<unknown>[] = [];
    const now = this.clock.now();
    const last = Math.floor(now / QUARTER) * QUARTER - QUARTER;
    for (const d of this.dynamic) {
      // After a pause of the machine, at most a day of quarters is caught up (at the price judged now).
      const from = Math.max((d.settledUpTo ?? last - QUARTER) + QUARTER, last - 96 * QUARTER);
      for (let q = from; q <= last; q += QUARTER) d.feed.settle(q);
      d.settledUpTo = last;
      const stale = d.feed.stale(now);
      if (stale && !d.stale)
        this.log.warn(
          `tariff ${d.tariff}: no ${d.direction} price from ${d.feed.config.entity ?? d.feed.config.mqtt?.topic} ${
            d.feed.lastPriceAt === undefined
              ? "yet"
              : `since ${new Date(d.feed.lastPriceAt).toISOString()} (over ${d.feed.config.stale_after_minutes} minutes)`
          }: using the fallback ${d.feed.config.fallback} ${d.currency}/kWh until it comes back`,
        );
      else if (!stale && d.stale) this.log.info(`tariff ${d.tariff}: ${d.direction} prices come in again`);
      d.stale = stale;
      const rows = d.pending.splice(0);
      if (!archive || rows.length === 0) continue;
      writes.push(
        archive.call("recordPrices", d.tariff, d.meterIds, rows, now).catch((err: Error) => {
          this.log.error(`tariff ${d.tariff}: prices not written to the archive: ${err.message}`);
        }),
      );
    }
    return Promise.all(writes).then(() => undefined);
  }

  /**
   * The bus step adding cost values to live meters' readings, continuing the archived totals. Without the archive
   * the totals start at 0 with each start.
   */
  coster(): (r: Reading) => Reading {
    const live = this.config.meters
      .filter((m) => m.type === "dsmr" || m.type === "han" || m.type === "raven")
      .map((m) => m.id);
    const priced = live.filter((id) => this.tariffs.has(id));
    let restored = new Map<string, CostState>();
    if (priced.length > 0 && this.config.archive.enabled) {
      try {
        const db = openReadOnly(this.config.archive.path);
        try {
          restored = restoreCostStates(db, priced);
        } finally {
          db.close();
        }
      } catch (err) {
        this.log.error(`cost totals not restored from the archive, they start at 0: ${(err as Error).message}`);
      }
    } else if (priced.length > 0)
      this.log.warn(
        `the archive is disabled: the cost totals of ${priced.join(", ")} start at 0 with every start (HA books the drop as negative cost)`,
      );
    for (const id of priced) {
      const t = this.tariffs.get(id) as Tariff;
      const s = restored.get(id);
      this.log.info(
        `${id}: tariff ${t.name} (${t.currency}, ${t.timezone})${s ? `, cost totals continue from ${new Date(s.time).toISOString()}` : ""}`,
      );
    }
    return createCoster(new Map(priced.map((id) => [id, this.tariffs.get(id) as Tariff])), restored);
  }

  /**
   * Keeps the prices of the meters with a tariff in the archive's calendar, now and then once a day, in the archive's
   * worker: only days not yet priced are written, one meter at a time so that readings are stored in between.
   * Meters without a tariff need no calendar until a report asks for their days.
   */
  startCalendar(archive: CalendarRunner | undefined): void {
    if (!archive) return;
    const meters = calendarMeters(this.config).filter((m) => m.tariff);
    if (meters.length === 0) return;
    const run = async (): Promise<void> => {
      let n = 0;
      for (const m of meters) {
        if (this.stopped) return;
        try {
          n += await archive.call("refreshCalendar", calendarSpec(m), this.clock.now());
        } catch (err) {
          if (!this.stopped) this.log.error(`${m.id}: prices not written to the archive: ${(err as Error).message}`);
        }
      }
      this.log.debug(`report calendar: ${n} quarter hour(s) written`);
    };
    const daily = (): void => {
      if (this.stopped) return;
      this.calendarDone = run();
      this.timer = this.clock.setTimeout(daily, DAY_MS);
    };
    daily();
  }

  /** The calendar refresh under way (or the last one): tests and benchmarks wait for it. */
  calendarDone: Promise<void> = Promise.resolve();

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    if (this.priceTimer) this.clock.clearTimeout(this.priceTimer);
    for (const f of this.unfollow.splice(0)) f();
    return Promise.allSettled(this.entities.map((e) => e.stop())).then(() => undefined);
  }
}
