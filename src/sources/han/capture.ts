import { parseHeader } from "./hdlc.js";

/**
 * Captures of a HAN port: raw bytes as the port gave them, or hex text as captures are shared ("7e a0 d2 41 …",
 * wrapped over lines). For file replay: where to cut a capture so each piece is one message, and the hex turned
 * back into bytes as pieces arrive.
 */
const isWhite = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const nibble = (c: number): number => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
};

/** Whether the start of a capture is hex text (hex digits and whitespace only). */
export function looksLikeHex(b: Buffer): boolean {
  const head = b.subarray(0, 4096);
  let digits = 0;
  for (const c of head) {
    if (nibble(c) >= 0) digits++;
    else if (!isWhite(c)) return false;
  }
  return digits >= 2;
}

/** Hex text to bytes, piece by piece (a byte's two digits may fall in two pieces). */
export class HexText {
  private half = -1;

  bytes(chunk: Buffer): Buffer {
    const out = Buffer.allocUnsafe((chunk.length >> 1) + 1);
    let n = 0;
    for (const c of chunk) {
      const v = nibble(c);
      if (v < 0) continue;
      if (this.half < 0) this.half = v;
      else {
        out[n++] = (this.half << 4) | v;
        this.half = -1;
      }
    }
    return out.subarray(0, n);
  }
}

/**
 * Cuts a capture into messages for paced replay: raw bytes after each HDLC frame that ends a message (bytes that
 * are no frame stay with what follows); hex text before each line that starts a frame ("7e").
 */
export function splitCapture(whole: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  let from = 0;
  if (looksLikeHex(whole)) {
    for (let i = 1; i + 2 < whole.length; i++)
      if (whole[i - 1] === 0x0a && whole[i] === 0x37 && (whole[i + 1]! | 0x20) === 0x65) {
        pieces.push(whole.subarray(from, i));
        from = i;
      }
    pieces.push(whole.subarray(from));
    return pieces;
  }
  let p = whole.indexOf(0x7e);
  while (p >= 0) {
    const h = parseHeader(whole, p);
    const close = typeof h === "object" ? p + h.length + 1 : -1;
    if (typeof h === "object" && close < whole.length && whole[close] === 0x7e) {
      if (!h.segmented) {
        // A closing flag that opens the next frame stays with the next piece.
        const cut = close + 1 < whole.length && whole[close + 1] !== 0x7e ? close : close + 1;
        pieces.push(whole.subarray(from, cut));
        from = cut;
      }
      // The closing flag may open the next frame.
      p = close;
    } else p = whole.indexOf(0x7e, p + 1);
  }
  if (from < whole.length) pieces.push(whole.subarray(from));
  return pieces;
}
