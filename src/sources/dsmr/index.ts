import type { Bus } from "../../bus.js";
import type { DsmrMeterConfig } from "../../config/schema.js";
import type { Reading } from "../../model/types.js";
import { DSMR_SERIAL, SerialTransport, type Transport } from "../../transports/index.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { keyBytes } from "../glo-cipher.js";
import { livePort, type SourceHealth } from "../health.js";
import { ShareServer } from "../share.js";
import type { Telegram } from "./decode.js";
import { splitTelegrams } from "./framer.js";
import { DsmrStream, type StreamItem } from "./stream.js";

export interface DsmrSourceOptions {
  clock?: Clock;
  log?: Logger;
  /** Tests may hand in a transport; normally it comes from the configured port. */
  transport?: Transport;
  /** With baud "auto": how long one line setting may go without a valid telegram before the other is tried. */
  autoBaudWindowMs?: number;
  /** How often the frame counters are reported when nothing else changes. */
  statusEveryMs?: number;
  /** How long the line must be quiet before a telegram still waiting for its '!' counts as ended. */
  quietGapMs?: number;
}

/** A meter without CRC is known by its header once the same one came this many times in a row. */
const STABLE_AFTER = 2;

/**
 * A P1 port: transport → framer → decoder → readings on the bus. It never exits the process and never
 * blocks on an output: it emits and goes back to reading.
 */
export class DsmrSource {
  readonly id: string;
  private readonly transport: Transport;
  private readonly stream: DsmrStream;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly items: StreamItem[] = [];
  private readonly health: SourceHealth;
  /** The meter's identity (manufacturer, model, serial, version) once stable, and a new one being seen. */
  private identity = "";
  private candidate = "";
  private candidateCount = 0;
  /** baud "auto" has found the line setting (a telegram with a CRC, or a stable identity without one). */
  private settled = false;
  private noKeyLogged = false;
  private quietTimer?: Timer;
  /** `share`: the raw bytes to other programs over TCP. */
  private readonly share?: ShareServer;
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
    this.stream = new DsmrStream({
      timezone: cfg.timezone,
      maxBytes: cfg.max_telegram_bytes,
      key: keyBytes(cfg.key),
      aad: keyBytes(cfg.aad),
    });
    ({ transport: this.transport, health: this.health } = livePort(cfg, bus, {
      clock: this.clock,
      log: this.log,
      transport: opts.transport,
      serial: cfg.baud === 9600 ? DSMR_SERIAL.legacy : DSMR_SERIAL.v4plus,
      split: splitTelegrams,
      frame: "telegram",
      statusEveryMs: opts.statusEveryMs,
    }));
    this.share = ShareServer.of(cfg.share, this.log);
    this.transport.on("data", (chunk) => this.onData(chunk));
    this.transport.on("open", () => {
      this.stream.reset();
      this.armAutoBaud();
      this.health.opened();
    });
    this.transport.on("close", () => {
      this.clearQuiet();
      this.stream.reset();
      this.health.closed();
    });
    this.transport.on("end", () => {
      this.clearQuiet();
      this.stream.end(this.items);
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
    this.share
      ?.start()
      .catch((err: Error) =>
        this.log.error(`cannot share the meter's data on port ${this.cfg.share?.port}: ${err.message}`),
      );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
    this.clearQuiet();
    await this.share?.stop();
    this.health.stop();
    await this.transport.stop();
  }

  private isSerial(): boolean {
    return this.transport instanceof SerialTransport;
  }

  private onData(chunk: Buffer): void {
    this.share?.write(chunk);
    this.stream.push(chunk, this.items);
    this.drain();
    // A meter that sends no '!' ends its telegram by going quiet (and by starting the next one).
    if (this.stream.pendingText) {
      this.clearQuiet();
      this.quietTimer = this.clock.setTimeout(() => {
        this.quietTimer = undefined;
        if (this.stopped) return;
        this.stream.flush(this.items);
        this.drain();
      }, this.opts.quietGapMs ?? 1500);
    } else this.clearQuiet();
  }

  private clearQuiet(): void {
    if (this.quietTimer) this.clock.clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
  }

  private drain(): void {
    const items = this.items;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (it.ok) this.accept(it.telegram, it.raw);
      else {
        if (it.noKey && !this.noKeyLogged) {
          this.noKeyLogged = true;
          this.log.error(`meter ${this.id}: ${it.reason}`);
        }
        this.health.rejected(it.noKey ? "encrypted telegram and no key set" : it.reason, it.raw);
      }
    }
    items.length = 0;
  }

  private accept(t: Telegram, raw?: Buffer): void {
    const info = `${t.manufacturer}|${t.model}|${t.equipmentId ?? ""}|${t.version ?? ""}`;
    // A CRC (or the tag of an encrypted frame) vouches for the telegram; without one, an identity counts once it
    // repeats, so line noise shaped like a header never renames the meter or re-sends its discovery.
    const trusted = t.crc !== "absent";
    if (info !== this.identity) {
      if (info === this.candidate) this.candidateCount++;
      else {
        this.candidate = info;
        this.candidateCount = 1;
      }
      if (!trusted && this.candidateCount < STABLE_AFTER) {
        if (this.identity !== "")
          this.health.rejected("telegram from another meter header than this one's; taken once it repeats", raw);
        return;
      }
      this.candidate = "";
      this.candidateCount = 0;
      const changed = this.identity !== "";
      this.identity = info;
      this.bus.emit("meterInfo", {
        meterId: this.id,
        manufacturer: t.manufacturer,
        model: t.model,
        ...(t.equipmentId ? { serialNumber: t.equipmentId } : {}),
        ...(t.version ? { swVersion: p1Version(t.version) } : {}),
      });
      this.log.info(
        `${changed ? "meter changed" : "meter found"}: ${t.manufacturer} ${t.model}${t.version ? `, P1 version ${t.version}` : ""}, ${t.crc === "valid" ? "CRC checked" : t.crc === "encrypted" ? "encrypted, key accepted" : "no CRC sent (DSMR 2/3)"}`,
      );
    }
    if (!this.settled) {
      this.settled = true;
      if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
      this.autoTimer = undefined;
    }
    this.health.received(raw);
    const reading: Reading = { meterId: this.id, time: t.time ?? this.clock.now(), values: t.values };
    this.bus.emit("reading", reading);
  }

  /**
   * baud "auto": DSMR 4/5 meters talk 115200 8N1, DSMR 2.2/3 ones 9600 7E1. Read at one setting; if no
   * telegram passes its CRC within the window, switch to the other, and keep alternating until one does.
   */
  private armAutoBaud(): void {
    if (this.cfg.baud !== "auto" || !(this.transport instanceof SerialTransport) || this.settled) return;
    if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
    const serial = this.transport;
    this.autoTimer = this.clock.setTimeout(() => {
      this.autoTimer = undefined;
      if (this.stopped || this.settled) return;
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
