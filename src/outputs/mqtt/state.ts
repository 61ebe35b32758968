/**
 * What goes into a meter's JSON state message, and when. Pure bookkeeping (time is passed in), so the
 * recorder flood control can be tested without a broker or a clock.
 *
 * HA's recorder writes a row for every state message of every entity whose value changed. A DSMR 5 meter
 * sends a telegram a second; unthrottled that is 86 400 rows a day per sensor. So each quantity has a
 * minimum interval taken from its catalogue kind, and a message carries, for quantities not yet due,
 * the value last sent (HA would otherwise see a held-back value jump in between its own publications).
 */
import { REPLACED_AT, RESET_REGISTERS } from "../../derived/replacement.js";
import { quantity } from "../../model/quantities.js";

export type Value = number | string;

/** Minimum seconds between two publications of a value, per catalogue kind; kinds not listed: 0. */
export type MinIntervals = Readonly<Partial<Record<string, number>>>;

/** Quantities that go out together once one of them is due (see due()). */
const TOGETHER: readonly ReadonlySet<string>[] = [new Set([REPLACED_AT, ...RESET_REGISTERS])];

export class MeterState {
  private readonly latest = new Map<string, Value>();
  private readonly sent = new Map<string, Value>();
  private readonly sentAt = new Map<string, number>();

  /** `byName` overrides the kind's interval for single quantities (the bridge's own frame counters). */
  constructor(
    private readonly intervals: MinIntervals,
    private readonly byName: Readonly<Record<string, number>> = {},
  ) {}

  /** Newest values; a quantity missing from one telegram keeps its last value. */
  update(values: Readonly<Record<string, Value>>): void {
    for (const [name, value] of Object.entries(values)) this.latest.set(name, value);
  }

  get empty(): boolean {
    return this.latest.size === 0;
  }

  get(name: string): Value | undefined {
    return this.latest.get(name);
  }

  /** Quantities whose newest value differs from the one last sent (or was never sent). */
  pending(): string[] {
    const out: string[] = [];
    for (const [name, value] of this.latest) if (!this.sent.has(name) || this.sent.get(name) !== value) out.push(name);
    return out;
  }

  /**
   * Pending quantities whose kind's interval has elapsed since they were last sent. A quantity of a `TOGETHER`
   * group brings the group's other pending ones along: a replaced meter's `meter_replaced_at` (HA's last_reset)
   * must reach HA in the same message as the new meter's registers, never beside the old meter's.
   */
  due(now: number): string[] {
    const pending = this.pending();
    const due = pending.filter((name) => this.dueAt(name) <= now);
    for (const group of TOGETHER) {
      if (!due.some((n) => group.has(n))) continue;
      for (const n of pending) if (group.has(n) && !due.includes(n)) due.push(n);
    }
    return due;
  }

  /** When the earliest pending change may go out; undefined when nothing is pending. */
  nextDue(): number | undefined {
    let next: number | undefined;
    for (const name of this.pending()) {
      const at = this.dueAt(name);
      if (next === undefined || at < next) next = at;
    }
    return next;
  }

  /**
   * Marks `names` as sent at `now` and returns the message body: the newest value for those,
   * the value last sent for every other quantity.
   */
  take(names: readonly string[], now: number): Record<string, Value> {
    for (const name of names) {
      const value = this.latest.get(name);
      if (value === undefined) continue;
      this.sent.set(name, value);
      this.sentAt.set(name, now);
    }
    return Object.fromEntries(this.sent);
  }

  /** Everything at its newest value (after a reconnect or HA restart, when one message is worth it). */
  takeAll(now: number): Record<string, Value> {
    return this.take([...this.latest.keys()], now);
  }

  private dueAt(name: string): number {
    const last = this.sentAt.get(name);
    if (last === undefined) return Number.NEGATIVE_INFINITY;
    return last + this.intervalOf(name) * 1000;
  }

  private intervalOf(name: string): number {
    const own = this.byName[name];
    if (own !== undefined) return own;
    const kind = quantity(name)?.kind;
    return (kind && this.intervals[kind]) || 0;
  }
}
