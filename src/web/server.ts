import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import type { Logger } from "../util/log.js";
import { BasicAuth } from "./auth.js";

/**
 * The bridge's HTTP server (`web:` in the config): bound to loopback unless `host` says otherwise. Routes are
 * registered by the parts that serve something (the health check, the page and its API in src/web/api.ts).
 *
 * Who may ask: with `ingress` only Home Assistant's Supervisor (the add-on's panel); with `auth` only who knows the
 * user and password. Paths registered as open (GET /health, for Docker and the watchdog) skip both.
 */
export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface WebServerConfig {
  port: number;
  host: string;
  ingress?: boolean;
  auth?: { user: string; password_hash: string };
}

/** The Supervisor's address on the hassio network: ingress requests come from it alone. */
export const SUPERVISOR_ADDRESS = "172.30.32.2";

/** Content-Security-Policy of every answer: nothing from elsewhere, no inline script. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'self'; base-uri 'self'; form-action 'none'";

interface Asset {
  type: string;
  body: Buffer;
  gzip?: Buffer;
  etag: string;
}

export class WebServer {
  private readonly routes = new Map<string, Route>();
  private readonly open = new Set<string>();
  private readonly assets = new Map<string, Asset>();
  private readonly auth?: BasicAuth;
  private readonly ingressFrom: ReadonlySet<string>;
  private server?: Server;

  constructor(
    private readonly cfg: WebServerConfig,
    private readonly log: Logger,
    /** Where ingress requests may come from (tests use loopback). */
    opts: { ingressFrom?: readonly string[] } = {},
  ) {
    if (cfg.auth) this.auth = new BasicAuth(cfg.auth);
    this.ingressFrom = new Set(opts.ingressFrom ?? [SUPERVISOR_ADDRESS]);
  }

  /** `GET path` (exact match, query ignored). `open`: answered without ingress or auth checks (health probes). */
  get(path: string, route: Route, opts: { open?: boolean } = {}): void {
    this.routes.set(`GET ${path}`, route);
    if (opts.open) this.open.add(path);
  }

  /** `POST path` (exact match); the body is the route's to read, with readJson. */
  post(path: string, route: Route): void {
    this.routes.set(`POST ${path}`, route);
  }

  /** A static file, kept in memory (gzipped once when that helps) and revalidated by its ETag. */
  asset(path: string, type: string, body: Buffer): void {
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    const gz = body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined;
    this.assets.set(path, { type, body, etag, ...(gz && gz.length < body.length ? { gzip: gz } : {}) });
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
    this.log.info(
      `web: listening on http://${this.cfg.host}:${this.port}/${this.cfg.ingress ? " (Home Assistant ingress)" : this.auth ? " (with a password)" : ""}`,
    );
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

  private allowed(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (this.open.has(path) && (req.method === "GET" || req.method === "HEAD")) return true;
    if (this.cfg.ingress) {
      const from = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
      if (!this.ingressFrom.has(from)) {
        res.writeHead(403, { "content-type": "text/plain; charset=utf-8" });
        res.end("This page is opened from Home Assistant's sidebar (ingress).\n");
        return false;
      }
    }
    if (this.auth && !this.auth.check(req)) {
      res.writeHead(401, {
        "content-type": "text/plain; charset=utf-8",
        "www-authenticate": 'Basic realm="meter2mqtt", charset="UTF-8"',
      });
      res.end("The user and password of web.auth are needed.\n");
      return false;
    }
    return true;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? "/").split("?")[0]!;
      res.setHeader("x-content-type-options", "nosniff");
      res.setHeader("referrer-policy", "no-referrer");
      res.setHeader("content-security-policy", CSP);
      if (!this.allowed(req, res, path)) return;
      const method = req.method === "HEAD" ? "GET" : req.method;
      const route = this.routes.get(`${method} ${path}`);
      if (route) {
        await route(req, res);
        return;
      }
      const asset = method === "GET" ? this.assets.get(path) : undefined;
      if (asset) {
        this.sendAsset(req, res, asset);
        return;
      }
      const known = this.routes.has(`GET ${path}`) || this.routes.has(`POST ${path}`) || this.assets.has(path);
      res.writeHead(known ? 405 : 404, { "content-type": "text/plain" });
      res.end(known ? "method not allowed\n" : "not found\n");
    } catch (err) {
      this.log.error(`web: ${req.method} failed: ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end();
    }
  }

  private sendAsset(req: IncomingMessage, res: ServerResponse, a: Asset): void {
    const headers: Record<string, string> = { "content-type": a.type, etag: a.etag, "cache-control": "no-cache" };
    if (req.headers["if-none-match"] === a.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const gzip = a.gzip && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    if (a.gzip) headers.vary = "accept-encoding";
    if (gzip) headers["content-encoding"] = "gzip";
    const body = gzip ? a.gzip! : a.body;
    headers["content-length"] = String(body.length);
    res.writeHead(200, headers);
    res.end(body);
  }
}

/** Sends a JSON body with its status. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(text);
}

/** Why a request body was not taken, as the status and words to answer with. */
export class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A JSON request body of at most `max` bytes. Only `application/json` is taken: a browser sends that type to
 * another site only after asking it (CORS), which this server never allows, so a page elsewhere cannot post here.
 */
export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const type = String(req.headers["content-type"] ?? "");
  if (!/^application\/json\b/i.test(type)) throw new BodyError(415, "send the request as application/json");
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > max) throw new BodyError(413, `the request is larger than ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      // The rest is not read; the answer closes the connection.
      throw new BodyError(413, `the request is larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new BodyError(400, "the request is not valid JSON");
  }
}
