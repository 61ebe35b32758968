import { GloDecryptor } from "../glo-cipher.js";
import { DATA_NOTIFICATION, decodeNotification, GLO_CIPHERING, type HanTelegram } from "./decode.js";
import type { FrameEvent, HanFramer } from "./framing.js";
import { HdlcFramer } from "./hdlc.js";
import { MbusFramer } from "./mbus.js";

/**
 * One HAN stream, from bytes to telegrams: the framing, the decryption of general-glo-ciphering APDUs with the
 * meter's key and frame counter, and the data notification inside. The same reader serves the bridge and `decode`.
 */
export type HanItem =
  | { ok: true; telegram: HanTelegram; bytes: number; apdu?: Buffer }
  | { ok: false; reason: string; bytes: number; noKey?: boolean; apdu?: Buffer };

export type HanFraming = "auto" | "hdlc" | "mbus";

export interface HanStreamOptions {
  timezone?: string;
  /** AES-128-GCM key (16 bytes) of an encrypted meter, and the authentication key when the grid operator gave one. */
  key?: Buffer;
  aad?: Buffer;
  /** HDLC, wired M-Bus long frames (Austria), or auto (default): whichever first gives a message. */
  framing?: HanFraming;
}

export const NO_KEY_REASON =
  "this meter sends encrypted frames and no key is set: set the meter's `key` (and `aad` if you were given an authentication key); your grid operator gives them to you on request";

export function createFramer(framing: HanFraming = "auto"): HanFramer {
  if (framing === "mbus") return new MbusFramer();
  if (framing === "hdlc") return new HdlcFramer();
  return new AutoFramer();
}

/**
 * Both framings on the same bytes until one of them gives a whole message; from then on that one alone. Until
 * then, what HDLC (by far the more common) rejects is reported.
 */
export class AutoFramer implements HanFramer {
  private readonly hdlc = new HdlcFramer();
  private readonly mbus = new MbusFramer();
  private chosen?: HanFramer;

  get name(): string {
    return this.chosen?.name ?? "HDLC or M-Bus";
  }

  push(chunk: Uint8Array, out: FrameEvent[]): void {
    if (this.chosen) {
      this.chosen.push(chunk, out);
      return;
    }
    const m: FrameEvent[] = [];
    this.mbus.push(chunk, m);
    const h: FrameEvent[] = [];
    this.hdlc.push(chunk, h);
    const found = (evs: FrameEvent[]) => evs.some((e) => "apdu" in e);
    if (found(h)) this.chosen = this.hdlc;
    else if (found(m)) this.chosen = this.mbus;
    out.push(...(this.chosen === this.mbus ? m : h));
    if (this.chosen) (this.chosen === this.hdlc ? this.mbus : this.hdlc).reset();
  }

  end(out: FrameEvent[]): void {
    if (this.chosen) {
      this.chosen.end(out);
      return;
    }
    const m: FrameEvent[] = [];
    this.mbus.end(m);
    const h: FrameEvent[] = [];
    this.hdlc.end(h);
    out.push(...(m.some((e) => "apdu" in e) && !h.some((e) => "apdu" in e) ? m : h));
  }

  /** A reopened port may be another meter: the choice is made again. */
  reset(): void {
    this.chosen = undefined;
    this.hdlc.reset();
    this.mbus.reset();
  }
}

export class HanStream {
  private readonly framer: HanFramer;
  private readonly decryptor?: GloDecryptor;
  private readonly events: FrameEvent[] = [];
  private readonly timezone?: string;

  constructor(opts: HanStreamOptions = {}) {
    this.framer = createFramer(opts.framing);
    if (opts.key) this.decryptor = new GloDecryptor(opts.key, opts.aad);
    this.timezone = opts.timezone;
  }

  get framing(): string {
    return this.framer.name;
  }

  push(chunk: Uint8Array, out: HanItem[] = []): HanItem[] {
    this.framer.push(chunk, this.events);
    return this.drain(out);
  }

  end(out: HanItem[] = []): HanItem[] {
    this.framer.end(this.events);
    return this.drain(out);
  }

  /** The port was reopened: bytes held so far belong to nobody. The frame counter stays. */
  reset(): void {
    this.framer.reset();
  }

  private drain(out: HanItem[]): HanItem[] {
    for (const ev of this.events) {
      if ("rejected" in ev) out.push({ ok: false, reason: ev.rejected, bytes: ev.bytes });
      else out.push(this.apdu(ev.apdu, ev.bytes));
    }
    this.events.length = 0;
    return out;
  }

  private apdu(apdu: Buffer, bytes: number): HanItem {
    const r = this.open(apdu, bytes);
    r.apdu = apdu;
    return r;
  }

  private open(apdu: Buffer, bytes: number): HanItem {
    if (apdu[0] !== GLO_CIPHERING) {
      const r = decodeNotification(apdu, { timezone: this.timezone });
      return r.ok ? { ok: true, telegram: r.telegram, bytes } : { ok: false, reason: r.reason, bytes };
    }
    if (!this.decryptor) return { ok: false, reason: NO_KEY_REASON, bytes, noKey: true };
    const o = this.decryptor.open(apdu);
    if (!o.ok) return { ok: false, reason: `encrypted frame refused: ${o.reason}`, bytes };
    if (o.plaintext[0] !== DATA_NOTIFICATION)
      return { ok: false, reason: "the decrypted frame holds no data notification", bytes };
    const r = decodeNotification(o.plaintext, { timezone: this.timezone, encrypted: true });
    return r.ok
      ? { ok: true, telegram: r.telegram, bytes }
      : { ok: false, reason: `decrypted frame: ${r.reason}`, bytes };
  }
}
