/**
 * Cuts frames out of a raw P1 byte stream. Two kinds:
 * - a text telegram: starts at a '/' that begins an identification line of the DSMR form (`/XXXZ…` then a line
 *   end, see identLineEnd) and ends after '!' plus its CRC digits and the line end;
 * - an encrypted telegram (Luxembourg Smarty and others): a DLMS general-glo-ciphering frame, 0xDB 0x08, the
 *   8-byte system title, a length, then the security byte, frame counter, ciphertext and tag.
 * Garbage before or between frames (a gateway's trailer, 0xFF fill, the tail of a telegram joined halfway) is
 * skipped. A telegram is resynchronised at every '/' that starts a valid identification line, wherever it stands,
 * so a cut telegram never takes the next one down: the cut one is handed on marked `unterminated`, and the reader
 * decides (meters without a CRC, such as some Iskra MT382, end their telegrams without '!'; for meters that send
 * a CRC it is a truncated telegram). Works on bytes, never on text, so a non-ASCII byte is just a byte.
 */
export type FrameEvent =
  | { frame: Buffer; unterminated?: boolean }
  | { encrypted: Buffer; opened?: unknown }
  | { rejected: string; bytes: number };

/**
 * Opens an encrypted frame as soon as it is complete (the meter's key is known). When it does not open (a wrong
 * tag: noise that looked like a frame header), the framer goes back to the byte after its start, so a telegram
 * inside the bytes it spanned is not lost.
 */
export type GloOpener = (frame: Buffer) => { ok: true; value: unknown } | { ok: false; reason: string };

const SLASH = 0x2f;
const BANG = 0x21;
const LF = 0x0a;
const CR = 0x0d;
const GLO = 0xdb;
/** The identification after the FLAG code and baud character is at most this long (the spec says 16; some send more). */
const MAX_IDENT = 48;

const isLetter = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/**
 * Checks the identification line that starts at buf[s] === '/': three letters (the FLAG manufacturer code, any
 * case), one printable character (the baud rate character: '5' for DSMR, '-' on a Warmtelink), then up to 48 bytes
 * of identification (any bytes but line ends, '/', '!', '(' and ')': real headers hold 0x02 and 0xAB), then CR or LF.
 * Returns the offset of the line end, -1 when this '/' does not start one, or -2 when more bytes are needed.
 */
export function identLineEnd(buf: Uint8Array, s: number, end = buf.length): number {
  for (let k = 1; k <= 3; k++) {
    if (s + k >= end) return -2;
    if (!isLetter(buf[s + k]!)) return -1;
  }
  if (s + 4 >= end) return -2;
  const z = buf[s + 4]!;
  if (z < 0x20 || z > 0x7e || z === SLASH || z === BANG || z === 0x28 || z === 0x29) return -1;
  const limit = s + 5 + MAX_IDENT;
  for (let j = s + 5; j <= limit; j++) {
    if (j >= end) return -2;
    const c = buf[j]!;
    if (c === CR || c === LF) return j;
    if (c === SLASH || c === BANG || c === 0x28 || c === 0x29 || c === 0) return -1;
  }
  return -1;
}

/**
 * The length of the general-glo-ciphering frame at buf[s] === 0xDB: 0xDB, 0x08, an 8-byte system title, a BER
 * length (0x00–0x7F, 0x81 nn or 0x82 nnnn) counting from the security byte, and a security byte of a known suite.
 * Returns the whole frame's length, -1 when this is not one, or -2 when more bytes are needed.
 */
export function gloFrameLength(buf: Uint8Array, s: number, end = buf.length): number {
  if (s + 1 >= end) return -2;
  if (buf[s + 1] !== 0x08) return -1;
  if (s + 10 >= end) return -2;
  const l0 = buf[s + 10]!;
  let len: number;
  let head: number;
  if (l0 < 0x80) {
    len = l0;
    head = 11;
  } else if (l0 === 0x81) {
    if (s + 11 >= end) return -2;
    len = buf[s + 11]!;
    head = 12;
  } else if (l0 === 0x82) {
    if (s + 12 >= end) return -2;
    len = (buf[s + 11]! << 8) | buf[s + 12]!;
    head = 13;
  } else return -1;
  if (s + head >= end) return -2;
  const sc = buf[s + head]!;
  // Security control: 0x30 authenticated and encrypted (what P1 and HAN meters send), 0x20 encrypted only,
  // 0x10 authenticated only; the upper nibble may also carry the key set bit.
  if ((sc & 0x0f) !== 0 || (sc & 0x30) === 0) return -1;
  // Security byte + frame counter (5) + at least one byte; with a tag, 12 more.
  if (len < 6) return -1;
  return head + len;
}

export class TelegramFramer {
  private buf: Buffer = Buffer.alloc(0);
  /** What is at buf[0]: nothing yet, a text telegram whose identification line was checked, or an encrypted frame. */
  private mode: "none" | "text" | "glo" = "none";
  /** Length of the encrypted frame at buf[0]. */
  private need = 0;
  /** Offset of '!' in buf once seen, else -1. */
  private bang = -1;
  /** Text mode: bytes already searched for '!' and for the next identification line. */
  private scanned = 0;
  /** Bytes skipped outside any frame since the last frame (reported, not counted as rejects). */
  garbageBytes = 0;

  constructor(
    private readonly maxBytes = 8192,
    private readonly openGlo?: GloOpener,
  ) {}

  push(chunk: Uint8Array, out: FrameEvent[] = []): FrameEvent[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    this.scan(out, false);
    return out;
  }

  /** True while the start of a text telegram is held without its '!' (a quiet line then ends it, see flush()). */
  get pendingText(): boolean {
    return this.mode === "text" && this.bang < 0;
  }

  /**
   * A quiet gap on the line: a text telegram still waiting for its '!' is handed on as `unterminated` (meters
   * without CRC that send no '!'); the reader decides whether that is a telegram.
   */
  flush(out: FrameEvent[] = []): FrameEvent[] {
    if (this.pendingText) {
      out.push({ frame: Buffer.from(this.buf), unterminated: true });
      this.reset();
    }
    return out;
  }

  /** End of input (file replay, decode CLI): a telegram that ended with its CRC but no newline is complete. */
  end(out: FrameEvent[] = []): FrameEvent[] {
    this.scan(out, true);
    if (this.mode === "text" && this.buf.length > 0) out.push({ frame: Buffer.from(this.buf), unterminated: true });
    else if (this.mode === "glo")
      out.push({ rejected: "incomplete encrypted telegram at end of input", bytes: this.buf.length });
    this.reset();
    return out;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.mode = "none";
    this.bang = -1;
    this.scanned = 0;
    this.need = 0;
  }

  private skip(n: number): void {
    this.garbageBytes += n;
    this.buf = this.buf.subarray(n);
    this.mode = "none";
    this.bang = -1;
    this.scanned = 0;
  }

  private take(n: number, out: FrameEvent[], ev: (b: Buffer) => FrameEvent): void {
    // A view, not a copy: `buf` is never written to again (push() always makes a new buffer).
    out.push(ev(this.buf.subarray(0, n)));
    this.buf = this.buf.subarray(n);
    this.mode = "none";
    this.bang = -1;
    this.scanned = 0;
    this.garbageBytes = 0;
  }

  private scan(out: FrameEvent[], atEnd: boolean): void {
    for (;;) {
      const buf = this.buf;
      if (buf.length === 0) return;
      if (this.mode === "none") {
        if (!this.findStart(atEnd)) return;
        continue;
      }
      if (this.mode === "glo") {
        if (!this.scanGlo(out)) return;
        continue;
      }
      if (!this.scanText(out, atEnd)) return;
    }
  }

  /** Moves buf[0] to the next frame start and sets the mode; false when more bytes are needed. */
  private findStart(atEnd: boolean): boolean {
    const buf = this.buf;
    let from = 0;
    for (;;) {
      const slash = buf.indexOf(SLASH, from);
      const glo = buf.indexOf(GLO, from);
      const k = slash < 0 ? glo : glo < 0 ? slash : Math.min(slash, glo);
      if (k < 0) {
        this.skip(buf.length);
        return false;
      }
      const r = buf[k] === SLASH ? identLineEnd(buf, k) : gloFrameLength(buf, k);
      if (r === -2) {
        // Keep the candidate and wait for its header to arrive; at the end of input it is garbage.
        if (atEnd) {
          from = k + 1;
          continue;
        }
        if (k > 0) this.skip(k);
        return false;
      }
      if (r === -1 || (buf[k] === GLO && r > this.maxBytes)) {
        from = k + 1;
        continue;
      }
      if (k > 0) this.skip(k);
      if (this.buf[0] === SLASH) {
        this.mode = "text";
        this.scanned = r - k;
      } else {
        this.mode = "glo";
        this.need = r;
        this.scanned = 1;
      }
      return true;
    }
  }

  /** Encrypted-frame mode; false when more bytes are needed. */
  private scanGlo(out: FrameEvent[]): boolean {
    const buf = this.buf;
    if (!this.openGlo) {
      // No key to check the frame with: a telegram's identification line inside its span means this was noise
      // shaped like a frame header (ciphertext holds one only about once in 200 frames, which are refused anyway).
      for (
        let k = buf.indexOf(SLASH, Math.max(1, this.scanned));
        k >= 0 && k < this.need;
        k = buf.indexOf(SLASH, k + 1)
      ) {
        const r = identLineEnd(buf, k);
        if (r === -2) {
          this.scanned = k;
          return false;
        }
        if (r > 0) {
          out.push({ rejected: "encrypted telegram cut short by a plain one", bytes: k });
          this.skip(k);
          this.garbageBytes = 0;
          return true;
        }
      }
      this.scanned = Math.min(buf.length, this.need);
    }
    if (buf.length < this.need) return false;
    const frame = buf.subarray(0, this.need);
    if (!this.openGlo) {
      this.take(this.need, out, (b) => ({ encrypted: b }));
      return true;
    }
    const r = this.openGlo(frame);
    if (r.ok) this.take(this.need, out, (b) => ({ encrypted: b, opened: r.value }));
    else {
      out.push({ rejected: r.reason, bytes: this.need });
      this.skip(1);
    }
    return true;
  }

  /** Text mode; false when more bytes are needed. */
  private scanText(out: FrameEvent[], atEnd: boolean): boolean {
    const buf = this.buf;
    if (this.bang < 0) {
      // Look for '!' and for a '/' that starts a new identification line, which means this telegram was cut
      // short (or, on a meter without CRC, ended without '!'). Native searches (indexOf), not a byte loop.
      const from = Math.max(1, this.scanned);
      const bang = buf.indexOf(BANG, from);
      for (let k = buf.indexOf(SLASH, from); k >= 0 && (bang < 0 || k < bang); k = buf.indexOf(SLASH, k + 1)) {
        const r = identLineEnd(buf, k);
        if (r === -1) continue;
        if (r === -2 && !atEnd) {
          // Undecided until the rest of that line arrives: search again from this '/' next time.
          this.scanned = k;
          return false;
        }
        if (r === -2) continue;
        if (k > this.maxBytes) break;
        this.take(k, out, (b) => ({ frame: b, unterminated: true }));
        return true;
      }
      if (bang < 0 || bang >= this.maxBytes) {
        if (buf.length <= this.maxBytes) {
          this.scanned = buf.length;
          return false;
        }
        out.push({ rejected: `telegram longer than ${this.maxBytes} bytes without '!'`, bytes: this.maxBytes });
        // Resync after the cap (findStart skips to the next frame start).
        this.skip(this.maxBytes);
        this.garbageBytes = 0;
        return true;
      }
      this.bang = bang;
    }
    // After '!': up to four CRC hex digits, then the line end.
    let j = this.bang + 1;
    while (j < buf.length && j - this.bang <= 6 && buf[j] !== LF && buf[j] !== SLASH && buf[j] !== GLO) j++;
    if (j < buf.length && (buf[j] === LF || buf[j] === SLASH || buf[j] === GLO)) {
      this.take(buf[j] === LF ? j + 1 : j, out, (b) => ({ frame: b }));
    } else if (j - this.bang > 6) {
      // No line end where one must be: take what is there and let the decoder judge the CRC.
      this.take(j, out, (b) => ({ frame: b }));
    } else if (atEnd) {
      this.take(buf.length, out, (b) => ({ frame: b }));
    } else return false;
    return true;
  }
}

/**
 * Cuts a capture file into frames (each piece starts where a telegram or an encrypted frame starts) for paced
 * replay; the framer reassembles whatever the pieces are, so this only sets the pace.
 */
export function splitTelegrams(whole: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 1; i < whole.length; i++) {
    const c = whole[i];
    if (
      (c === SLASH && (whole[i - 1] === LF || whole[i - 1] === CR) && identLineEnd(whole, i) > 0) ||
      (c === GLO && gloFrameLength(whole, i) > 0)
    ) {
      out.push(whole.subarray(start, i));
      start = i;
    }
  }
  if (start < whole.length) out.push(whole.subarray(start));
  return out;
}
