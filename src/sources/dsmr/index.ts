import type { Bus } from "../../bus.js";
import type { DsmrMeterConfig } from "../../config/schema.js";
import type { Reading } from "../../model/types.js";
import { createTransport, DSMR_SERIAL, SerialTransport, type Transport } from "../../transports/index.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { decodeTelegram, type Telegram } from "./decode.js";
import { type FrameEvent, splitTelegrams, TelegramFramer } from "./framer.js";

export interface DsmrSourceOptions {
  clock?: Clock;
  log?: Logger;
  /** Tests may hand in a transport; normally it comes from the configured port. */
  transport?: Transport;
  /** With baud "auto": how long one line setting may go without a valid telegram before the other is tried. */
  autoBaudWindowMs?: number;
  /** How often the frame counters are reported when nothing else changes. */
  statusEveryMs?: number;
}

/**
 * A P1 port: transport → framer → decoder → readings on the bus. It never exits the process and never
 * blocks on an output: it emits and goes back to reading.
 */
export class DsmrSource {
  readonly id: string;
  private readonly transport: Transport;
  private readonly framer: TelegramFramer;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly events: FrameEvent[] = [];
  private online = false;
  private framesReceived = 0;
  private framesRejected = 0;
  private lastInfo = "";
  private lastRejectLog = -Infinity;
  private rejectsSinceLog = 0;
  private autoTimer?: Timer;
  private watchdog?: Timer;
  private statusTimer?: Timer;
  private stopped = false;
  private resolveFinished!: () => void;
  /** Resolves when a file replay has been read to its end (never for a device). */
  readonly finished = new Promise<void>((r) => {
    this.resolveFinished = r;
  });

  constructor(
    private readonly cfg: DsmrMeterConfig,
    private readonly bus: Bus,
    private readonly opts: DsmrSourceOptions = {},
  ) {
    this.id = cfg.id;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger(`dsmr:${cfg.id}`);
    this.framer = new TelegramFramer(cfg.max_telegram_bytes);
    this.transport =
      opts.transport ??
      createTransport(cfg.port, {
        serial: cfg.baud === 9600 ? DSMR_SERIAL.legacy : DSMR_SERIAL.v4plus,
        idleTimeoutMs: cfg.port.startsWith("file:") ? 0 : cfg.timeout * 1000,
        replay: { intervalMs: cfg.replay_interval_ms, loop: cfg.replay_loop, split: splitTelegrams },
        clock: this.clock,
        log: this.log,
      });
    this.transport.on("data", (chunk) => this.onData(chunk));
    this.transport.on("open", () => {
      this.framer.reset();
      this.armAutoBaud();
      this.armWatchdog();
    });
    this.transport.on("close", () => {
      this.framer.reset();
      this.setOnline(false);
    });
    this.transport.on("end", () => {
      this.framer.end(this.events);
      this.drain();
      this.log.info(
        `replay of ${cfg.port} finished: ${this.framesReceived} telegrams, ${this.framesRejected} rejected`,
      );
      this.emitStatus();
      this.resolveFinished();
    });
  }

  get stats(): { framesReceived: number; framesRejected: number; online: boolean } {
    return { framesReceived: this.framesReceived, framesRejected: this.framesRejected, online: this.online };
  }

  start(): void {
    this.log.info(
      `reading ${this.transport.description}${this.cfg.baud === "auto" && this.isSerial() ? " (baud auto)" : ""}`,
    );
    this.transport.start();
    this.scheduleStatus();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
    if (this.statusTimer) this.clock.clearTimeout(this.statusTimer);
    if (this.watchdog) this.clock.clearTimeout(this.watchdog);
    await this.transport.stop();
    this.setOnline(false);
  }

  private isSerial(): boolean {
    return this.transport instanceof SerialTransport;
  }

  private onData(chunk: Buffer): void {
    this.framer.push(chunk, this.events);
    this.drain();
  }

  private drain(): void {
    const events = this.events;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if ("frame" in ev) {
        const r = decodeTelegram(ev.frame, { timezone: this.cfg.timezone });
        if (r.ok) this.accept(r.telegram);
        else this.reject(r.reason);
      } else this.reject(ev.rejected);
    }
    events.length = 0;
  }

  private accept(t: Telegram): void {
    this.framesReceived++;
    if (this.autoTimer) {
      this.clock.clearTimeout(this.autoTimer);
      this.autoTimer = undefined;
    }
    const info = `${t.manufacturer}|${t.model}|${t.equipmentId ?? ""}|${t.version ?? ""}`;
    if (info !== this.lastInfo) {
      this.lastInfo = info;
      this.bus.emit("meterInfo", {
        meterId: this.id,
        manufacturer: t.manufacturer,
        model: t.model,
        ...(t.equipmentId ? { serialNumber: t.equipmentId } : {}),
        ...(t.version ? { swVersion: p1Version(t.version) } : {}),
      });
      this.log.info(
        `meter found: ${t.manufacturer} ${t.model}${t.version ? `, P1 version ${t.version}` : ""}, CRC ${t.crc === "valid" ? "checked" : "not sent (DSMR 2/3)"}`,
      );
    }
    this.setOnline(true);
    this.armWatchdog();
    const reading: Reading = { meterId: this.id, time: t.time ?? this.clock.now(), values: t.values };
    this.bus.emit("reading", reading);
  }

  /**
   * Bytes may keep flowing while no telegram is valid (a loose cable, a dongle sending noise), which a
   * byte-level idle timer does not notice: without a valid telegram for `timeout` s the meter is offline
   * and the port is reopened.
   */
  private armWatchdog(): void {
    if (this.watchdog) this.clock.clearTimeout(this.watchdog);
    if (this.stopped || this.cfg.timeout <= 0 || this.cfg.port.startsWith("file:")) return;
    this.watchdog = this.clock.setTimeout(() => {
      this.watchdog = undefined;
      if (this.stopped) return;
      this.setOnline(false);
      this.transport.reopen(`no valid telegram for ${this.cfg.timeout} s`);
    }, this.cfg.timeout * 1000);
  }

  private reject(reason: string): void {
    this.framesRejected++;
    this.rejectsSinceLog++;
    // One line per minute at most: a meter on the wrong baud rate would otherwise fill the log.
    const now = this.clock.now();
    if (now - this.lastRejectLog >= 60_000) {
      const more = this.rejectsSinceLog > 1 ? ` (${this.rejectsSinceLog - 1} more rejected since the last report)` : "";
      this.log.warn(`telegram rejected: ${reason}${more}; ${this.framesRejected} rejected in all`);
      this.lastRejectLog = now;
      this.rejectsSinceLog = 0;
    }
    this.emitStatus();
  }

  private setOnline(online: boolean): void {
    if (online === this.online) return;
    this.online = online;
    this.emitStatus();
  }

  private emitStatus(): void {
    this.bus.emit("status", {
      meterId: this.id,
      online: this.online,
      framesReceived: this.framesReceived,
      framesRejected: this.framesRejected,
    });
  }

  private scheduleStatus(): void {
    if (this.stopped) return;
    this.statusTimer = this.clock.setTimeout(() => {
      this.emitStatus();
      this.scheduleStatus();
    }, this.opts.statusEveryMs ?? 60_000);
  }

  /**
   * baud "auto": DSMR 4/5 meters talk 115200 8N1, DSMR 2.2/3 ones 9600 7E1. Read at one setting; if no
   * telegram passes its CRC within the window, switch to the other, and keep alternating until one does.
   */
  private armAutoBaud(): void {
    if (this.cfg.baud !== "auto" || !(this.transport instanceof SerialTransport) || this.framesReceived > 0) return;
    if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
    const serial = this.transport;
    this.autoTimer = this.clock.setTimeout(() => {
      this.autoTimer = undefined;
      if (this.stopped || this.framesReceived > 0) return;
      const next = serial.settings.baudRate === DSMR_SERIAL.v4plus.baudRate ? DSMR_SERIAL.legacy : DSMR_SERIAL.v4plus;
      this.log.info(
        `no valid telegram yet; trying ${next.baudRate} baud ${next.dataBits}${next.parity === "even" ? "E" : "N"}1`,
      );
      serial.setSettings(next);
    }, this.opts.autoBaudWindowMs ?? 25_000);
  }
}

/** "50" → "DSMR 5.0", "42" → "DSMR 4.2", Fluvius "50217" → "e-MUCS 5.0.2.17". */
export function p1Version(v: string): string {
  if (/^\d{2}$/.test(v)) return `DSMR ${v[0]}.${v[1]}`;
  if (/^\d{5}$/.test(v)) return `e-MUCS ${v[0]}.${v[1]}.${v[2]}.${v.slice(3)}`;
  return v;
}
