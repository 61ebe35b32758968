import type { EventEmitter } from "node:events";
import type { Clock } from "../util/clock.js";
import type { Logger } from "../util/log.js";

export interface SerialSettings {
  baudRate: number;
  dataBits: 7 | 8;
  parity: "none" | "even";
  stopBits: 1;
}

/** The two line settings P1 ports use: DSMR 4 and later, and DSMR 2.2/3 (and most pre-2014 meters). */
export const DSMR_SERIAL: { readonly v4plus: SerialSettings; readonly legacy: SerialSettings } = Object.freeze({
  v4plus: Object.freeze({ baudRate: 115200, dataBits: 8, parity: "none", stopBits: 1 }),
  legacy: Object.freeze({ baudRate: 9600, dataBits: 7, parity: "even", stopBits: 1 }),
});

export interface TransportEvents {
  data: [Buffer];
  open: [];
  /**
   * The transport became unavailable: it was open and closed, or (once per outage) it could not be opened.
   * Retries follow unless stop() caused it.
   */
  close: [reason: string];
  /** A file replay finished (loop off). Nothing further happens until start() is called again. */
  end: [];
}

export interface Transport extends EventEmitter<TransportEvents> {
  readonly description: string;
  readonly isOpen: boolean;
  /** Opens; on failure or loss keeps retrying with capped exponential backoff until stop(). */
  start(): void;
  /** Closes and cancels retries; idempotent; resolves once the device is released. */
  stop(): Promise<void>;
  /** Closes and reopens now (used by callers after a silence watchdog or to change serial settings). */
  reopen(reason: string): void;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export interface ReplayOptions {
  /** Pause between two pieces; 0 = as fast as possible, yielding to the event loop between pieces. */
  intervalMs: number;
  loop: boolean;
  /** Cuts the file into the pieces emitted one per interval; default: the whole file is one piece. */
  split?: (whole: Buffer) => Buffer[];
}

export interface TransportOptions {
  /** Default DSMR_SERIAL.v4plus. */
  serial?: SerialSettings;
  /** Default 1000 → 30000 ms, doubling, each delay shortened by up to a fifth at random. */
  backoff?: BackoffOptions;
  /** 0/undefined = off; no data for this long while open → reopen("no data for N s"). */
  idleTimeoutMs?: number;
  replay?: ReplayOptions;
  clock?: Clock;
  log?: Logger;
}
