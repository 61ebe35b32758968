import { looksLikeHex } from "../hex-input.js";
import { parseHeader } from "./hdlc.js";

/**
 * Captures of a HAN port: raw bytes as the port gave them, or hex text as captures are shared ("7e a0 d2 41 …",
 * wrapped over lines). For file replay: where to cut a capture so each piece is one message, and the hex turned
 * back into bytes as pieces arrive.
 */
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
