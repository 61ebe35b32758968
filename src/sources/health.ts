import type { Bus } from "../bus.js";
import { createTransport, type SerialSettings, type Transport } from "../transports/index.js";
import type { Clock, Timer } from "../util/clock.js";
import type { Logger } from "../util/log.js";

export interface HealthOptions {
  meterId: string;
  bus: Bus;
  clock: Clock;
  log: Logger;
  transport: Transport;
  /** "telegram", "fragment": how log lines name a frame. */
  frame: string;
  /** Seconds without a valid frame before the meter is offline and the port reopened; 0 = never (file replay). */
  timeoutS: number;
  /** How often the counters are reported when nothing else changes. */
  statusEveryMs?: number;
}

const MAX_RAW = 16 * 1024;

/**
 * What every live source tracks about its meter: online or not, frames received and rejected, and the
 * watchdog. Bytes may keep flowing while nothing valid does (a loose cable, a device spewing noise), which a
 * byte-level idle timer does not notice; without a valid frame for `timeoutS` the meter counts as offline and
 * the port is reopened.
 */
export class SourceHealth {
  online = false;
  framesReceived = 0;
  framesRejected = 0;
  private stopped = false;
  private watchdog?: Timer;
  private statusTimer?: Timer;
  private lastRejectLog = Number.NEGATIVE_INFINITY;
  private rejectsSinceLog = 0;

  constructor(private readonly o: HealthOptions) {}

  start(): void {
    this.stopped = false;
    this.scheduleStatus();
  }

  stop(): void {
    this.stopped = true;
    this.disarm();
    if (this.statusTimer) this.o.clock.clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
    this.setOnline(false);
  }

  /** A valid frame: the meter is there. `raw`: its text, for the web page's diagnosis. */
  received(raw?: Buffer): void {
    this.framesReceived++;
    if (raw) this.frame(true, undefined, raw);
    this.setOnline(true);
    this.arm();
  }

  /** A frame that failed its checks; logged at most once a minute, so a wrong baud rate cannot fill the log. */
  rejected(reason: string, raw?: Buffer): void {
    this.framesRejected++;
    this.frame(false, reason, raw);
    this.rejectsSinceLog++;
    const now = this.o.clock.now();
    if (now - this.lastRejectLog >= 60_000) {
      const more = this.rejectsSinceLog > 1 ? ` (${this.rejectsSinceLog - 1} more rejected since the last report)` : "";
      this.o.log.warn(`${this.o.frame} rejected: ${reason}${more}; ${this.framesRejected} rejected in all`);
      this.lastRejectLog = now;
      this.rejectsSinceLog = 0;
    }
    this.emit();
  }

  /** The port opened: the watchdog starts counting. */
  opened(): void {
    this.arm();
  }

  /** The port closed: offline until frames arrive again. */
  closed(): void {
    this.disarm();
    this.setOnline(false);
  }

  setOnline(online: boolean): void {
    if (online === this.online) return;
    this.online = online;
    this.emit();
  }

  emit(): void {
    this.o.bus.emit("status", {
      meterId: this.o.meterId,
      online: this.online,
      framesReceived: this.framesReceived,
      framesRejected: this.framesRejected,
    });
  }

  /** The frame and its fate on the bus, its text at most MAX_RAW bytes (a page shows it, nothing stores it). */
  private frame(ok: boolean, reason: string | undefined, raw: Buffer | undefined): void {
    this.o.bus.emit("frame", {
      meterId: this.o.meterId,
      time: this.o.clock.now(),
      ok,
      ...(reason === undefined ? {} : { reason }),
      ...(raw ? { raw: raw.subarray(0, MAX_RAW).toString("latin1") } : {}),
    });
  }

  private arm(): void {
    this.disarm();
    if (this.stopped || this.o.timeoutS <= 0) return;
    this.watchdog = this.o.clock.setTimeout(() => {
      this.watchdog = undefined;
      if (this.stopped) return;
      this.setOnline(false);
      this.o.transport.reopen(`no valid ${this.o.frame} for ${this.o.timeoutS} s`);
    }, this.o.timeoutS * 1000);
  }

  private disarm(): void {
    if (this.watchdog) this.o.clock.clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  private scheduleStatus(): void {
    if (this.stopped) return;
    this.statusTimer = this.o.clock.setTimeout(() => {
      this.emit();
      this.scheduleStatus();
    }, this.o.statusEveryMs ?? 60_000);
  }
}

/**
 * The connection and health of a meter read live through a port (DSMR, HAN), set up alike: a serial port, a TCP
 * dongle or a capture replayed (`file:`, which never times out), and the health that watches it.
 */
export function livePort(
  cfg: { id: string; port: string; timeout: number; replay_interval_ms: number; replay_loop: boolean },
  bus: Bus,
  how: {
    clock: Clock;
    log: Logger;
    /** A transport of the caller's (tests); else one for `cfg.port`. */
    transport?: Transport;
    serial: SerialSettings;
    /** Cuts a capture into the frames replayed one per interval. */
    split: (whole: Buffer) => Buffer[];
    frame: string;
    statusEveryMs?: number;
  },
): { transport: Transport; health: SourceHealth; replay: boolean } {
  const replay = cfg.port.startsWith("file:");
  const transport =
    how.transport ??
    createTransport(cfg.port, {
      serial: how.serial,
      idleTimeoutMs: replay ? 0 : cfg.timeout * 1000,
      replay: { intervalMs: cfg.replay_interval_ms, loop: cfg.replay_loop, split: how.split },
      clock: how.clock,
      log: how.log,
    });
  const health = new SourceHealth({
    meterId: cfg.id,
    bus,
    clock: how.clock,
    log: how.log,
    transport,
    frame: how.frame,
    timeoutS: replay ? 0 : cfg.timeout,
    statusEveryMs: how.statusEveryMs,
  });
  return { transport, health, replay };
}
