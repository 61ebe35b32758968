/**
 * Captures of binary frames are often shared as hex text ("db 08 73 79 …", one frame per line or wrapped).
 * `decode` accepts both: when the start of the input is nothing but hex digits and whitespace (and has no '/', so
 * it is not a DSMR text telegram), the whole input is read as hex and turned back into bytes, streaming.
 */
const HEX_SNIFF = 4096;

function isHexText(b: Buffer): boolean {
  let digits = 0;
  for (const c of b) {
    if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)) digits++;
    else if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return digits >= 2;
}

const nibble = (c: number): number => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10);

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
  if (!isHexText(head.subarray(0, HEX_SNIFF))) {
    if (head.length) yield head;
    yield* rest;
    return;
  }
  let odd = -1;
  const convert = (chunk: Buffer): Buffer => {
    const out = Buffer.allocUnsafe((chunk.length >> 1) + 1);
    let n = 0;
    for (const c of chunk) {
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      const v = nibble(c);
      if (v < 0 || v > 15) continue;
      if (odd < 0) odd = v;
      else {
        out[n++] = (odd << 4) | v;
        odd = -1;
      }
    }
    return out.subarray(0, n);
  };
  if (head.length) yield convert(head);
  for await (const chunk of rest) yield convert(chunk);
}
