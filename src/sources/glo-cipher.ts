import { createDecipheriv } from "node:crypto";

/**
 * DLMS general-glo-ciphering (tag 0xDB), the envelope of encrypted P1 telegrams (Luxembourg Smarty and others) and
 * of encrypted HAN-port frames: 0xDB, 0x08, the meter's 8-byte system title, a BER length counting from the
 * security byte, the security byte (0x30: authenticated and encrypted, the only kind accepted), a 4-byte frame
 * counter, the ciphertext and a 12-byte GCM tag. AES-128-GCM with IV = system title + frame
 * counter; the additional authenticated data is the security byte followed by the authentication key when the grid
 * operator hands one out, else nothing. Node's own crypto does the AES-GCM.
 */
export interface GloFrame {
  systemTitle: Buffer;
  securityControl: number;
  counter: number;
  ciphertext: Buffer;
  /** Empty when the frame is encrypted only. */
  tag: Buffer;
}

export const GLO_TAG_BYTES = 12;

/** Splits a general-glo-ciphering frame into its parts; a string says why it is not one. */
export function parseGlo(frame: Uint8Array): GloFrame | string {
  const b = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.length < 2 || b[0] !== 0xdb) return "not a general-glo-ciphering frame (0xDB)";
  const titleLen = b[1]!;
  if (titleLen !== 8) return `system title of ${titleLen} bytes (expected 8)`;
  let at = 2 + titleLen;
  if (b.length < at + 1) return "frame ends inside its header";
  const systemTitle = b.subarray(2, at);
  let len = b[at++]!;
  if (len === 0x81) len = b[at++] ?? -1;
  else if (len === 0x82) {
    len = at + 1 < b.length ? b.readUInt16BE(at) : -1;
    at += 2;
  } else if (len > 0x7f) return "length field of an unsupported form";
  if (len < 0 || b.length < at + len) return `frame shorter than its length field says (${len} bytes)`;
  const securityControl = b[at]!;
  const authenticated = (securityControl & 0x10) !== 0;
  const encrypted = (securityControl & 0x20) !== 0;
  if (!encrypted) return `security byte 0x${securityControl.toString(16)}: not an encrypted frame`;
  if ((securityControl & 0x0f) !== 0) return `security suite ${securityControl & 0x0f} is not supported (only 0)`;
  const tagLen = authenticated ? GLO_TAG_BYTES : 0;
  if (len < 5 + tagLen + 1) return "frame too short for its security header";
  const counter = b.readUInt32BE(at + 1);
  const bodyEnd = at + len;
  return {
    systemTitle,
    securityControl,
    counter,
    ciphertext: b.subarray(at + 5, bodyEnd - tagLen),
    tag: b.subarray(bodyEnd - tagLen, bodyEnd),
  };
}

export type OpenResult =
  | { ok: true; plaintext: Buffer; counter: number }
  | { ok: false; reason: string; replay?: boolean };

/**
 * Decrypts the frames of one meter and keeps its frame counter: a frame whose counter is not above the last
 * authenticated one (a replay, or an older frame) is refused. The counter starts over with a new system title
 * (a replaced meter) once a frame of that title authenticates.
 */
export class GloDecryptor {
  private lastCounter = -1;
  private lastTitle?: Buffer;

  constructor(
    private readonly key: Buffer,
    private readonly authKey?: Buffer,
  ) {
    if (key.length !== 16) throw new Error("the key must be 16 bytes (32 hex digits)");
    if (authKey && authKey.length !== 16) throw new Error("the authentication key must be 16 bytes (32 hex digits)");
  }

  open(frame: Uint8Array): OpenResult {
    const f = parseGlo(frame);
    if (typeof f === "string") return { ok: false, reason: f };
    const sameTitle = this.lastTitle?.equals(f.systemTitle) ?? false;
    if (sameTitle && f.counter <= this.lastCounter)
      return {
        ok: false,
        reason: `frame counter ${f.counter} is not above the last one (${this.lastCounter}): a replayed or old frame`,
        replay: true,
      };
    // Without a tag anyone could change the frame (and flipping one bit of the security byte strips the tag of a
    // real one), so frames that are encrypted only are refused. Meters send 0x30.
    if (f.tag.length === 0)
      return { ok: false, reason: "the frame is encrypted without authentication (security byte 0x20): refused" };
    const iv = Buffer.concat([
      f.systemTitle,
      Buffer.from([f.counter >>> 24, f.counter >>> 16, f.counter >>> 8, f.counter]),
    ]);
    let plaintext: Buffer;
    try {
      const d = createDecipheriv("aes-128-gcm", this.key, iv, { authTagLength: GLO_TAG_BYTES });
      d.setAAD(this.authKey ? Buffer.concat([Buffer.from([f.securityControl]), this.authKey]) : Buffer.alloc(0));
      d.setAuthTag(f.tag);
      plaintext = Buffer.concat([d.update(f.ciphertext), d.final()]);
    } catch {
      return {
        ok: false,
        reason: this.authKey
          ? "authentication failed: the key or the authentication key (aad) does not match this meter, or the frame is corrupt"
          : "authentication failed: the key does not match this meter, the meter needs an authentication key (aad), or the frame is corrupt",
      };
    }
    this.lastTitle = Buffer.from(f.systemTitle);
    this.lastCounter = f.counter;
    return { ok: true, plaintext, counter: f.counter };
  }
}

/** A key option (32 hex digits, as the config normalises it) as bytes. */
export function keyBytes(hex: string | undefined): Buffer | undefined {
  return hex === undefined ? undefined : Buffer.from(hex, "hex");
}
