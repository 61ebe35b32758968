import { EventEmitter } from "node:events";
import { type Clock, systemClock, type Timer } from "../util/clock.js";
import { type Logger, rootLogger } from "../util/log.js";
import type { BackoffOptions, Transport, TransportEvents, TransportOptions } from "./types.js";

/**
 * How a concrete transport reports on one connection attempt. Once the base has moved on (stop, reopen,
 * a failure already reported) the calls are ignored, so a late event from an old handle cannot disturb a new one.
 */
export interface Link {
  opened(): void;
  data(chunk: Buffer): void;
  /** Opening failed, or the open connection was lost. */
  failed(err: unknown): void;
  /** The source has nothing more to give (file replay without loop): no retry follows. */
  ended(): void;
}

/** One connection attempt, as the base holds it. */
export interface Connection {
  /** Releases the device; must also work (and wait) while the attempt is still opening. */
  close(): Promise<void>;
}

/** A failure as the log and the 'close' event tell it. */
export interface Failure {
  reason: string;
  /**
   * Failures of one kind are logged once per outage. "connection" is a device or peer that is simply not there,
   * which retrying fixes; other kinds (permissions, a port held by another program) need the user.
   */
  kind: string;
  /** What the user should do, for failures that retrying alone will not fix. */
  advice?: string;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

interface Session {
  open: boolean;
  dead: boolean;
  released: boolean;
  conn?: Connection;
}

/**
 * From the first failure (or a reopen for silence) until bytes flow again. Only data ends it, not a successful
 * open: a peer that accepts and hangs up at once, or a device that reopens but stays silent, would otherwise
 * log a lost/back pair on every retry.
 */
interface Outage {
  since: number;
  attempts: number;
  cause: "failure" | "reopen";
  reported: Set<string>;
}

/**
 * The reconnect and logging policy shared by every transport; subclasses only open a connection and report
 * what happens to it through a Link. One outage (from the first failure until data flows again) logs one warn
 * line and one info line, however many retries it takes: earlier scripts filled the log with an error a second.
 */
export abstract class BaseTransport extends EventEmitter<TransportEvents> implements Transport {
  protected readonly clock: Clock;
  protected readonly log: Logger;
  private readonly backoff: BackoffOptions;
  private readonly idleTimeoutMs: number;
  private running = false;
  /** Bumped by every transition, so an attempt scheduled before it does not run after it. */
  private gen = 0;
  private session: Session | undefined;
  private retryTimer: Timer | undefined;
  private idleTimer: Timer | undefined;
  private lastDataAt = 0;
  /** Consecutive attempts that brought no data; drives the backoff, so a peer that accepts and hangs up at once is not hammered. */
  private failures = 0;
  private everOpened = false;
  private outage: Outage | undefined;
  /** Closing of earlier handles; a new attempt waits for it so it never competes with the old handle (serial ports are locked). */
  private released: Promise<void> = Promise.resolve();
  private open = false;

  constructor(opts: TransportOptions) {
    super();
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? rootLogger.child("transport");
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    if (!(this.backoff.initialMs >= 1) || !(this.backoff.maxMs >= this.backoff.initialMs))
      throw new RangeError(`backoff: expected 1 ≤ initialMs ≤ maxMs, got ${JSON.stringify(this.backoff)}`);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 0;
  }

  abstract get description(): string;

  /** Starts opening; reports through link. May throw, which counts as a failed attempt. */
  protected abstract connect(link: Link): Connection;

  /** Turns an error into a reason; subclasses recognise the errors the user has to act on. */
  protected explain(err: unknown): Failure {
    return { reason: errorText(err), kind: "connection" };
  }

  get isOpen(): boolean {
    return this.open;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    this.log.debug(() => `${this.description}: starting`);
    this.attemptNow();
  }

  async stop(): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    this.gen++;
    this.cancelRetry();
    this.stopIdle();
    this.drop();
    const wasOpen = this.open;
    this.open = false;
    this.outage = undefined;
    if (wasRunning) this.log.debug(() => `${this.description}: stopped`);
    if (wasOpen) this.emit("close", "stopped");
    await this.allReleased();
  }

  reopen(reason: string): void {
    this.restart(reason, true);
  }

  /** Closes and reopens at once. Loud for trouble (watchdogs), quiet for deliberate changes such as serial settings. */
  protected restart(reason: string, loud: boolean): void {
    if (!this.running) {
      this.log.debug(() => `${this.description}: not running, no reopen (${reason})`);
      return;
    }
    this.cancelRetry();
    this.stopIdle();
    this.drop();
    const wasOpen = this.open;
    this.open = false;
    if (loud && !this.outage) {
      this.outage = { since: this.clock.now(), attempts: 0, cause: "reopen", reported: new Set(["reopen"]) };
      this.log.warn(`${this.description} reopening: ${reason}`);
    } else {
      this.log.debug(() => `${this.description} reopening: ${reason}`);
    }
    this.attemptNow();
    if (wasOpen) this.emit("close", reason);
  }

  private attemptNow(): void {
    void this.attempt(++this.gen);
  }

  private async attempt(gen: number): Promise<void> {
    await this.allReleased();
    if (!this.running || gen !== this.gen) return;
    const s: Session = { open: false, dead: false, released: false };
    this.session = s;
    if (this.outage) this.outage.attempts++;
    const link: Link = {
      opened: () => this.onOpened(s),
      data: (chunk) => this.onData(s, chunk),
      failed: (err) => this.onFailed(s, err),
      ended: () => this.onEnded(s),
    };
    try {
      s.conn = this.connect(link);
    } catch (err) {
      this.onFailed(s, err);
    }
    // connect() may have reported a failure before it returned the handle that needs closing.
    if (s.dead) this.release(s);
  }

  private onOpened(s: Session): void {
    if (s !== this.session || s.dead) return;
    s.open = true;
    this.open = true;
    this.lastDataAt = this.clock.now();
    this.armIdle(this.idleTimeoutMs);
    const o = this.outage;
    if (!this.everOpened) {
      // The first open is news in itself (the user is waiting for it), data or not.
      this.outage = undefined;
      this.log.info(o ? `${this.description} open after ${this.howLong(o, "attempt")}` : `${this.description} open`);
    } else {
      this.log.debug(() => `${this.description} open`);
    }
    this.everOpened = true;
    this.emit("open");
  }

  private onData(s: Session, chunk: Buffer): void {
    if (s !== this.session || s.dead) return;
    this.lastDataAt = this.clock.now();
    this.failures = 0;
    const o = this.outage;
    if (o) {
      this.outage = undefined;
      if (o.cause === "reopen")
        this.log.info(`${this.description} receiving data again after ${this.howLong(o, "reopen")}`);
      else this.log.info(`${this.description} back after ${this.howLong(o, "attempt")}`);
    }
    this.emit("data", chunk);
  }

  private onFailed(s: Session, err: unknown): void {
    if (s !== this.session || s.dead) return;
    this.drop();
    this.stopIdle();
    const wasOpen = s.open;
    this.open = false;
    const f = this.explain(err);
    const text = f.advice ? `${f.reason} — ${f.advice}` : f.reason;
    this.failures++;
    const delay = this.backoffDelay(this.failures);
    // Scheduled before anything is emitted, so a listener that calls stop() or reopen() cancels it.
    const gen = this.gen;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (gen === this.gen) this.attemptNow();
    }, delay);
    const o = this.outage;
    const every = `retrying every ≤${secs(this.backoff.maxMs)} s`;
    if (!o) {
      this.outage = {
        since: this.clock.now(),
        attempts: wasOpen ? 0 : 1,
        cause: "failure",
        reported: new Set([f.kind]),
      };
      if (wasOpen) this.log.warn(`${this.description} lost: ${text}; reconnecting (${every})`);
      else this.log.warn(`${this.description} cannot open: ${text}; ${every}`);
      this.emit("close", f.reason);
      return;
    }
    if (!o.reported.has(f.kind)) {
      o.reported.add(f.kind);
      this.log.warn(`${this.description} ${wasOpen ? "lost" : "cannot open"}: ${text}; still ${every}`);
    } else {
      this.log.debug(() => `${this.description}: attempt ${o.attempts} failed (${f.reason}); next in ${delay} ms`);
    }
    if (wasOpen) this.emit("close", f.reason);
  }

  private onEnded(s: Session): void {
    if (s !== this.session || s.dead) return;
    this.drop();
    this.stopIdle();
    this.open = false;
    this.running = false;
    this.outage = undefined;
    this.log.debug(() => `${this.description}: finished`);
    this.emit("end");
  }

  /** Forgets the current session and closes its handle. */
  private drop(): void {
    const s = this.session;
    if (!s) return;
    s.dead = true;
    this.session = undefined;
    this.release(s);
  }

  private release(s: Session): void {
    const conn = s.conn;
    if (!conn || s.released) return;
    s.released = true;
    const prev = this.released;
    this.released = (async () => {
      await prev;
      try {
        await conn.close();
      } catch (err) {
        this.log.debug(() => `${this.description}: error while closing: ${errorText(err)}`);
      }
    })();
  }

  private async allReleased(): Promise<void> {
    let p: Promise<void>;
    do {
      p = this.released;
      await p;
    } while (p !== this.released);
  }

  private howLong(o: Outage, what: string): string {
    return `${plural(o.attempts, what)} / ${secs(this.clock.now() - o.since)} s`;
  }

  private backoffDelay(failures: number): number {
    const { initialMs, maxMs } = this.backoff;
    const full = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 40));
    // Shortened by up to a fifth at random: bridges restarted together do not retry in lockstep, and the
    // "every ≤ max" promise in the log stays true.
    return Math.max(1, Math.round(full * (1 - 0.2 * Math.random())));
  }

  private cancelRetry(): void {
    if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private armIdle(ms: number): void {
    if (this.idleTimeoutMs <= 0) return;
    this.stopIdle();
    // Checked against the time of the last data rather than re-armed on every chunk: a serial port delivers
    // a telegram in dozens of small reads.
    this.idleTimer = this.clock.setTimeout(() => {
      this.idleTimer = undefined;
      const quiet = this.clock.now() - this.lastDataAt;
      if (quiet >= this.idleTimeoutMs) this.restart(`no data for ${secs(this.idleTimeoutMs)} s`, true);
      else this.armIdle(this.idleTimeoutMs - quiet);
    }, ms);
  }

  private stopIdle(): void {
    if (this.idleTimer) this.clock.clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}

export function errorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/^Error:?\s+/, "");
}

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Seconds for people: "30", "4.2", "0.05". */
export function secs(ms: number): string {
  const s = ms / 1000;
  if (s >= 10) return String(Math.round(s));
  return String(Number(s.toFixed(s < 1 ? 2 : 1)));
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
