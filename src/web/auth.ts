import { randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/**
 * `web.auth`: HTTP Basic with a password kept only as an scrypt hash (`scrypt$<salt>$<key>`, base64, scrypt's
 * defaults N=16384 r=8 p=1). Checking costs ~50 ms of CPU on a Pi, so a good answer is remembered per
 * Authorization header (a handful at most), and at most CHECKS_PER_SECOND checks run a second (more are refused).
 */
export function hashPassword(password: string, salt: Buffer = randomBytes(16)): string {
  return `scrypt$${salt.toString("base64")}$${scryptSync(password, salt, 32).toString("base64")}`;
}

export function verifyPassword(password: string, hash: string): boolean {
  const [kind, salt, key] = hash.split("$");
  if (kind !== "scrypt" || !salt || !key) return false;
  const want = Buffer.from(key, "base64");
  if (want.length < 16 || password.length > 1024) return false;
  const got = scryptSync(password, Buffer.from(salt, "base64"), want.length);
  return timingSafeEqual(got, want);
}

/** Password checks per second at most: guessing stays slow, and a flood of them cannot keep a Pi busy. */
const CHECKS_PER_SECOND = 5;

export class BasicAuth {
  private readonly good = new Set<string>();
  private windowStart = 0;
  private checks = 0;

  constructor(
    private readonly cfg: { user: string; password_hash: string },
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the request carries the configured user and password. */
  check(req: IncomingMessage): boolean {
    const header = req.headers.authorization;
    if (typeof header !== "string" || header.length > 2048 || !header.startsWith("Basic ")) return false;
    if (this.good.has(header)) return true;
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.checks = 0;
    }
    if (++this.checks > CHECKS_PER_SECOND) return false;
    const text = Buffer.from(header.slice(6), "base64").toString("utf8");
    const colon = text.indexOf(":");
    if (colon < 0) return false;
    const user = Buffer.from(text.slice(0, colon));
    const want = Buffer.from(this.cfg.user);
    const userOk = user.length === want.length && timingSafeEqual(user, want);
    // The hash is computed either way, so a wrong user takes as long as a wrong password.
    const passOk = verifyPassword(text.slice(colon + 1), this.cfg.password_hash);
    if (!userOk || !passOk) return false;
    if (this.good.size >= 8) this.good.clear();
    this.good.add(header);
    return true;
  }
}
