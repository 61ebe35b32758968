import type { Interval, MeterInfo, Reading, SourceStatus } from "./model/types.js";
import { createLogger } from "./util/log.js";

export interface BusEvents {
  reading: Reading;
  intervals: Interval[];
  status: SourceStatus;
  meterInfo: MeterInfo;
  /** A frame a live source read, taken or rejected and why, with its text where the source keeps it (the web page). */
  frame: { meterId: string; time: number; ok: boolean; reason?: string; raw?: string };
}
type Handler<T> = (payload: T) => void | Promise<void>;

interface Subscription {
  owner: string;
  event: keyof BusEvents;
  handler: Handler<never>;
  queue: unknown[];
  limit: number;
  running: boolean;
  dropped: number;
}

const log = createLogger("bus");

/**
 * Typed event bus. Each subscriber has its own bounded queue, drained on its own: a slow output
 * (a broker that hangs, a disk that stalls) never delays the source or another output. When a
 * queue is full the oldest item is dropped and counted; live readings are superseded anyway.
 */
export class Bus {
  private subs: Subscription[] = [];
  private readonly transforms: { event: keyof BusEvents; fn: (payload: unknown) => unknown }[] = [];

  subscribe<K extends keyof BusEvents>(
    owner: string,
    event: K,
    handler: Handler<BusEvents[K]>,
    opts: { queueLimit?: number } = {},
  ): void {
    this.subs.push({
      owner,
      event,
      handler: handler as Handler<never>,
      queue: [],
      limit: opts.queueLimit ?? 10_000,
      running: false,
      dropped: 0,
    });
  }

  unsubscribeAll(owner: string): void {
    this.subs = this.subs.filter((s) => s.owner !== owner);
  }

  /**
   * A synchronous step every `event` passes through before any subscriber sees it (derived quantities): each
   * output gets the same enriched payload, in the source's order, without a queue hop. A step that throws is
   * skipped for that payload, which goes on as it was.
   */
  transform<K extends keyof BusEvents>(event: K, fn: (payload: BusEvents[K]) => BusEvents[K]): void {
    this.transforms.push({ event, fn: fn as (payload: unknown) => unknown });
  }

  emit<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void {
    for (const t of this.transforms) {
      if (t.event !== event) continue;
      try {
        payload = t.fn(payload) as BusEvents[K];
      } catch (err) {
        log.error(`a transform of ${event} failed: ${(err as Error).message}`);
      }
    }
    for (const s of this.subs) {
      if (s.event !== event) continue;
      if (s.queue.length >= s.limit) {
        s.queue.shift();
        if (s.dropped++ % 1000 === 0) log.warn(`${s.owner} is falling behind on ${event}: ${s.dropped} dropped so far`);
      }
      s.queue.push(payload);
      if (!s.running) this.drain(s);
    }
  }

  /** Resolves when every queue is empty (used on shutdown and in tests). */
  async idle(): Promise<void> {
    while (this.subs.some((s) => s.running || s.queue.length > 0)) await new Promise((r) => setImmediate(r));
  }

  private drain(s: Subscription): void {
    s.running = true;
    const step = (): void => {
      while (s.queue.length > 0) {
        const item = s.queue.shift() as never;
        let result: void | Promise<void>;
        try {
          result = s.handler(item);
        } catch (err) {
          log.error(`${s.owner} failed on ${String(s.event)}: ${(err as Error).message}`);
          continue;
        }
        if (result && typeof (result as Promise<void>).then === "function") {
          (result as Promise<void>).then(step, (err: Error) => {
            log.error(`${s.owner} failed on ${String(s.event)}: ${err.message}`);
            step();
          });
          return;
        }
      }
      s.running = false;
    };
    step();
  }
}
