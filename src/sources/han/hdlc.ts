import { crc16x25 } from "./crc.js";
import { type FrameEvent, type HanFramer, MAX_APDU_BYTES, NOISE_REPORT_BYTES } from "./framing.js";

/**
 * HDLC as HAN ports send it (IEC 62056-46, frame format type 3): 0x7E, a format field (0xA, the segmentation bit
 * and an 11-bit length counting everything between the flags), destination and source addresses of 1–4 bytes
 * (the last byte of each has its low bit set), a control byte, the header check (HCS), the information field, the
 * frame check (FCS) and 0x7E. The closing flag may be the opening flag of the next frame. The information field of
 * a message's first frame starts with the LLC header E6 E7 00; a long message is cut into frames with the
 * segmentation bit set on all but the last.
 *
 * Bytes are only ever consumed by a frame that passed both checks: a candidate that fails (a false 0x7E in noise,
 * a frame cut short by the next one) is given up and the search goes on from the byte after its flag, so the
 * frame behind it is never lost.
 */
export interface HdlcHeader {
  segmented: boolean;
  /** Bytes between the flags. */
  length: number;
  destination: number;
  source: number;
  control: number;
  /** Offset of the information field from the opening flag; 0 when the frame has none. */
  infoAt: number;
}

const FLAG = 0x7e;
const LLC = [0xe6, 0xe7, 0x00] as const;

function address(b: Uint8Array, at: number): { value: number; at: number } | "more" | "invalid" {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= b.length) return "more";
    const x = b[at + i]!;
    value = value * 128 + (x >>> 1);
    if (x & 1) return { value, at: at + i + 1 };
  }
  return "invalid";
}

/** The header of the candidate frame whose opening flag is at p: parsed, not yet all there, or not a frame. */
export function parseHeader(b: Uint8Array, p: number): HdlcHeader | "more" | "invalid" {
  if (p + 3 > b.length) return "more";
  const fmt = b[p + 1]!;
  if ((fmt & 0xf0) !== 0xa0) return "invalid";
  const length = ((fmt & 0x07) << 8) | b[p + 2]!;
  const dst = address(b, p + 3);
  if (typeof dst === "string") return dst;
  const src = address(b, dst.at);
  if (typeof src === "string") return src;
  const ctl = src.at;
  if (ctl >= b.length) return "more";
  const headerBytes = ctl + 1 - (p + 1);
  // Without an information field the frame is its header and the FCS; with one, the header has its own check.
  if (length === headerBytes + 2)
    return { segmented: false, length, destination: dst.value, source: src.value, control: b[ctl]!, infoAt: 0 };
  if (length < headerBytes + 4) return "invalid";
  if (ctl + 3 > b.length) return "more";
  const hcs = b[ctl + 1]! | (b[ctl + 2]! << 8);
  if (crc16x25(b, p + 1, ctl + 1) !== hcs) return "invalid";
  return {
    segmented: (fmt & 0x08) !== 0,
    length,
    destination: dst.value,
    source: src.value,
    control: b[ctl]!,
    infoAt: ctl + 3 - p,
  };
}

const startsWithLlc = (b: Buffer): boolean => b.length >= 3 && b[0] === LLC[0] && b[1] === LLC[1] && b[2] === LLC[2];

export class HdlcFramer implements HanFramer {
  readonly name = "HDLC";
  private buf: Buffer = Buffer.alloc(0);
  private noise = 0;
  /** Segments of a message still waiting for its last one. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private partWire = 0;

  push(chunk: Uint8Array, out: FrameEvent[]): void {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, c]) : c;
    this.scan(out, false);
  }

  end(out: FrameEvent[]): void {
    this.scan(out, true);
    if (this.parts.length > 0) this.dropParts(out, "a segmented message ended before its last frame");
    if (this.noise >= 8) out.push({ rejected: `${this.noise} bytes that are not HDLC frames`, bytes: this.noise });
    this.reset();
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.noise = 0;
    this.parts = [];
    this.partBytes = 0;
    this.partWire = 0;
  }

  private dropParts(out: FrameEvent[], reason: string): void {
    out.push({ rejected: reason, bytes: this.partWire });
    this.parts = [];
    this.partBytes = 0;
    this.partWire = 0;
  }

  private skip(n: number, out: FrameEvent[]): void {
    if (n <= 0) return;
    // The frames of a segmented message come back to back: bytes between them mean one was lost.
    if (this.parts.length > 0) this.dropParts(out, "a segmented message lost a frame");
    this.noise += n;
    if (this.noise >= NOISE_REPORT_BYTES) {
      out.push({
        rejected: `${this.noise} bytes without an HDLC frame (wrong baud rate or parity?)`,
        bytes: this.noise,
      });
      this.noise = 0;
    }
  }

  private scan(out: FrameEvent[], final: boolean): void {
    const b = this.buf;
    let p = 0;
    for (;;) {
      const f = b.indexOf(FLAG, p);
      if (f < 0) {
        this.skip(b.length - p, out);
        p = b.length;
        break;
      }
      if (f > p) this.skip(f - p, out);
      p = f;
      const h = parseHeader(b, p);
      if (h === "more") {
        if (!final) break;
        this.skip(1, out);
        p++;
        continue;
      }
      if (h === "invalid") {
        // A repeated flag (idle line, or a closing flag followed by the next opening one) is not noise.
        if (b[p + 1] !== FLAG) this.skip(1, out);
        p++;
        continue;
      }
      const close = p + h.length + 1;
      if (close >= b.length) {
        if (!final) break;
        out.push({ rejected: "HDLC frame cut short at the end of the input", bytes: b.length - p });
        if (this.parts.length > 0) this.dropParts(out, "a segmented message lost a frame");
        p++;
        continue;
      }
      if (b[close] !== FLAG || crc16x25(b, p + 1, close - 2) !== (b[close - 2]! | (b[close - 1]! << 8))) {
        out.push({
          rejected:
            b[close] !== FLAG
              ? "HDLC frame cut short (no closing flag where its length says)"
              : "HDLC frame check (CRC) failed",
          bytes: h.length + 2,
        });
        if (this.parts.length > 0) this.dropParts(out, "a segmented message lost a frame");
        p++;
        continue;
      }
      this.noise = 0;
      if (h.infoAt > 0) this.frame(b.subarray(p + h.infoAt, close - 2), h, out);
      // The closing flag may open the next frame.
      p = close;
    }
    this.buf = p >= b.length ? Buffer.alloc(0) : Buffer.from(b.subarray(p));
  }

  private frame(info: Buffer, h: HdlcHeader, out: FrameEvent[]): void {
    const wire = h.length + 2;
    if (info.length === 0) return;
    let data = info;
    if (startsWithLlc(info)) {
      // A message's first frame: whatever was waiting for its last segment will not get it.
      if (this.parts.length > 0) this.dropParts(out, "a segmented message lost its last frame");
      data = info.subarray(3);
    }
    if (this.parts.length === 0 && !h.segmented) {
      out.push({ apdu: Buffer.from(data), bytes: wire, frames: 1 });
      return;
    }
    this.parts.push(Buffer.from(data));
    this.partBytes += data.length;
    this.partWire += wire;
    if (this.partBytes > MAX_APDU_BYTES) {
      this.dropParts(out, `segmented message longer than ${MAX_APDU_BYTES} bytes`);
      return;
    }
    if (h.segmented) return;
    const apdu = Buffer.concat(this.parts);
    out.push({ apdu, bytes: this.partWire, frames: this.parts.length });
    this.parts = [];
    this.partBytes = 0;
    this.partWire = 0;
  }
}
