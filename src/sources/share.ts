import net from "node:net";
import type { Logger } from "../util/log.js";

/**
 * `meters[].share`: the meter's raw byte stream, exactly as it arrives, served over TCP to any number of readers (a
 * logger, a second Home Assistant, a heat pump controller), as a P1 splitter would. Writing to the readers never
 * waits: a reader that does not keep up (more than `maxBufferBytes` not yet taken) is dropped with one log line, so
 * the meter's own path is never slowed by it.
 */
export interface ShareOptions {
  port: number;
  host: string;
  maxClients: number;
  maxBufferBytes?: number;
}

export class ShareServer {
  /** The server of a meter's `share` option, or none without it. */
  static of(
    share: { port: number; host: string; max_clients: number } | undefined,
    log: Logger,
  ): ShareServer | undefined {
    return share
      ? new ShareServer({ port: share.port, host: share.host, maxClients: share.max_clients }, log)
      : undefined;
  }

  private readonly clients = new Set<net.Socket>();
  private server?: net.Server;
  private readonly maxBuffer: number;

  constructor(
    private readonly opts: ShareOptions,
    private readonly log: Logger,
  ) {
    this.maxBuffer = opts.maxBufferBytes ?? 256 * 1024;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get port(): number {
    return (this.server?.address() as net.AddressInfo | null)?.port ?? this.opts.port;
  }

  async start(): Promise<void> {
    const server = net.createServer((sock) => this.accept(sock));
    server.maxConnections = this.opts.maxClients;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) => this.log.warn(`sharing the meter's data: ${err.message}`));
    this.log.info(`sharing the meter's raw data on tcp://${this.opts.host}:${this.port}`);
  }

  /** Hands the bytes to every reader; never waits. */
  write(chunk: Buffer): void {
    for (const sock of this.clients) {
      if (sock.writableLength > this.maxBuffer) {
        this.log.warn(`share: the reader at ${peer(sock)} does not keep up with the meter; disconnected`);
        this.drop(sock);
        continue;
      }
      sock.write(chunk);
    }
  }

  async stop(): Promise<void> {
    for (const sock of this.clients) this.drop(sock);
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    // Readers only read: whatever they send is ignored, and a reader that goes away is forgotten.
    sock.on("data", () => {});
    sock.on("error", () => this.drop(sock));
    sock.on("close", () => this.clients.delete(sock));
    this.clients.add(sock);
  }

  private drop(sock: net.Socket): void {
    this.clients.delete(sock);
    sock.destroy();
  }
}

function peer(sock: net.Socket): string {
  return `${sock.remoteAddress ?? "?"}:${sock.remotePort ?? "?"}`;
}
