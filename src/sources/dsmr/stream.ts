import { GloDecryptor, type OpenResult } from "../glo-cipher.js";
import { type DecodeOptions, decodeTelegram, type Telegram } from "./decode.js";
import { type FrameEvent, TelegramFramer } from "./framer.js";

/**
 * One P1 stream, from bytes to telegrams: the framer, the decryption of encrypted frames with the meter's key and
 * frame counter, and what a stream teaches about its meter. A telegram that ends without '!' (cut by the next
 * telegram or by a quiet line) is taken only from a meter that has never ended one with '!' (some Iskra MT382
 * send none); from any other meter it is a truncated telegram. The same reader serves the bridge and `decode`.
 */
export type StreamItem =
  | { ok: true; telegram: Telegram; bytes: number; raw?: Buffer }
  | { ok: false; reason: string; bytes: number; noKey?: boolean; raw?: Buffer };

export interface DsmrStreamOptions {
  timezone?: string;
  raw?: boolean;
  maxBytes?: number;
  /** AES-128-GCM key (16 bytes) for encrypted meters, and the authentication key when the grid operator gave one. */
  key?: Buffer;
  aad?: Buffer;
}

export const NO_KEY_REASON =
  "this meter sends encrypted telegrams and no key is set: set the meter's `key` (and `aad` if you were given an authentication key); your grid operator gives them to you on request";

export class DsmrStream {
  private readonly framer: TelegramFramer;
  private readonly decryptor?: GloDecryptor;
  private readonly events: FrameEvent[] = [];
  private readonly decodeOpts: DecodeOptions;
  /** The meter has ended a telegram with '!' (so one without is a cut one). */
  private terminated = false;
  /** The meter has sent a CRC (or encrypted frames): a telegram without one is a damaged one. */
  private checked = false;
  /** Header of the last telegram that came without '!': one is taken only when the one before it came so too. */
  private lastUnterminated?: string;

  constructor(opts: DsmrStreamOptions = {}) {
    if (opts.key) this.decryptor = new GloDecryptor(opts.key, opts.aad);
    const d = this.decryptor;
    this.framer = new TelegramFramer(
      opts.maxBytes,
      d
        ? (frame) => {
            const o = d.open(frame);
            return o.ok ? { ok: true, value: o } : { ok: false, reason: `encrypted telegram refused: ${o.reason}` };
          }
        : undefined,
    );
    this.decodeOpts = { timezone: opts.timezone, raw: opts.raw };
  }

  /** True while a text telegram is held without its '!': a quiet line should then call flush(). */
  get pendingText(): boolean {
    return this.framer.pendingText;
  }

  push(chunk: Uint8Array, out: StreamItem[] = []): StreamItem[] {
    this.framer.push(chunk, this.events);
    return this.drain(out, "cut");
  }

  /** The line went quiet: a telegram waiting for '!' ends here. */
  flush(out: StreamItem[] = []): StreamItem[] {
    this.framer.flush(this.events);
    return this.drain(out, "quiet");
  }

  end(out: StreamItem[] = []): StreamItem[] {
    this.framer.end(this.events);
    return this.drain(out, "end");
  }

  /** The port was reopened: bytes held so far belong to nobody. What was learnt about the meter stays. */
  reset(): void {
    this.framer.reset();
  }

  private drain(out: StreamItem[], why: "cut" | "quiet" | "end"): StreamItem[] {
    const events = this.events;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      // The telegram's text rides along for the web page (for an encrypted frame, the text it held).
      if ("frame" in ev) out.push({ ...this.text(ev.frame, ev.unterminated === true, why), raw: ev.frame });
      else if ("encrypted" in ev) out.push(this.encrypted(ev.encrypted, ev.opened as OpenResult | undefined));
      else out.push({ ok: false, reason: ev.rejected, bytes: ev.bytes });
    }
    events.length = 0;
    return out;
  }

  private text(frame: Buffer, unterminated: boolean, why: "cut" | "quiet" | "end"): StreamItem {
    if (unterminated && this.terminated)
      return {
        ok: false,
        bytes: frame.length,
        reason:
          why === "cut"
            ? "truncated telegram: a new one started before '!'"
            : why === "quiet"
              ? "truncated telegram: the line went quiet before '!'"
              : "incomplete telegram at end of input (no '!' end marker)",
      };
    const r = decodeTelegram(frame, unterminated ? { ...this.decodeOpts, unterminated } : this.decodeOpts);
    if (!r.ok) return { ok: false, reason: r.reason, bytes: frame.length };
    const t = r.telegram;
    if (t.crc === "absent" && this.checked)
      return {
        ok: false,
        reason: "telegram without its CRC from a meter that sends one: damaged",
        bytes: frame.length,
      };
    if (unterminated) {
      // A telegram cut short looks the same as one from a meter that sends no '!'; only the second such telegram
      // in a row from the same meter shows which it is.
      const first = this.lastUnterminated !== t.header;
      this.lastUnterminated = t.header;
      if (first)
        return {
          ok: false,
          reason: "telegram without '!': taken from the next one on if this meter always ends its telegrams so",
          bytes: frame.length,
        };
    } else {
      this.terminated = true;
      this.lastUnterminated = undefined;
    }
    if (t.crc !== "absent") this.checked = true;
    return { ok: true, telegram: t, bytes: frame.length };
  }

  private encrypted(frame: Buffer, o: OpenResult | undefined): StreamItem {
    if (!o) {
      // A meter that sent plain telegrams does not start encrypting on its own: that was noise.
      if (this.terminated)
        return { ok: false, reason: "an encrypted frame among plain telegrams", bytes: frame.length };
      return { ok: false, reason: NO_KEY_REASON, bytes: frame.length, noKey: true };
    }
    if (!o.ok) return { ok: false, reason: `encrypted telegram refused: ${o.reason}`, bytes: frame.length };
    const p = o.plaintext;
    const start = p.indexOf(0x2f);
    if (start < 0) return { ok: false, reason: "decrypted frame holds no telegram", bytes: frame.length };
    const r = decodeTelegram(p.subarray(start), { ...this.decodeOpts, authenticated: true });
    if (!r.ok) return { ok: false, reason: `decrypted telegram: ${r.reason}`, bytes: frame.length };
    this.terminated = true;
    this.checked = true;
    return { ok: true, telegram: r.telegram, bytes: frame.length, raw: p.subarray(start) };
  }
}
