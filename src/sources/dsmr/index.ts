import type { Bus } from "../../bus.js";
import type { DsmrMeterConfig } from "../../config/schema.js";
import type { Reading } from "../../model/types.js";
import { createTransport, DSMR_SERIAL, SerialTransport, type Transport } from "../../transports/index.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { SourceHealth } from "../health.js";
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
  private readonly health: SourceHealth;
  private lastInfo = "";
  private autoTimer?: Timer;
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
    this.health = new SourceHealth({
      meterId: cfg.id,
      bus,
      clock: this.clock,
      log: this.log,
      transport: this.transport,
      frame: "telegram",
      timeoutS: cfg.port.startsWith("file:") ? 0 : cfg.timeout,
      statusEveryMs: opts.statusEveryMs,
    });
    this.transport.on("data", (chunk) => this.onData(chunk));
    this.transport.on("open", () => {
      this.framer.reset();
      this.armAutoBaud();
      this.health.opened();
    });
    this.transport.on("close", () => {
      this.framer.reset();
      this.health.closed();
    });
    this.transport.on("end", () => {
      this.framer.end(this.events);
      this.drain();
      const h = this.health;
      this.log.info(`replay of ${cfg.port} finished: ${h.framesReceived} telegrams, ${h.framesRejected} rejected`);
      h.emit();
      this.resolveFinished();
    });
  }

  get stats(): { framesReceived: number; framesRejected: number; online: boolean } {
    const h = this.health;
    return { framesReceived: h.framesReceived, framesRejected: h.framesRejected, online: h.online };
  }

  start(): void {
    this.log.info(
      `reading ${this.transport.description}${this.cfg.baud === "auto" && this.isSerial() ? " (baud auto)" : ""}`,
    );
    this.transport.start();
    this.health.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
    this.health.stop();
    await this.transport.stop();
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
        else this.health.rejected(r.reason);
      } else this.health.rejected(ev.rejected);
    }
    events.length = 0;
  }

  private accept(t: Telegram): void {
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
    this.health.received();
    const reading: Reading = { meterId: this.id, time: t.time ?? this.clock.now(), values: t.values };
    this.bus.emit("reading", reading);
  }

  /**
   * baud "auto": DSMR 4/5 meters talk 115200 8N1, DSMR 2.2/3 ones 9600 7E1. Read at one setting; if no
   * telegram passes its CRC within the window, switch to the other, and keep alternating until one does.
   */
  private armAutoBaud(): void {
    if (this.cfg.baud !== "auto" || !(this.transport instanceof SerialTransport) || this.health.framesReceived > 0)
      return;
    if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
    const serial = this.transport;
    this.autoTimer = this.clock.setTimeout(() => {
      this.autoTimer = undefined;
      if (this.stopped || this.health.framesReceived > 0) return;
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
