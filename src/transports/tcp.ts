import net from "node:net";
import { BaseTransport, type Connection, errorCode, errorText, type Failure, type Link, secs } from "./base.js";
import type { TransportOptions } from "./types.js";

/** A SYN to a host that is off can go unanswered for two minutes before the kernel gives up. */
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * Probes start after this much silence. They only catch a peer that vanished without a word (power cut); a dongle
 * that stays connected but sends nothing is what idleTimeoutMs is for.
 */
const KEEPALIVE_MS = 15_000;

/** Parses "tcp://host:port" (IPv6 as tcp://[::1]:8088); throws a message that names what was wrong. */
export function parseTcpUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`expected tcp://host:port, got "${url}"`);
  }
  const port = Number(u.port);
  if (u.protocol !== "tcp:" || !u.hostname || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`expected tcp://host:port, got "${url}"`);
  return { host: u.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}

/** A P1 dongle or ser2net that serves the meter's bytes on a TCP port. */
export class TcpTransport extends BaseTransport {
  readonly host: string;
  readonly port: number;

  constructor(url: string, opts: TransportOptions = {}) {
    super(opts);
    ({ host: this.host, port: this.port } = parseTcpUrl(url));
  }

  get description(): string {
    return `tcp://${this.host.includes(":") ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /** The connected socket, for write() (a RAVEn stick behind ser2net takes commands); undefined while down. */
  private sock?: net.Socket;

  /** Resolves once the bytes are handed to the socket; rejects while it is not connected. */
  write(bytes: Buffer): Promise<void> {
    const sock = this.sock;
    if (!sock || sock.destroyed || sock.connecting)
      return Promise.reject(new Error(`${this.description} is not connected`));
    return new Promise((resolve, reject) => {
      sock.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  protected override connect(link: Link): Connection {
    const sock = net.connect({ host: this.host, port: this.port });
    sock.setKeepAlive(true, KEEPALIVE_MS);
    let lastError: Error | undefined;
    const timer = this.clock.setTimeout(
      () => sock.destroy(new Error(`no answer within ${secs(CONNECT_TIMEOUT_MS)} s`)),
      CONNECT_TIMEOUT_MS,
    );
    sock.once("connect", () => {
      this.clock.clearTimeout(timer);
      this.sock = sock;
      link.opened();
    });
    sock.on("data", (chunk: Buffer) => link.data(chunk));
    sock.on("error", (err) => {
      lastError = err;
    });
    sock.on("close", () => {
      this.clock.clearTimeout(timer);
      if (this.sock === sock) this.sock = undefined;
      link.failed(lastError ?? new Error("connection closed by the other end"));
    });
    return {
      close: () => {
        this.clock.clearTimeout(timer);
        sock.removeAllListeners("data");
        if (sock.closed) return Promise.resolve();
        return new Promise<void>((resolve) => {
          sock.once("close", () => resolve());
          sock.destroy();
        });
      },
    };
  }

  protected override explain(err: unknown): Failure {
    const code = errorCode(err);
    const reasons: Record<string, string> = {
      ECONNREFUSED: "connection refused",
      ECONNRESET: "connection reset",
      EPIPE: "connection reset",
      ETIMEDOUT: "no answer",
      EHOSTUNREACH: "host unreachable",
      ENETUNREACH: "network unreachable",
      ENOTFOUND: `host name ${this.host} not found`,
      EAI_AGAIN: `host name ${this.host} could not be looked up`,
    };
    const known = code ? reasons[code] : undefined;
    return { reason: known ?? errorText(err), kind: "connection" };
  }
}
