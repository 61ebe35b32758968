/**
 * The two-factor code SmartHub asks for at login, from the TOTP secret an authenticator app is set up with.
 *
 * RFC 6238 with the parameters every authenticator app and SmartHub use (HMAC-SHA1, 6 digits, 30-second steps)
 * on node:crypto, instead of a dependency: the algorithm is fixed and short, and the RFC's own test vectors
 * (test/smarthub-client.test.ts) pin it down. The secret comes as the base32 text the portal shows or puts in
 * its otpauth:// QR code, in any case, with or without spaces and padding.
 */
import { createHmac } from "node:crypto";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export class TotpSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TotpSecretError";
  }
}

/** The key bytes of a base32 secret; the message never repeats the secret. */
export function base32Decode(secret: string): Buffer {
  const text = secret.replace(/[\s-]/g, "").replace(/=+$/, "").toUpperCase();
  if (text.length === 0) throw new TotpSecretError("the TOTP secret is empty");
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const c of text) {
    const v = BASE32.indexOf(c);
    if (v < 0) throw new TotpSecretError("the TOTP secret is not base32 (letters A-Z and digits 2-7)");
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** HOTP (RFC 4226) of one counter value. */
export function hotp(
  key: Buffer,
  counter: number,
  digits = 6,
  algorithm: "sha1" | "sha256" | "sha512" = "sha1",
): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, key).update(msg).digest();
  const offset = (mac[mac.length - 1] as number) & 0x0f;
  const code = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(code % 10 ** digits).padStart(digits, "0");
}

/** The code valid at `nowMs` for a base32 secret. */
export function totp(secret: string, nowMs: number, opts: { digits?: number; stepSeconds?: number } = {}): string {
  const step = (opts.stepSeconds ?? 30) * 1000;
  return hotp(base32Decode(secret), Math.floor(nowMs / step), opts.digits ?? 6);
}
