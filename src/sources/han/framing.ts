/**
 * What a framing hands to the DLMS decoder: a whole APDU (segments already joined, link-layer headers removed), or
 * a frame that failed its checks. HDLC is one framing (src/sources/han/hdlc.ts); the wired M-Bus long frames of
 * Austrian meters are another (src/sources/han/mbus.ts). Everything above a framing is the same for both.
 */
export type FrameEvent =
  | {
      apdu: Buffer;
      /** Bytes on the wire this APDU took, and in how many link frames it came. */
      bytes: number;
      frames: number;
    }
  | { rejected: string; bytes: number };

export interface HanFramer {
  /** "HDLC", "M-Bus": how messages name the framing. */
  readonly name: string;
  push(chunk: Uint8Array, out: FrameEvent[]): void;
  /** End of input: what is still held is reported as cut short. */
  end(out: FrameEvent[]): void;
  /** The port was reopened: bytes held so far belong to nobody. */
  reset(): void;
}

/** Largest APDU put together from segments; anything longer is dropped as garbage. */
export const MAX_APDU_BYTES = 16 * 1024;

/** Noise is reported as rejected once this many bytes came without a frame (a wrong baud rate, a loose cable). */
export const NOISE_REPORT_BYTES = 1024;
