/**
 * Sends line-protocol points in batches, one request at a time. A point waits at most flush_interval for its batch
 * to fill. While the server cannot be reached (or answers 5xx, 429, 401/403) the batch is kept and retried with
 * doubling delays; points keep coming and are buffered up to buffer_limit (plus the batch on its way), past which
 * the oldest are dropped, and counted. A batch the server rejects as malformed (another 4xx) is dropped: sending it again would fail the same way.
 */
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import type { InfluxConfig } from "./schema.js";

/** What a writer needs of the configuration; timings in seconds, as in the config. */
export type WriterConfig = Pick<
  InfluxConfig,
  | "url"
  | "version"
  | "database"
  | "bucket"
  | "org"
  | "token"
  | "username"
  | "password"
  | "batch_size"
  | "flush_interval"
  | "buffer_limit"
  | "retry_min"
  | "retry_max"
  | "timeout"
>;

export class WriteError extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
  ) {
    super(message);
    this.name = "WriteError";
  }
}

/** The write endpoint of each server kind, with precision in milliseconds. */
export function writeUrl(c: WriterConfig): string {
  const base = c.url.replace(/\/+$/, "");
  const q = new URLSearchParams();
  if (c.version === 2) {
    q.set("org", c.org ?? "");
    q.set("bucket", c.bucket ?? "");
  } else if (c.database) q.set("db", c.database);
  q.set("precision", "ms");
  return `${base}${c.version === 2 ? "/api/v2/write" : "/write"}?${q}`;
}

export function authHeader(c: WriterConfig): string | undefined {
  if (c.username !== undefined && c.password !== undefined)
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
  if (!c.token) return undefined;
  // InfluxDB (2.x, and 1.8+ with `username:password` as the token) wants `Token`; vmauth in front of
  // VictoriaMetrics a standard bearer token.
  return c.version === "victoria" ? `Bearer ${c.token}` : `Token ${c.token}`;
}

/** The server's address for messages: no credentials, no query. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
  } catch {
    return "(unparsable URL)";
  }
}

export type Post = (body: string) => Promise<void>;

/** One POST of a batch; WriteError says whether trying again can help. */
export function httpPost(c: WriterConfig): Post {
  const url = writeUrl(c);
  const auth = authHeader(c);
  const where = describeUrl(c.url);
  const headers: Record<string, string> = { "Content-Type": "text/plain; charset=utf-8" };
  if (auth) headers.Authorization = auth;
  return async (body) => {
    let res: Response;
    try {
      res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(c.timeout * 1000) });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === "TimeoutError" ? `no answer within ${c.timeout} s` : (e.cause?.code ?? e.message);
      throw new WriteError(`cannot reach ${where}: ${why}`, true);
    }
    if (res.ok) {
      await res.arrayBuffer().catch(() => {});
      return;
    }
    const text = (await res.text().catch(() => "")).replace(/\s+/g, " ").slice(0, 300);
    const retry = res.status >= 500 || res.status === 429 || res.status === 401 || res.status === 403;
    throw new WriteError(`${where} answered ${res.status}${text ? `: ${text}` : ""}`, retry);
  };
}

export interface WriterStats {
  /** Points accepted by the server. */
  sent: number;
  /** Points dropped: over the buffer limit, rejected by the server, or left at shutdown. */
  dropped: number;
  /** Requests that failed, each retry counting again. */
  failures: number;
}

export class LineWriter {
  readonly stats: WriterStats = { sent: 0, dropped: 0, failures: 0 };
  private pending: string[] = [];
  private inflight: string[] | null = null;
  private flushTimer?: Timer;
  private retryTimer?: Timer;
  private retryMs: number;
  private failing?: string;
  /** Set while someone waits for everything to go out: batches are sent back to back, not on the timer. */
  private draining = 0;
  private waiters: (() => void)[] = [];
  private closed = false;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly post: Post;

  constructor(
    private readonly cfg: WriterConfig,
    opts: { clock?: Clock; log?: Logger; post?: Post } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger("influx");
    this.post = opts.post ?? httpPost(cfg);
    this.retryMs = cfg.retry_min * 1000;
  }

  /** Points waiting to be sent (the batch on its way included). */
  get buffered(): number {
    return this.pending.length + (this.inflight?.length ?? 0);
  }

  add(lines: readonly string[]): void {
    if (this.closed || lines.length === 0) return;
    for (const l of lines) this.pending.push(l);
    this.bound();
    if (this.pending.length >= this.cfg.batch_size || this.draining > 0) this.send();
    else this.armFlush();
  }

  /** Resolves once everything added so far is sent or dropped (a backfill waits for this before it ends). */
  drain(): Promise<void> {
    if (this.buffered === 0) return Promise.resolve();
    this.draining++;
    this.send();
    return new Promise((resolve) =>
      this.waiters.push(() => {
        this.draining--;
        resolve();
      }),
    );
  }

  /**
   * Sends what is waiting, giving up after `graceMs` (a server that is down must not hold up shutdown); what did not
   * get through is counted as dropped and logged.
   */
  async stop(graceMs = 5000): Promise<void> {
    if (this.closed) return;
    const done = this.drain();
    let timer: NodeJS.Timeout | undefined;
    // A real timer: shutdown must end whatever clock drives the rest.
    await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.closed = true;
    if (this.flushTimer) this.clock.clearTimeout(this.flushTimer);
    if (this.retryTimer) this.clock.clearTimeout(this.retryTimer);
    const lost = this.buffered;
    if (lost > 0) {
      this.stats.dropped += lost;
      this.log.error(`${lost} point(s) not sent before shutdown${this.failing ? `: ${this.failing}` : ""}`);
    }
    this.pending = [];
    this.settle(true);
  }

  /**
   * Drops the oldest waiting points past buffer_limit. The batch on its way is not counted: it cannot be called back,
   * and if it fails it comes back to the front, where it is the oldest and goes first.
   */
  private bound(): void {
    const excess = this.pending.length - this.cfg.buffer_limit;
    if (excess <= 0) return;
    const n = Math.min(excess, this.pending.length);
    this.pending.splice(0, n);
    const before = this.stats.dropped;
    this.stats.dropped += n;
    // One line per ten thousand: an outage of a day would otherwise log every point.
    if (Math.floor(before / 10_000) !== Math.floor(this.stats.dropped / 10_000) || before === 0)
      this.log.warn(
        `more than ${this.cfg.buffer_limit} points waiting: dropping the oldest (${this.stats.dropped} dropped so far)`,
      );
  }

  private armFlush(): void {
    if (this.flushTimer || this.inflight || this.retryTimer) return;
    this.flushTimer = this.clock.setTimeout(() => {
      this.flushTimer = undefined;
      this.send();
    }, this.cfg.flush_interval * 1000);
  }

  private send(): void {
    if (this.inflight || this.retryTimer || this.pending.length === 0) {
      this.settle();
      return;
    }
    if (this.flushTimer) {
      this.clock.clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const batch = this.pending.splice(0, this.cfg.batch_size);
    this.inflight = batch;
    this.post(batch.join("\n")).then(
      () => this.onSent(batch),
      (err: unknown) => this.onFailed(batch, err),
    );
  }

  private onSent(batch: string[]): void {
    this.inflight = null;
    this.stats.sent += batch.length;
    this.retryMs = this.cfg.retry_min * 1000;
    if (this.failing) {
      this.log.info(`the server takes points again; ${this.buffered} waiting`);
      this.failing = undefined;
    }
    this.next();
  }

  private onFailed(batch: string[], err: unknown): void {
    this.inflight = null;
    this.stats.failures++;
    const e = err instanceof WriteError ? err : new WriteError((err as Error).message, true);
    if (!e.retry) {
      this.stats.dropped += batch.length;
      this.log.error(`${batch.length} point(s) rejected and dropped: ${e.message}`);
      this.next();
      return;
    }
    if (this.closed) return;
    this.pending.unshift(...batch);
    this.bound();
    if (e.message !== this.failing)
      this.log.warn(`${e.message}; ${this.buffered} point(s) kept, retrying in ${this.retryMs / 1000} s`);
    this.failing = e.message;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.send();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, Math.max(this.cfg.retry_max, this.cfg.retry_min) * 1000);
  }

  /** After a request: a backlog or a drain goes on at once; a part-filled batch waits for its timer. */
  private next(): void {
    if (this.closed) return;
    if (this.pending.length >= this.cfg.batch_size || (this.draining > 0 && this.pending.length > 0)) this.send();
    else if (this.pending.length > 0) this.armFlush();
    this.settle();
  }

  private settle(force = false): void {
    if (!force && this.buffered > 0) return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
