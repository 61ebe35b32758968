import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../util/log.js";

/**
 * The bridge's HTTP server (`web:` in the config): bound to loopback unless `host` says otherwise. Routes are
 * registered by the parts that serve something (the health check; the page and its API build on this).
 */
export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export class WebServer {
  private readonly routes = new Map<string, Route>();
  private server?: Server;

  constructor(
    private readonly cfg: { port: number; host: string },
    private readonly log: Logger,
  ) {}

  /** `GET path` (exact match, query ignored). */
  get(path: string, route: Route): void {
    this.routes.set(path, route);
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.cfg.port, this.cfg.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.log.info(`web: listening on http://${this.cfg.host}:${this.port}/`);
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.cfg.port;
  }

  stop(): Promise<void> {
    const s = this.server;
    if (!s) return Promise.resolve();
    this.server = undefined;
    return new Promise((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? "/").split("?")[0]!;
      const route = req.method === "GET" || req.method === "HEAD" ? this.routes.get(path) : undefined;
      if (!route) {
        res.writeHead(req.method === "GET" || req.method === "HEAD" ? 404 : 405, { "content-type": "text/plain" });
        res.end("not found\n");
        return;
      }
      await route(req, res);
    } catch (err) {
      this.log.error(`web: ${req.method} failed: ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end();
    }
  }
}

/** Sends a JSON body with its status. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(text);
}
