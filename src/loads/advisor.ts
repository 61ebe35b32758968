/**
 * The load advisor: feeds each meter's readings to its loads' state machine (control.ts) and tells listeners
 * when a load's recommendation, reason or countdown changes.
 *
 * Two clocks, on purpose. Delays, minimum times and quarter-hours run on the meter's time (each reading's
 * `time`, never going backwards): the decisions are then a function of the readings alone, the same live, in a
 * replayed capture at any speed, and in a test's table. Silence cannot be measured on a clock that only readings
 * advance, so the injected Clock decides when the data stopped (the fail-safe) and carries the meter's time on
 * from the last reading meanwhile.
 */
import type { Reading } from "../model/types.js";
import type { CapacityConfig } from "../tariffs/capacity.js";
import { type Clock, systemClock, type Timer } from "../util/clock.js";
import { type Logger, rootLogger } from "../util/log.js";
import { LoadGroup, type LoadSpec, type LoadStatus, type Mode } from "./control.js";
import { PeakSavings } from "./savings.js";

export interface AdvisedLoad extends LoadSpec {
  meter: string;
  /** Without a reading holding grid power for this long (on the Clock), the fail-safe applies. */
  failSafeAfterMs: number;
}

export interface LoadSnapshot extends LoadStatus {
  id: string;
  /** The meter's time of the evaluation (UTC ms). */
  time: number;
  /** Seconds until the change being waited for may happen, 0 when none is. */
  delayS: number;
}

interface MeterLoads {
  readonly group: LoadGroup;
  readonly loads: readonly AdvisedLoad[];
  /** Meter time of the latest reading, and the Clock's time when it came. */
  meterTime?: number;
  receivedAt: number;
  /** Loads in their fail-safe state until the next reading. */
  readonly stale: Set<string>;
  timer?: Timer;
  /** What the peak guard saved on the capacity tariff, for a meter with one and guarded loads. */
  readonly savings?: PeakSavings;
}

export class LoadAdvisor {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly meters = new Map<string, MeterLoads>();
  private readonly byLoad = new Map<string, MeterLoads>();
  /** What listeners were last told, per load; a load is absent until its first evaluation. */
  private readonly told = new Map<string, LoadSnapshot>();
  private readonly listeners: ((s: LoadSnapshot) => void)[] = [];
  private running = false;

  constructor(
    loads: readonly AdvisedLoad[],
    /** The peak guard's floor per meter id, W; meters not listed get `defaultPeakLimitW`. */
    peakLimits: Readonly<Record<string, number>> = {},
    opts: {
      clock?: Clock;
      log?: Logger;
      defaultPeakLimitW?: number;
      /** Belgium's capacity tariff per meter id, for the money the peak guard saved (savings.ts). */
      capacity?: Readonly<Record<string, { config: CapacityConfig; zone: string }>>;
    } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? rootLogger.child("loads");
    const meterIds = [...new Set(loads.map((l) => l.meter))];
    for (const meter of meterIds) {
      const mine = loads.filter((l) => l.meter === meter);
      const capacity = opts.capacity?.[meter];
      const entry: MeterLoads = {
        group: new LoadGroup(mine, peakLimits[meter] ?? opts.defaultPeakLimitW ?? 2500),
        loads: mine,
        receivedAt: this.clock.now(),
        stale: new Set(),
        ...(capacity && mine.some((l) => l.peakGuard)
          ? { savings: new PeakSavings(capacity.config, capacity.zone) }
          : {}),
      };
      this.meters.set(meter, entry);
      for (const l of mine) this.byLoad.set(l.id, entry);
    }
  }

  /** Starts the watch for silence: a meter that never sends anything gets its loads' fail-safe too. */
  start(): void {
    this.running = true;
    for (const m of this.meters.values()) {
      m.receivedAt = this.clock.now();
      this.arm(m);
    }
  }

  stop(): void {
    this.running = false;
    for (const m of this.meters.values()) {
      if (m.timer) this.clock.clearTimeout(m.timer);
      m.timer = undefined;
    }
  }

  onChange(listener: (s: LoadSnapshot) => void): void {
    this.listeners.push(listener);
  }

  /** The latest snapshot of each load evaluated so far. */
  snapshots(): LoadSnapshot[] {
    return [...this.told.values()];
  }

  onReading(r: Reading): void {
    const m = this.meters.get(r.meterId);
    if (!m) return;
    const net = r.values.power_net_w;
    // A reading without grid power (a RAVEn's price, a summation alone) neither decides nor proves the data flow.
    if (typeof net !== "number" || !Number.isFinite(net)) return;
    const time = Math.max(r.time, m.meterTime ?? Number.NEGATIVE_INFINITY);
    m.meterTime = time;
    m.receivedAt = this.clock.now();
    if (m.stale.size > 0) {
      this.log.info(`${r.meterId}: data again, ${[...m.stale].join(", ")} back to normal`);
      m.stale.clear();
    }
    const projected = r.values.demand_quarter_hour_projected_w;
    const peak = r.values.demand_month_peak_w;
    m.group.step({
      time,
      netW: net,
      ...(typeof projected === "number" ? { projectedW: projected } : {}),
      ...(typeof peak === "number" ? { monthPeakW: peak } : {}),
    });
    m.savings?.sample({
      time,
      netW: net,
      ...(typeof projected === "number" ? { projectedW: projected } : {}),
      ...(typeof peak === "number" ? { monthPeakW: peak } : {}),
      loads: m.loads.filter((l) => l.peakGuard).map((l) => ({ id: l.id, powerW: l.powerW, ...m.group.status(l.id) })),
    });
    this.tell(m, time);
    if (this.running && !m.timer) this.arm(m);
  }

  /**
   * What the peak guard saved this month on the meter's capacity tariff at `now` (its time), and since when; none
   * for a meter without capacity or without guarded loads.
   */
  savedMonth(meterId: string, now: number): { saved: number; since: string } | undefined {
    const s = this.meters.get(meterId)?.savings;
    return s ? { saved: s.savedMonth(now), since: s.since(now) } : undefined;
  }

  setMode(id: string, mode: Mode): void {
    const m = this.byLoad.get(id);
    if (!m) return;
    const now = this.meterNow(m);
    m.group.setMode(id, mode, now);
    this.tell(m, now, [id]);
  }

  /**
   * An earlier run's last state (from the retained MQTT state). Taken only before the load's first evaluation:
   * after that, this run knows better. Returns whether it was taken.
   */
  restore(id: string, s: { on: boolean; since: number; mode: Mode }): boolean {
    const m = this.byLoad.get(id);
    if (!m || this.told.has(id)) return false;
    m.group.restore(id, s);
    return true;
  }

  /** The meter's time now: that of the latest reading plus what the Clock says has passed since. */
  private meterNow(m: MeterLoads): number {
    const now = this.clock.now();
    return m.meterTime === undefined ? now : m.meterTime + (now - m.receivedAt);
  }

  private arm(m: MeterLoads): void {
    let due = Number.POSITIVE_INFINITY;
    for (const l of m.loads) if (!m.stale.has(l.id)) due = Math.min(due, m.receivedAt + l.failSafeAfterMs);
    if (!Number.isFinite(due)) return;
    m.timer = this.clock.setTimeout(
      () => {
        m.timer = undefined;
        if (!this.running) return;
        this.checkSilence(m);
        this.arm(m);
      },
      Math.max(0, due - this.clock.now()),
    );
  }

  private checkSilence(m: MeterLoads): void {
    const silent = this.clock.now() - m.receivedAt;
    const ids = m.loads.filter((l) => !m.stale.has(l.id) && silent >= l.failSafeAfterMs).map((l) => l.id);
    if (ids.length === 0) return;
    for (const id of ids) m.stale.add(id);
    this.log.warn(
      `${m.loads[0]?.meter}: no grid power for ${Math.round(silent / 1000)} s: ${ids.join(", ")} to their fail-safe state`,
    );
    const now = this.meterNow(m);
    m.group.failSafe(now, ids);
    this.tell(m, now, ids);
  }

  /** Tells listeners about loads whose snapshot changed (the evaluation time alone is no change). */
  private tell(m: MeterLoads, time: number, only?: readonly string[]): void {
    for (const l of m.loads) {
      if (only && !only.includes(l.id)) continue;
      const status = m.group.status(l.id);
      const snap: LoadSnapshot = {
        id: l.id,
        ...status,
        time,
        delayS: status.changeAt === undefined ? 0 : Math.max(0, Math.ceil((status.changeAt - time) / 1000)),
      };
      const before = this.told.get(l.id);
      this.told.set(l.id, snap);
      if (
        before &&
        before.on === snap.on &&
        before.mode === snap.mode &&
        before.reason === snap.reason &&
        before.changeAt === snap.changeAt &&
        before.delayS === snap.delayS
      )
        continue;
      if (before?.on !== snap.on)
        this.log.info(`${l.id}: ${snap.on ? "on" : "off"} (${snap.reason}) at ${new Date(time).toISOString()}`);
      for (const listener of this.listeners) listener(snap);
    }
  }
}
