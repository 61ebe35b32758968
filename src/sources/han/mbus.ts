import { type FrameEvent, type HanFramer, MAX_APDU_BYTES, NOISE_REPORT_BYTES } from "./framing.js";

/**
 * Wired M-Bus long frames (EN 13757-2) as Austrian meters (Kaifa MA309, Sagemcom T210-D of EVN, Netz NÖ and
 * others) push their encrypted DLMS APDU: 0x68 L L 0x68, the control, address and CI bytes, the data, a checksum
 * (the sum of the bytes from the control byte on) and 0x16; L counts control to the last data byte. The APDU is
 * longer than one frame holds, so the CI byte carries the DLMS transport's segmentation: bit 4 on the last
 * segment, the low four bits the segment's number; each segment's data starts with the source and destination
 * transport addresses (STSAP, DTSAP). As with HDLC, bytes are consumed only by a frame that passed its checks.
 */
const START = 0x68;
const STOP = 0x16;

export class MbusFramer implements HanFramer {
  readonly name = "M-Bus";
  private buf: Buffer = Buffer.alloc(0);
  private noise = 0;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private partWire = 0;
  private nextSeq = 0;

  push(chunk: Uint8Array, out: FrameEvent[]): void {
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, c]) : c;
    this.scan(out, false);
  }

  end(out: FrameEvent[]): void {
    this.scan(out, true);
    if (this.parts.length > 0) this.drop(out, "a segmented message ended before its last frame");
    if (this.noise >= 8) out.push({ rejected: `${this.noise} bytes that are not M-Bus frames`, bytes: this.noise });
    this.reset();
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.noise = 0;
    this.parts = [];
    this.partBytes = 0;
    this.partWire = 0;
    this.nextSeq = 0;
  }

  private drop(out: FrameEvent[], reason: string): void {
    out.push({ rejected: reason, bytes: this.partWire });
    this.parts = [];
    this.partBytes = 0;
    this.partWire = 0;
    this.nextSeq = 0;
  }

  private skip(n: number, out: FrameEvent[]): void {
    if (n <= 0) return;
    // The frames of a segmented message come back to back: bytes between them mean one was lost.
    if (this.parts.length > 0) this.drop(out, "a segmented message lost a frame");
    this.noise += n;
    if (this.noise >= NOISE_REPORT_BYTES) {
      out.push({
        rejected: `${this.noise} bytes without an M-Bus frame (wrong baud rate or parity?)`,
        bytes: this.noise,
      });
      this.noise = 0;
    }
  }

  private scan(out: FrameEvent[], final: boolean): void {
    const b = this.buf;
    let p = 0;
    for (;;) {
      const f = b.indexOf(START, p);
      if (f < 0) {
        this.skip(b.length - p, out);
        p = b.length;
        break;
      }
      if (f > p) this.skip(f - p, out);
      p = f;
      if (p + 4 > b.length) {
        if (!final) break;
        this.skip(b.length - p, out);
        p = b.length;
        break;
      }
      const len = b[p + 1]!;
      if (b[p + 2] !== len || b[p + 3] !== START || len < 3) {
        this.skip(1, out);
        p++;
        continue;
      }
      const stop = p + len + 5;
      if (stop >= b.length) {
        if (!final) break;
        out.push({ rejected: "M-Bus frame cut short at the end of the input", bytes: b.length - p });
        if (this.parts.length > 0) this.drop(out, "a segmented message lost a frame");
        p++;
        continue;
      }
      let sum = 0;
      for (let i = p + 4; i < stop - 1; i++) sum = (sum + b[i]!) & 0xff;
      if (b[stop] !== STOP || sum !== b[stop - 1]) {
        out.push({
          rejected:
            b[stop] !== STOP ? "M-Bus frame cut short (no stop byte where its length says)" : "M-Bus checksum failed",
          bytes: len + 6,
        });
        if (this.parts.length > 0) this.drop(out, "a segmented message lost a frame");
        p++;
        continue;
      }
      this.noise = 0;
      this.frame(b[p + 6]!, b.subarray(p + 7, stop - 1), len + 6, out);
      p = stop + 1;
    }
    this.buf = p >= b.length ? Buffer.alloc(0) : Buffer.from(b.subarray(p));
  }

  private frame(ci: number, data: Buffer, wire: number, out: FrameEvent[]): void {
    if ((ci & 0xe0) !== 0 || data.length < 2) {
      out.push({ rejected: `M-Bus frame with CI 0x${ci.toString(16)} carries no DLMS data`, bytes: wire });
      return;
    }
    const seq = ci & 0x0f;
    const last = (ci & 0x10) !== 0;
    if (seq === 0 && this.parts.length > 0) this.drop(out, "a segmented message lost its last frame");
    if (seq !== this.nextSeq) {
      out.push({ rejected: `M-Bus segment ${seq} without segment ${this.nextSeq} before it`, bytes: wire });
      if (this.parts.length > 0) this.drop(out, "a segmented message lost a frame");
      return;
    }
    const payload = data.subarray(2);
    this.parts.push(Buffer.from(payload));
    this.partBytes += payload.length;
    this.partWire += wire;
    this.nextSeq = (seq + 1) & 0x0f;
    if (this.partBytes > MAX_APDU_BYTES) {
      this.drop(out, `segmented message longer than ${MAX_APDU_BYTES} bytes`);
      return;
    }
    if (!last) return;
    out.push({ apdu: Buffer.concat(this.parts), bytes: this.partWire, frames: this.parts.length });
    this.parts = [];
    this.partBytes = 0;
    this.partWire = 0;
    this.nextSeq = 0;
  }
}
