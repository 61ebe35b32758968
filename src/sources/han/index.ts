import type { Bus } from "../../bus.js";
import type { HanMeterConfig } from "../../config/schema.js";
import type { MeterInfo, Reading } from "../../model/types.js";
import { type SerialSettings, SerialTransport, type Transport } from "../../transports/index.js";
import { formatSerial } from "../../transports/serial.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { keyBytes } from "../glo-cipher.js";
import { livePort, type SourceHealth } from "../health.js";
import { HexText, looksLikeHex } from "../hex-input.js";
import { ShareServer } from "../share.js";
import { splitCapture } from "./capture.js";
import type { HanTelegram } from "./decode.js";
import { type HanItem, HanStream } from "./stream.js";

/** The line settings of HAN ports, in the order baud "auto" tries them. */
export const HAN_SERIAL: readonly SerialSettings[] = Object.freeze([
  { baudRate: 2400, dataBits: 8, parity: "even", stopBits: 1 }, // Aidon, Kaifa (Norway), Austrian M-Bus
  { baudRate: 2400, dataBits: 8, parity: "none", stopBits: 1 }, // Kamstrup (Norway, Denmark)
  { baudRate: 115200, dataBits: 8, parity: "none", stopBits: 1 }, // Sweden, Slovenia
  { baudRate: 9600, dataBits: 8, parity: "none", stopBits: 1 },
]);

export function hanSerial(cfg: Pick<HanMeterConfig, "baud" | "parity">): SerialSettings {
  if (cfg.baud === "auto") return { ...HAN_SERIAL[0]! };
  return { baudRate: cfg.baud, dataBits: 8, parity: cfg.parity ?? (cfg.baud === 2400 ? "even" : "none"), stopBits: 1 };
}

export interface HanSourceOptions {
  clock?: Clock;
  log?: Logger;
  /** Tests may hand in a transport; normally it comes from the configured port. */
  transport?: Transport;
  /** With baud "auto": how long one line setting may go without a valid frame before the next is tried. */
  autoBaudWindowMs?: number;
  statusEveryMs?: number;
}

/** An APDU as spaced hex text, as the web page shows the last frame received (the health keeps its start). */
function spacedHex(b: Buffer): Buffer {
  return Buffer.from(
    b
      .subarray(0, 2048)
      .toString("hex")
      .replace(/(..)(?!$)/g, "$1 "),
    "latin1",
  );
}

/** A meter clock further than this from the bridge's is not believed (a meter whose clock was never set). */
const CLOCK_TRUST_MS = 24 * 3600_000;

/**
 * A HAN port: transport → framing → (decryption) → DLMS decoder → readings on the bus. It never exits the process
 * and never blocks on an output: it emits and goes back to reading.
 */
export class HanSource {
  readonly id: string;
  private readonly transport: Transport;
  private readonly stream: HanStream;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly health: SourceHealth;
  private readonly items: HanItem[] = [];
  private readonly replay: boolean;
  /** `share`: the raw bytes to other programs over TCP. */
  private readonly share?: ShareServer;
  /** A capture of hex text (file replay): turned back into bytes. */
  private hex?: HexText | null;
  private identity = "";
  private settled = false;
  private autoIndex = 0;
  private autoTimer?: Timer;
  private noKeyLogged = false;
  private clockWarned = false;
  private lastTime = Number.NEGATIVE_INFINITY;
  private stopped = false;
  private resolveFinished!: () => void;
  /** Resolves when a file replay has been read to its end (never for a device). */
  readonly finished = new Promise<void>((r) => {
    this.resolveFinished = r;
  });

  constructor(
    private readonly cfg: HanMeterConfig,
    private readonly bus: Bus,
    private readonly opts: HanSourceOptions = {},
  ) {
    this.id = cfg.id;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger(`han:${cfg.id}`);
    this.stream = new HanStream({
      timezone: cfg.timezone,
      key: keyBytes(cfg.key),
      aad: keyBytes(cfg.aad),
      framing: cfg.framing,
    });
    ({
      transport: this.transport,
      health: this.health,
      replay: this.replay,
    } = livePort(cfg, bus, {
      clock: this.clock,
      log: this.log,
      transport: opts.transport,
      serial: hanSerial(cfg),
      split: splitCapture,
      frame: "frame",
      statusEveryMs: opts.statusEveryMs,
    }));
    this.share = ShareServer.of(cfg.share, this.log);
    this.transport.on("data", (chunk) => this.onData(chunk));
    this.transport.on("open", () => {
      this.stream.reset();
      this.hex = undefined;
      this.armAutoBaud();
      this.health.opened();
    });
    this.transport.on("close", () => {
      this.stream.reset();
      this.health.closed();
    });
    this.transport.on("end", () => {
      this.stream.end(this.items);
      this.drain();
      const h = this.health;
      this.log.info(`replay of ${cfg.port} finished: ${h.framesReceived} frames, ${h.framesRejected} rejected`);
      h.emit();
      this.resolveFinished();
    });
  }

  get stats(): { framesReceived: number; framesRejected: number; online: boolean } {
    const h = this.health;
    return { framesReceived: h.framesReceived, framesRejected: h.framesRejected, online: h.online };
  }

  start(): void {
    const auto = this.cfg.baud === "auto" && this.transport instanceof SerialTransport;
    this.log.info(`reading ${this.transport.description}, ${this.stream.framing} frames${auto ? " (baud auto)" : ""}`);
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
    await this.share?.stop();
    this.health.stop();
    await this.transport.stop();
  }

  private onData(chunk: Buffer): void {
    this.share?.write(chunk);
    let bytes = chunk;
    if (this.replay) {
      if (this.hex === undefined) this.hex = looksLikeHex(chunk) ? new HexText() : null;
      if (this.hex) bytes = this.hex.bytes(chunk);
    }
    this.stream.push(bytes, this.items);
    this.drain();
  }

  private drain(): void {
    for (const it of this.items) {
      const raw = it.apdu && spacedHex(it.apdu);
      if (it.ok) this.accept(it.telegram, raw);
      else {
        if (it.noKey && !this.noKeyLogged) {
          this.noKeyLogged = true;
          this.log.error(`meter ${this.id}: ${it.reason}`);
        }
        this.health.rejected(it.noKey ? "encrypted frame and no key set" : it.reason, raw);
      }
    }
    this.items.length = 0;
  }

  private accept(t: HanTelegram, raw?: Buffer): void {
    if (!this.settled) {
      this.settled = true;
      if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
      this.autoTimer = undefined;
      if (this.transport instanceof SerialTransport && this.cfg.baud === "auto")
        this.log.info(`frames found at ${formatSerial(this.transport.settings)}`);
    }
    this.health.received(raw);
    this.meterInfo(t);
    if (Object.keys(t.values).length === 0) return;
    const now = this.clock.now();
    let time = now;
    if (t.time !== undefined) {
      if (this.replay || Math.abs(t.time - now) <= CLOCK_TRUST_MS) time = t.time;
      else if (!this.clockWarned) {
        this.clockWarned = true;
        this.log.warn(
          `the meter's clock says ${new Date(t.time).toISOString()}, more than a day off; its readings are timed on receipt`,
        );
      }
    }
    // Lists without a clock are timed on receipt, lists with one by the meter: on a live port time never runs
    // backwards (a replay keeps the capture's times, also when it starts over).
    if (!this.replay) {
      time = Math.max(time, this.lastTime);
      this.lastTime = time;
    }
    const reading: Reading = { meterId: this.id, time, values: { ...t.values } };
    this.bus.emit("reading", reading);
  }

  private meterInfo(t: HanTelegram): void {
    const m = t.meter;
    if (!m.meterId && !m.meterType && !m.version && !m.name) return;
    const key = `${m.manufacturer ?? ""}|${m.meterType ?? ""}|${m.meterId ?? ""}|${m.version ?? ""}|${m.name ?? ""}`;
    if (key === this.identity) return;
    const changed = this.identity !== "";
    this.identity = key;
    const info: MeterInfo = { meterId: this.id, manufacturer: m.manufacturer ?? "HAN meter" };
    const model = m.meterType ?? m.name;
    if (model) info.model = model;
    if (m.meterId) info.serialNumber = m.meterId;
    if (m.version) info.swVersion = m.version;
    this.bus.emit("meterInfo", info);
    this.log.info(
      `${changed ? "meter changed" : "meter found"}: ${info.manufacturer}${model ? ` ${model}` : ""}${m.version ? `, list ${m.version}` : ""}${t.encrypted ? ", encrypted, key accepted" : ""}`,
    );
  }

  /** baud "auto": try each HAN line setting in turn until a frame passes its checks. */
  private armAutoBaud(): void {
    if (this.cfg.baud !== "auto" || !(this.transport instanceof SerialTransport) || this.settled) return;
    if (this.autoTimer) this.clock.clearTimeout(this.autoTimer);
    const serial = this.transport;
    this.autoTimer = this.clock.setTimeout(() => {
      this.autoTimer = undefined;
      if (this.stopped || this.settled) return;
      this.autoIndex = (this.autoIndex + 1) % HAN_SERIAL.length;
      const next = HAN_SERIAL[this.autoIndex]!;
      this.log.info(`no valid frame yet; trying ${formatSerial(next)}`);
      serial.setSettings(next);
    }, this.opts.autoBaudWindowMs ?? 25_000);
  }
}
