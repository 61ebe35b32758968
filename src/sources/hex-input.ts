/**
 * Captures of binary frames are often shared as hex text ("db 08 73 79 …", "7e a0 d2 41 …", wrapped over lines).
 * `decode` and file replay accept both: when the start of the input is nothing but hex digits and whitespace (and
 * so has no '/', not a DSMR text telegram), the whole input is read as hex and turned back into bytes, streaming.
 */
const HEX_SNIFF = 4096;

const isWhite = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const nibble = (c: number): number => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
};

/** Whether the start of an input is hex text (hex digits and whitespace only). */
export function looksLikeHex(b: Buffer): boolean {
  let digits = 0;
  for (const c of b.subarray(0, HEX_SNIFF)) {
    if (nibble(c) >= 0) digits++;
    else if (!isWhite(c)) return false;
  }
  return digits >= 2;
}

/** Hex text to bytes, piece by piece (a byte's two digits may fall in two pieces); anything else is skipped. */
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

/** Yields the input as it is, or, when it is hex text, the bytes it spells. */
export async function* bytesOrHex(input: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  const it = input[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  let done = false;
  while (head.length < HEX_SNIFF) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    head = Buffer.concat([head, r.value]);
  }
  const rest: AsyncIterable<Buffer> = {
    [Symbol.asyncIterator]: () => ({
      next: () => (done ? Promise.resolve({ done: true, value: undefined }) : it.next()),
    }),
  };
  if (!looksLikeHex(head)) {
    if (head.length) yield head;
    yield* rest;
    return;
  }
  const hex = new HexText();
  if (head.length) yield hex.bytes(head);
  for await (const chunk of rest) yield hex.bytes(chunk);
}
