/**
 * Tariffs in the running bridge: the live meters' cost values (a bus transform, like the derived quantities) and the
 * archive's calendar of days and prices that the report views use (kept a month and more ahead, refreshed daily).
 */
import type { Config, MeterConfig } from "../config/schema.js";
import type { Reading } from "../model/types.js";
import { migrate, openReadOnly, openWritable, sqlDir } from "../outputs/archive/db.js";
import { type Clock, systemClock, type Timer } from "../util/clock.js";
import { createLogger, type Logger } from "../util/log.js";
import { type CalendarMeter, type CalendarStore, calendarSpec, refreshMeterCalendar } from "./calendar.js";
import { type CostState, createCoster, restoreCostStates } from "./live.js";
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

  stop(): void {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
  }
}
