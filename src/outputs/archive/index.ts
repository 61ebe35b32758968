import { Worker } from "node:worker_threads";
import type BetterSqlite3 from "better-sqlite3";
import type { Bus } from "../../bus.js";
import type { ArchiveConfig } from "../../config/schema.js";
import { ARCHIVE_COLUMNS } from "../../model/quantities.js";
import type { MeterInfo, Reading } from "../../model/types.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { type Logger, rootLogger } from "../../util/log.js";
import { openReadOnly } from "./db.js";
import { ArchiveDiagnostics } from "./diagnostics.js";
import type { ArchiveStore, Batch, Call, FromWorker, MeterRow, WorkerInit } from "./protocol.js";

/** Rows are posted to the worker at least this often… */
const BATCH_DELAY_MS = 1000;
/** …or as soon as this many are waiting. */
const MAX_BATCH_ROWS = 500;
/** Rows kept while the database refuses writes; beyond it the oldest are dropped. */
const MAX_PENDING_ROWS = 100_000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** On stop a failing batch is tried this many times in a row, then given up: shutdown must end. */
const STOP_ATTEMPTS = 3;
/** A worker that has not exited this long after being asked to is terminated. */
const CLOSE_TIMEOUT_MS = 30_000;
/** With archive.retention, old readings are deleted this often (and once at start). */
const RETENTION_EVERY_MS = 6 * 3_600_000;
/** Year 9999: later times would not print as the 24-character ISO strings the views slice. */
const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

// The worker is a separate module graph: under tsx/vitest this file is index.ts and the worker must be
// loaded as TypeScript too; after `tsc` both are plain .js in dist/.
// Node 20 ignores `--import tsx` in a worker's execArgv, so from the sources the worker starts at
// worker-tsx.mjs, which registers tsx inside the worker and then imports worker.ts.
const WORKER_URL = new URL(import.meta.url.endsWith(".ts") ? "./worker-tsx.mjs" : "./worker.js", import.meta.url);

const NUMBER_COLUMNS = ARCHIVE_COLUMNS.filter((q) => q.type === "number").map((q) => q.name);
const STRING_COLUMNS = ARCHIVE_COLUMNS.filter((q) => q.type === "string").map((q) => q.name);
const NUMBER_INDEX = new Map(NUMBER_COLUMNS.map((n, i) => [n, i]));
const STRING_INDEX = new Map(STRING_COLUMNS.map((n, i) => [n, i]));

/** Rows being gathered for the next batch, already in the columnar form the worker reads. */
class RowBuffer {
  count = 0;
  readonly meterIds: string[] = [];
  times: Float64Array;
  numbers: Float64Array;
  strings: (string | null)[];
  private capacity: number;

  constructor(
    private readonly nNum: number,
    private readonly nStr: number,
  ) {
    // Small first: a meter sending once a second fills one or two rows per batch.
    this.capacity = 8;
    this.times = new Float64Array(this.capacity);
    this.numbers = new Float64Array(this.capacity * nNum);
    this.strings = new Array(this.capacity * nStr).fill(null);
  }

  /** Clears the next row and returns its index; it only counts once `commit` is called. */
  open(): number {
    const row = this.count;
    if (row === this.capacity) this.grow();
    this.numbers.fill(Number.NaN, row * this.nNum, (row + 1) * this.nNum);
    this.strings.fill(null, row * this.nStr, (row + 1) * this.nStr);
    return row;
  }

  commit(meterId: string, time: number): void {
    this.meterIds[this.count] = meterId;
    this.times[this.count] = time;
    this.count++;
  }

  /** Arrays of exactly `count` rows: a clone of a view would copy its whole, larger buffer. */
  take(): Pick<Batch, "count" | "meterIds" | "times" | "numbers" | "strings"> {
    const n = this.count;
    return {
      count: n,
      meterIds: this.meterIds.slice(0, n),
      times: this.times.slice(0, n),
      numbers: this.numbers.slice(0, n * this.nNum),
      strings: this.strings.slice(0, n * this.nStr),
    };
  }

  private grow(): void {
    this.capacity = Math.min(this.capacity * 2, Math.max(MAX_BATCH_ROWS, this.capacity + 1));
    const times = new Float64Array(this.capacity);
    times.set(this.times);
    this.times = times;
    const numbers = new Float64Array(this.capacity * this.nNum);
    numbers.set(this.numbers);
    this.numbers = numbers;
    this.strings.length = this.capacity * this.nStr;
  }
}

interface Pending extends Batch {
  attempts: number;
  /** Over the row limit while being written: if this attempt fails, the batch is dropped, not retried. */
  doomed?: boolean;
}

type MeterUpsert = { id: string; name?: string; type: string } & Partial<MeterInfo>;

interface PendingCall {
  message: Call;
  posted: boolean;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/**
 * The SQLite archive. Rows are gathered here on the main thread and written by a worker thread with
 * its own connection (see worker.ts), one transaction per batch; nothing on the meter→MQTT path waits
 * for the disk. Failed batches are kept and retried; the columns come from ARCHIVE_COLUMNS.
 */
export class Archive {
  /**
   * queued: rows accepted and not yet committed (or dropped); written: rows the database gained
   * (a reading already stored is not counted again); batches: committed batches; failedBatches:
   * failed write attempts, each retry counting again.
   */
  readonly stats = { queued: 0, written: 0, batches: 0, failedBatches: 0 };

  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly lastKept = new Map<string, number>();
  private readonly warned = new Set<string>();
  private rows: RowBuffer | null = null;
  private meters: MeterRow[] = [];
  /** Sealed batches, oldest first; the head goes to the worker next. */
  private queue: Pending[] = [];
  /** The batch the worker is writing; always older than everything in `queue`. */
  private inflight: Pending | null = null;
  private seq = 0;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private batchTimer: Timer | null = null;
  private retryTimer: Timer | null = null;
  private retentionTimer: Timer | null = null;
  private retryDelay = RETRY_MIN_MS;
  private worker: Worker | null = null;
  private ready = false;
  private exited: Promise<void> = Promise.resolve();
  private starting: Promise<void> | null = null;
  /** The latest start or restart of the worker. */
  private spawning: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  /** Set by stop(): add() ignores readings and failures are retried at once, a few times. */
  private closing = false;
  private readonly calls = new Map<number, PendingCall>();
  private callSeq = 0;

  /** The archive's size and rows as diagnostic sensors of the meters, when given a bus to publish them on. */
  private readonly diagnostics?: ArchiveDiagnostics;

  constructor(
    private readonly cfg: ArchiveConfig,
    opts: { clock?: Clock; log?: Logger; diagnostics?: { bus: Bus; meterIds: readonly string[] } } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? rootLogger.child("archive");
    this.intervalMs = Math.max(0, cfg.interval) * 1000;
    const d = opts.diagnostics;
    if (d) this.diagnostics = new ArchiveDiagnostics(this, d.bus, d.meterIds, this.log, { clock: this.clock });
  }

  start(): Promise<void> {
    if (this.stopping) return Promise.reject(new Error("the archive was stopped"));
    if (!this.starting) {
      this.starting = this.spawn();
      this.starting.then(
        () => {
          this.retain();
          this.diagnostics?.start();
        },
        () => {},
      );
    }
    return this.starting;
  }

  /** The last retention run (tests wait for it). */
  retained: Promise<number> = Promise.resolve(0);

  /** archive.retention: deletes readings older than that many days, in the worker, now and every few hours. */
  private retain(): void {
    const days = this.cfg.retention;
    if (!days || this.closing) return;
    this.retained = this.call("retain", days, this.clock.now()).then(
      (n) => {
        if (n > 0)
          this.log.info(`${n} reading(s) older than ${days} days deleted (archive.retention; hourly energy is kept)`);
        return n;
      },
      (err: Error) => {
        if (!this.closing) this.log.error(`old readings not deleted: ${err.message}`);
        return 0;
      },
    );
    this.retentionTimer = this.clock.setTimeout(() => {
      this.retentionTimer = null;
      this.retain();
    }, RETENTION_EVERY_MS);
  }

  add(reading: Reading): void {
    if (this.closing) return;
    try {
      this.accept(reading);
    } catch (err) {
      this.warnOnce("add", `reading not archived: ${(err as Error).message}`);
    }
  }

  upsertMeter(meter: MeterUpsert): void {
    if (this.closing) return;
    if (typeof meter?.id !== "string" || meter.id === "") {
      this.warnOnce("meter", "meter without an id not archived");
      return;
    }
    const text = (v: unknown): string | null => (typeof v === "string" ? v : null);
    this.meters.push({
      id: meter.id,
      name: text(meter.name),
      type: text(meter.type),
      manufacturer: text(meter.manufacturer),
      model: text(meter.model),
      serial_number: text(meter.serialNumber),
      sw_version: text(meter.swVersion),
    });
    this.armBatchTimer();
  }

  flush(): Promise<void> {
    this.seal();
    return this.settled(this.seq);
  }

  /**
   * Runs one ArchiveStore method (intervals, the IMAP cursor, statistics bookkeeping, the tariff calendar) in the worker, on its
   * connection: reads see every write posted before them, and the main thread never waits for the disk.
   * A call made while the worker (re)starts waits for it; one the worker had when it died is rejected, since
   * whether its transaction committed is unknown (every write through here is idempotent, so callers retry).
   */
  call<K extends keyof ArchiveStore>(
    method: K,
    ...args: Parameters<ArchiveStore[K]>
  ): Promise<ReturnType<ArchiveStore[K]>> {
    if (this.closing) return Promise.reject(new Error("the archive is stopping"));
    return new Promise((resolve, reject) => {
      const id = ++this.callSeq;
      this.calls.set(id, {
        message: { type: "call", id, method, args },
        posted: false,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.postCalls();
    });
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  // ── gathering ──────────────────────────────────────────────────────────────────────────────────

  private accept(reading: Reading): void {
    const { meterId, time, values } = reading;
    if (typeof meterId !== "string" || meterId === "") {
      this.warnOnce("meterId", `reading without a meter id skipped`);
      return;
    }
    if (typeof time !== "number" || !Number.isFinite(time) || time < 0 || time > MAX_TIME_MS) {
      this.warnOnce(`time:${meterId}`, `${meterId}: reading with time ${String(time)} skipped`);
      return;
    }
    const last = this.lastKept.get(meterId);
    // A time before the last kept one (meter clock set back, a capture replayed) starts the interval
    // over from there instead of silencing the meter until its clock catches up.
    if (last !== undefined && time >= last && time - last < this.intervalMs) return;

    this.rows ??= new RowBuffer(NUMBER_COLUMNS.length, STRING_COLUMNS.length);
    const rows = this.rows;
    const row = rows.open();
    const nNum = NUMBER_COLUMNS.length;
    const nStr = STRING_COLUMNS.length;
    let kept = 0;
    for (const name in values) {
      const v = values[name];
      const n = NUMBER_INDEX.get(name);
      if (n !== undefined) {
        if (typeof v === "number" && Number.isFinite(v)) {
          rows.numbers[row * nNum + n] = v;
          kept++;
        } else this.warnOnce(`${meterId}:${name}`, `${meterId}: ${name}=${String(v)} is not a finite number, skipped`);
        continue;
      }
      const s = STRING_INDEX.get(name);
      if (s !== undefined) {
        if (typeof v === "string") {
          rows.strings[row * nStr + s] = v;
          kept++;
        } else this.warnOnce(`${meterId}:${name}`, `${meterId}: ${name}=${String(v)} is not a string, skipped`);
      }
    }
    // Nothing the archive stores (e.g. only diagnostics): no row, and the interval is not used up.
    if (kept === 0) return;
    rows.commit(meterId, time);
    this.lastKept.set(meterId, time);
    this.stats.queued++;
    if (rows.count >= MAX_BATCH_ROWS) this.seal();
    else this.armBatchTimer();
  }

  private armBatchTimer(): void {
    if (this.batchTimer || this.stopping) return;
    this.batchTimer = this.clock.setTimeout(() => {
      this.batchTimer = null;
      this.seal();
    }, BATCH_DELAY_MS);
  }

  private seal(): void {
    if (this.batchTimer) {
      this.clock.clearTimeout(this.batchTimer);
      this.batchTimer = null;
    }
    const rows = this.rows;
    if (!rows?.count && this.meters.length === 0) return;
    this.rows = null;
    const taken = rows
      ? rows.take()
      : { count: 0, meterIds: [], times: new Float64Array(0), numbers: new Float64Array(0), strings: [] };
    this.queue.push({ seq: ++this.seq, ...taken, meters: this.meters, attempts: 0 });
    this.meters = [];
    this.bound();
    this.pump();
  }

  /** Drops the oldest batches while more than MAX_PENDING_ROWS rows wait. */
  private bound(): void {
    const inflight = this.inflight;
    let excess = this.stats.queued - (inflight?.doomed ? inflight.count : 0) - MAX_PENDING_ROWS;
    if (excess <= 0) return;
    if (inflight && !inflight.doomed) {
      // The oldest rows are with the worker and cannot be called back; they go if this attempt fails.
      inflight.doomed = true;
      excess -= inflight.count;
    }
    const dropped: Pending[] = [];
    while (excess > 0 && this.queue.length > 0) {
      const b = this.queue.shift() as Pending;
      excess -= b.count;
      dropped.push(b);
    }
    this.drop(dropped);
  }

  private drop(batches: Pending[]): void {
    if (batches.length === 0) return;
    let rows = 0;
    let from = Number.POSITIVE_INFINITY;
    let to = Number.NEGATIVE_INFINITY;
    for (const b of batches) {
      rows += b.count;
      for (let i = 0; i < b.count; i++) {
        const t = b.times[i] as number;
        if (t < from) from = t;
        if (t > to) to = t;
      }
      // Meter descriptions are tiny and sent rarely: they ride on the next batch instead.
      (this.queue[0]?.meters ?? this.meters).unshift(...b.meters);
    }
    this.stats.queued -= rows;
    this.log.error(
      `more than ${MAX_PENDING_ROWS} rows are waiting for the database: dropped the oldest ${rows} ` +
        `(readings from ${new Date(from).toISOString()} to ${new Date(to).toISOString()})`,
    );
    this.settle();
  }

  // ── writing ────────────────────────────────────────────────────────────────────────────────────

  private postCalls(): void {
    if (!this.ready || !this.worker) return;
    for (const c of this.calls.values()) {
      if (c.posted) continue;
      c.posted = true;
      this.worker.postMessage(c.message);
    }
  }

  private onReply(m: Extract<FromWorker, { type: "reply" }>): void {
    const c = this.calls.get(m.id);
    if (!c) return;
    this.calls.delete(m.id);
    if (m.ok) c.resolve(m.value);
    else c.reject(new Error(m.error));
  }

  private failCalls(reason: string, all: boolean): void {
    for (const [id, c] of this.calls) {
      if (!all && !c.posted) continue;
      this.calls.delete(id);
      c.reject(new Error(reason));
    }
  }

  private pump(): void {
    if (!this.ready || !this.worker || this.inflight || this.retryTimer) return;
    const next = this.queue.shift();
    if (!next) return;
    this.inflight = next;
    next.attempts++;
    this.worker.postMessage({ type: "batch", batch: next });
  }

  private onDone(seq: number, inserted: number): void {
    const b = this.inflight;
    if (!b || b.seq !== seq) return;
    this.inflight = null;
    this.stats.queued -= b.count;
    this.stats.written += inserted;
    this.stats.batches++;
    if (this.retryDelay > RETRY_MIN_MS) this.log.info("the database accepts writes again");
    this.retryDelay = RETRY_MIN_MS;
    this.settle();
    this.pump();
  }

  private onFailed(seq: number, error: string): void {
    const b = this.inflight;
    if (!b || b.seq !== seq) return;
    this.inflight = null;
    this.stats.failedBatches++;
    if (b.doomed) {
      this.drop([b]);
      if (this.closing) this.pump();
      else this.scheduleRetry();
      return;
    }
    if (this.closing) {
      if (b.attempts >= STOP_ATTEMPTS) {
        this.stats.queued -= b.count;
        this.log.error(`${b.count} rows not archived on shutdown: ${error}`);
        this.settle();
      } else this.queue.unshift(b);
      this.pump();
      return;
    }
    this.queue.unshift(b);
    this.log.warn(
      `writing ${b.count} rows failed (${error}); ${this.stats.queued} rows kept, retrying in ${this.retryDelay / 1000} s`,
    );
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      if (this.worker) this.pump();
      else if (!this.closing) this.restart();
    }, delay);
  }

  /** Resolves flush() callers whose batches are all committed or dropped. */
  private settle(): void {
    const oldest = this.inflight?.seq ?? this.queue[0]?.seq ?? Number.POSITIVE_INFINITY;
    if (!this.waiters.some((w) => w.seq < oldest)) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.seq < oldest) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private settled(seq: number): Promise<void> {
    const oldest = this.inflight?.seq ?? this.queue[0]?.seq ?? Number.POSITIVE_INFINITY;
    if (seq < oldest) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  // ── the worker ─────────────────────────────────────────────────────────────────────────────────

  private spawn(): Promise<void> {
    const init: WorkerInit = {
      path: this.cfg.path,
      numberColumns: NUMBER_COLUMNS,
      stringColumns: STRING_COLUMNS,
      retentionDays: this.cfg.retention,
    };
    this.spawning = new Promise<void>((resolve, reject) => {
      let worker: Worker;
      try {
        worker = new Worker(WORKER_URL, { workerData: init });
      } catch (err) {
        reject(err);
        return;
      }
      this.worker = worker;
      let opened = false;
      let fatal: string | undefined;
      let resolveExit: () => void = () => {};
      this.exited = new Promise((r) => (resolveExit = r));
      worker.on("message", (m: FromWorker) => {
        switch (m.type) {
          case "ready":
            opened = true;
            this.ready = true;
            if (m.migrations.length > 0) this.log.info(`${this.cfg.path}: applied ${m.migrations.join(", ")}`);
            resolve();
            this.pump();
            this.postCalls();
            break;
          case "fatal":
            fatal = m.error;
            break;
          case "done":
            this.onDone(m.seq, m.inserted);
            break;
          case "failed":
            this.onFailed(m.seq, m.error);
            break;
          case "reply":
            this.onReply(m);
            break;
          case "closed":
            break;
        }
      });
      worker.on("error", (err) => {
        fatal ??= err.message;
        this.log.error(`archive worker failed: ${err.message}`);
      });
      worker.on("exit", (code) => {
        resolveExit();
        if (this.worker !== worker) return;
        this.worker = null;
        this.ready = false;
        this.failCalls("the archive worker ended", this.closing);
        if (!opened) {
          reject(new Error(fatal ?? `archive worker exited with code ${code} before opening ${this.cfg.path}`));
          return;
        }
        if (this.inflight) {
          this.queue.unshift(this.inflight);
          this.inflight = null;
        }
        if (this.closing) {
          this.abandon("the archive worker ended");
          return;
        }
        this.log.error(`archive worker ended unexpectedly (code ${code}); restarting in ${this.retryDelay / 1000} s`);
        this.scheduleRetry();
      });
    });
    return this.spawning;
  }

  private restart(): void {
    this.spawn().catch((err: Error) => {
      this.log.error(`archive worker could not restart: ${err.message}`);
      if (!this.closing) this.scheduleRetry();
    });
  }

  /** Gives up on everything still waiting (shutdown without a usable worker). */
  private abandon(reason: string): void {
    const lost = this.queue.reduce((n, b) => n + b.count, 0) + (this.inflight?.count ?? 0);
    if (lost > 0) this.log.error(`${lost} rows not archived: ${reason}`);
    this.queue = [];
    this.inflight = null;
    this.stats.queued = 0;
    this.settle();
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.diagnostics?.stop();
    if (this.retentionTimer) {
      this.clock.clearTimeout(this.retentionTimer);
      this.retentionTimer = null;
    }
    this.seal();
    if (this.retryTimer) {
      this.clock.clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    // A start or restart under way either opens the database, and the queue is written, or fails.
    if (this.spawning) await this.spawning.catch(() => {});
    if (this.ready && this.worker) {
      for (const b of this.queue) b.attempts = 0;
      if (this.inflight) this.inflight.attempts = 1;
      this.pump();
      await this.settled(this.seq);
    } else {
      this.abandon(this.spawning ? "the archive worker is not running" : "the archive was never started");
    }
    const worker = this.worker;
    if (!worker) {
      this.failCalls("the archive was stopped", true);
      return;
    }
    this.ready = false;
    worker.postMessage({ type: "close" });
    // A real timer: this only guards against a worker stuck in native code and must fire whatever clock runs the app.
    const guard = setTimeout(() => {
      this.log.error(`archive worker did not close within ${CLOSE_TIMEOUT_MS / 1000} s; terminating it`);
      void worker.terminate();
    }, CLOSE_TIMEOUT_MS);
    guard.unref();
    await this.exited;
    clearTimeout(guard);
  }

  private warnOnce(key: string, msg: string): void {
    // One line per meter and problem: a decoder bug would otherwise log once per telegram.
    if (this.warned.has(key) || this.warned.size >= 1000) return;
    this.warned.add(key);
    this.log.warn(`${msg} (further occurrences not logged)`);
  }
}

/** Opens an archive file for reading (tests, reports, the CLI); it must exist and be migrated. */
export function openArchiveReadOnly(path: string): BetterSqlite3.Database {
  return openReadOnly(path);
}
