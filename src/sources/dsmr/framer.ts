/**
 * Cuts telegrams out of a raw byte stream: a frame starts at '/' and ends after '!' plus its CRC
 * digits and the line end. Garbage before or between telegrams (a gateway's trailer, 0xFF fill,
 * the tail of a telegram we joined halfway) is skipped; a telegram cut short by a new '/' at a line
 * start, or longer than the size cap, is rejected with a reason. Works on bytes, never on text, so a
 * non-ASCII byte is just a byte.
 */
export type FrameEvent = { frame: Buffer } | { rejected: string; bytes: number };

const SLASH = 0x2f;
const BANG = 0x21;
const LF = 0x0a;
const CR = 0x0d;

export class TelegramFramer {
  private buf: Buffer = Buffer.alloc(0);
  /** Offset of '!' in buf once seen, else -1. */
  private bang = -1;
  private scanned = 0;
  /** Bytes skipped outside any telegram since the last frame (reported, not counted as rejects). */
  garbageBytes = 0;

  constructor(private readonly maxBytes = 8192) {}

  push(chunk: Uint8Array, out: FrameEvent[] = []): FrameEvent[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    this.scan(out, false);
    return out;
  }

  /** End of input (file replay, decode CLI): a telegram that ended with its CRC but no newline is complete. */
  end(out: FrameEvent[] = []): FrameEvent[] {
    this.scan(out, true);
    if (this.buf.length > 0 && this.buf[0] === SLASH) {
      out.push({ rejected: "incomplete telegram at end of input (no '!' end marker)", bytes: this.buf.length });
    }
    this.reset();
    return out;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.bang = -1;
    this.scanned = 0;
  }

  private scan(out: FrameEvent[], atEnd: boolean): void {
    for (;;) {
      const buf = this.buf;
      if (buf.length === 0) return;
      if (buf[0] !== SLASH) {
        const start = buf.indexOf(SLASH);
        if (start < 0) {
          this.garbageBytes += buf.length;
          this.buf = Buffer.alloc(0);
          return;
        }
        this.garbageBytes += start;
        this.buf = buf.subarray(start);
        this.scanned = 0;
        this.bang = -1;
        continue;
      }
      if (this.bang < 0) {
        // Look for '!' and for a new '/' at a line start, which means this telegram was cut short. Native
        // searches (indexOf) rather than a byte loop: this scan was most of the framer's time.
        const from = Math.max(1, this.scanned);
        const bang = buf.indexOf(BANG, from);
        let restart = -1;
        for (let k = buf.indexOf(SLASH, from); k >= 0 && (bang < 0 || k < bang); k = buf.indexOf(SLASH, k + 1)) {
          if (buf[k - 1] === LF || buf[k - 1] === CR) {
            restart = k;
            break;
          }
        }
        if (restart > 0 && restart < this.maxBytes) {
          out.push({ rejected: "truncated telegram: a new one started before '!'", bytes: restart });
          this.buf = buf.subarray(restart);
          this.scanned = 0;
          continue;
        }
        if (bang < 0 || bang >= this.maxBytes) {
          if (buf.length <= this.maxBytes) {
            this.scanned = buf.length;
            return;
          }
          out.push({ rejected: `telegram longer than ${this.maxBytes} bytes without '!'`, bytes: this.maxBytes });
          // Resync on the next '/' after the cap (the loop skips to it as garbage).
          this.buf = buf.subarray(this.maxBytes);
          if (this.buf[0] === SLASH) this.buf = this.buf.subarray(1);
          this.scanned = 0;
          this.garbageBytes = 0;
          continue;
        }
        this.bang = bang;
      }
      // After '!': up to four CRC hex digits, then the line end.
      let j = this.bang + 1;
      while (j < buf.length && j - this.bang <= 6 && buf[j] !== LF && buf[j] !== SLASH) j++;
      if (j < buf.length && (buf[j] === LF || buf[j] === SLASH)) {
        const end = buf[j] === LF ? j + 1 : j;
        // A view, not a copy: `buf` is never written to again (push() always makes a new buffer).
        out.push({ frame: buf.subarray(0, end) });
        this.buf = buf.subarray(end);
      } else if (j - this.bang > 6) {
        // No line end where one must be: take what is there and let the decoder judge the CRC.
        out.push({ frame: buf.subarray(0, j) });
        this.buf = buf.subarray(j);
      } else if (atEnd) {
        out.push({ frame: Buffer.from(buf) });
        this.buf = Buffer.alloc(0);
      } else return;
      this.bang = -1;
      this.scanned = 0;
      this.garbageBytes = 0;
    }
  }
}

/** Cuts a capture file into telegrams (each piece starts at a '/' that begins a line) for paced replay. */
export function splitTelegrams(whole: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 1; i < whole.length; i++) {
    if (whole[i] === SLASH && (whole[i - 1] === LF || whole[i - 1] === CR)) {
      out.push(whole.subarray(start, i));
      start = i;
    }
  }
  if (start < whole.length) out.push(whole.subarray(start));
  return out;
}
