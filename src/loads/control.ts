/**
 * The load advisor's decisions for the loads of one meter: a pure state machine. Time is passed in with each
 * sample (the meter's own clock, see advisor.ts), so a table of (time, grid power) rows replays it exactly.
 *
 * Each sample goes through three steps:
 *  1. Surplus: loads in priority order share what the grid would export if every load now on were off. A load
 *     that is off wants on when its share reaches on_surplus_w; one that is on stays wanted while keeping it
 *     costs at most off_import_w of import (the gap between the two is the hysteresis). A load that wants on
 *     reserves its power, so two loads never count the same surplus.
 *  2. Peak guard (loads with peak_guard, in auto mode): a switch-on that would push the projected quarter-hour
 *     average over max(limit, this month's peak) is blocked; while the projection is over it, loads are shed,
 *     lowest priority first, until it is not. Only import counts: a load running on surplus is left alone.
 *  3. Timing: a change waits for its delay (which starts over whenever the wish flips back) and for the minimum
 *     on or off time. A shed does not wait: by the time a delay ran out, the quarter-hour would be spent.
 * Manual mode (on / off) wins over all three; the fail-safe applies when the meter's data stop.
 */

export type Mode = "auto" | "on" | "off";
export const MODES: readonly Mode[] = ["auto", "on", "off"];
export type FailSafe = "off" | "hold" | "on";

/** Why a load is recommended as it is, or what it is waiting for. */
export type Reason =
  /** No sample yet. */
  | "starting"
  /** On: the surplus covers it. */
  | "surplus"
  /** Off: not enough surplus. */
  | "no_surplus"
  /** Off, surplus enough: waiting for on_delay. */
  | "on_delay"
  /** On, importing too much: waiting for off_delay. */
  | "off_delay"
  /** On, would be off: held by min_on. */
  | "min_on"
  /** Off, would be on: held by min_off. */
  | "min_off"
  /** Off: shed, or kept off, so the quarter-hour stays under the peak. */
  | "peak_guard"
  /** The mode is on or off. */
  | "manual"
  /** The meter's data stopped: the load's fail-safe state. */
  | "no_data";
export const REASONS: readonly Reason[] = [
  "starting",
  "surplus",
  "no_surplus",
  "on_delay",
  "off_delay",
  "min_on",
  "min_off",
  "peak_guard",
  "manual",
  "no_data",
];

export interface LoadSpec {
  id: string;
  powerW: number;
  /** 1 first. */
  priority: number;
  onSurplusW: number;
  offImportW: number;
  onDelayMs: number;
  offDelayMs: number;
  minOnMs: number;
  minOffMs: number;
  peakGuard: boolean;
  failSafe: FailSafe;
}

export interface LoadStatus {
  on: boolean;
  mode: Mode;
  reason: Reason;
  /** When `on` last changed (UTC ms); -Infinity when it never has. */
  since: number;
  /** When the change being waited for may happen (UTC ms), while one is. */
  changeAt?: number;
}

export interface GridSample {
  /** UTC ms. */
  time: number;
  /** Import − export, W. */
  netW: number;
  /** The running quarter-hour's average if the current import held to its end, W; without it no guard. */
  projectedW?: number;
  /** This month's peak quarter-hour so far, W. */
  monthPeakW?: number;
}

export const QUARTER_MS = 15 * 60_000;

interface State extends LoadStatus {
  /** The change wished for and since when; cleared when the wish matches the state. */
  pending?: { on: boolean; since: number };
}

type Wish = { on: boolean; guard: boolean };

export class LoadGroup {
  /** In priority order, ties in the order given. */
  private readonly loads: readonly LoadSpec[];
  private readonly states = new Map<string, State>();

  constructor(
    loads: readonly LoadSpec[],
    /** The peak guard's floor, W: under the month's peak so far, or this, whichever is higher. */
    private readonly peakLimitW: number,
  ) {
    this.loads = loads
      .map((l, i) => ({ l, i }))
      .sort((a, b) => a.l.priority - b.l.priority || a.i - b.i)
      .map(({ l }) => l);
    for (const l of this.loads)
      this.states.set(l.id, { on: false, mode: "auto", reason: "starting", since: Number.NEGATIVE_INFINITY });
  }

  status(id: string): LoadStatus {
    const { on, mode, reason, since, changeAt } = this.state(id);
    return changeAt === undefined ? { on, mode, reason, since } : { on, mode, reason, since, changeAt };
  }

  /** Picks up where an earlier run left off (its last published state), so a restart does not switch anything. */
  restore(id: string, s: { on: boolean; since: number; mode: Mode }): void {
    const st = this.state(id);
    st.on = s.on;
    st.since = s.since;
    st.mode = s.mode;
    if (s.mode !== "auto") st.reason = "manual";
  }

  step(g: GridSample): void {
    const now = g.time;
    const wishes = this.surplus(g.netW);
    if (g.projectedW !== undefined) this.guard(g, wishes);
    for (const l of this.loads) {
      const s = this.state(l.id);
      const w = wishes.get(l.id);
      if (!w) this.manual(s, now);
      else this.apply(l, s, w, now);
    }
  }

  /** The meter's data stopped: each load in auto mode goes to its fail-safe state at once. */
  failSafe(now: number, ids: readonly string[]): void {
    for (const l of this.loads) {
      if (!ids.includes(l.id)) continue;
      const s = this.state(l.id);
      if (s.mode !== "auto") continue;
      this.set(s, l.failSafe === "hold" ? s.on : l.failSafe === "on", now);
      s.pending = undefined;
      s.changeAt = undefined;
      s.reason = "no_data";
    }
  }

  /** A manual mode applies at once; back in auto the next sample decides, with the usual delays. */
  setMode(id: string, mode: Mode, now: number): void {
    const s = this.state(id);
    if (s.mode === mode) return;
    s.mode = mode;
    s.pending = undefined;
    s.changeAt = undefined;
    if (mode !== "auto") this.manual(s, now);
  }

  private state(id: string): State {
    const s = this.states.get(id);
    if (!s) throw new Error(`no load "${id}"`);
    return s;
  }

  /** Step 1: what each load in auto mode would be, from the surplus alone. */
  private surplus(netW: number): Map<string, Wish> {
    // What the grid would export with every load off; loads on in manual mode draw their share first.
    let budget = -netW;
    for (const l of this.loads) if (this.state(l.id).on) budget += l.powerW;
    for (const l of this.loads) if (this.state(l.id).mode === "on") budget -= l.powerW;
    const wishes = new Map<string, Wish>();
    for (const l of this.loads) {
      const s = this.state(l.id);
      if (s.mode !== "auto") continue;
      const on = s.on ? budget - l.powerW >= -l.offImportW : budget >= l.onSurplusW;
      if (on) budget -= l.powerW;
      wishes.set(l.id, { on, guard: false });
    }
    return wishes;
  }

  /** Step 2: blocks and sheds guarded loads so the projected quarter-hour stays under the limit. */
  private guard(g: GridSample, wishes: Map<string, Wish>): void {
    const limit = Math.max(this.peakLimitW, g.monthPeakW ?? 0);
    const remaining = Math.floor(g.time / QUARTER_MS) * QUARTER_MS + QUARTER_MS - g.time;
    let net = g.netW;
    let projected = g.projectedW as number;
    // What a change of `w` in the load costs in projected average: only import counts toward the peak.
    const cost = (w: number): number => ((Math.max(0, net + w) - Math.max(0, net)) * remaining) / QUARTER_MS;
    const guarded = (l: LoadSpec): boolean => l.peakGuard && this.state(l.id).mode === "auto";
    const switchingOn = (l: LoadSpec): boolean => {
      const s = this.state(l.id);
      return !s.on && (s.mode === "on" || wishes.get(l.id)?.on === true);
    };
    // Loads the guard may not touch come first: they switch on whatever the guard thinks.
    for (const l of this.loads)
      if (!guarded(l) && switchingOn(l)) {
        projected += cost(l.powerW);
        net += l.powerW;
      }
    for (const l of this.loads) {
      if (!guarded(l) || !switchingOn(l)) continue;
      const c = cost(l.powerW);
      if (projected + c > limit) wishes.set(l.id, { on: false, guard: true });
      else {
        projected += c;
        net += l.powerW;
      }
    }
    for (const l of [...this.loads].reverse()) {
      if (projected <= limit) break;
      if (!guarded(l) || !this.state(l.id).on) continue;
      const c = cost(-l.powerW);
      // Running on surplus it adds nothing to the peak, and shedding it would save nothing.
      if (c >= 0) continue;
      wishes.set(l.id, { on: false, guard: true });
      projected += c;
      net -= l.powerW;
    }
  }

  private manual(s: State, now: number): void {
    this.set(s, s.mode === "on", now);
    s.pending = undefined;
    s.changeAt = undefined;
    s.reason = "manual";
  }

  /** Step 3: delays and minimum times. */
  private apply(l: LoadSpec, s: State, w: Wish, now: number): void {
    if (w.on === s.on) {
      s.pending = undefined;
      s.changeAt = undefined;
      s.reason = s.on ? "surplus" : w.guard ? "peak_guard" : "no_surplus";
      return;
    }
    if (w.guard) {
      // A shed (on → off) is immediate; a blocked switch-on starts its delay over once the guard lets go.
      this.set(s, false, now);
      s.pending = undefined;
      s.changeAt = undefined;
      s.reason = "peak_guard";
      return;
    }
    if (s.pending?.on !== w.on) s.pending = { on: w.on, since: now };
    const delayEnd = s.pending.since + (w.on ? l.onDelayMs : l.offDelayMs);
    const minEnd = s.since + (s.on ? l.minOnMs : l.minOffMs);
    const at = Math.max(delayEnd, minEnd);
    if (now >= at) {
      this.set(s, w.on, now);
      s.pending = undefined;
      s.changeAt = undefined;
      s.reason = w.on ? "surplus" : "no_surplus";
      return;
    }
    s.changeAt = at;
    s.reason = delayEnd >= minEnd ? (w.on ? "on_delay" : "off_delay") : s.on ? "min_on" : "min_off";
  }

  private set(s: State, on: boolean, now: number): void {
    if (s.on === on) return;
    s.on = on;
    s.since = now;
  }
}
