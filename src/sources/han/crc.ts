/**
 * CRC-16/X-25 (also called CRC-16/IBM-SDLC): polynomial 0x1021 reflected (0x8408), initial 0xFFFF, final XOR
 * 0xFFFF. HDLC frames carry it twice: the header check (HCS) after the control byte and the frame check (FCS)
 * before the closing flag, both low byte first. A byte table: HAN frames are short and come every few seconds.
 */
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x8408 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** The CRC of b[start, end). */
export function crc16x25(b: Uint8Array, start = 0, end = b.length): number {
  let c = 0xffff;
  for (let i = start; i < end; i++) c = (c >>> 8) ^ TABLE[(c ^ b[i]!) & 0xff]!;
  return ~c & 0xffff;
}
