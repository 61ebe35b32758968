import { existsSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type BetterSqlite3 from "better-sqlite3";
import type { Bus } from "../bus.js";
import { type Config, type MeterConfig, secretsOf } from "../config/schema.js";
import type { HealthMonitor } from "../health.js";
import type { LoadAdvisorService, LoadSnapshot } from "../loads/index.js";
import { loadStateMessage } from "../loads/index.js";
import { openArchiveReadOnly } from "../outputs/archive/index.js";
import { describeUrl } from "../outputs/mqtt/index.js";
import { DECODERS } from "../sources/index.js";
import type { Clock } from "../util/clock.js";
import type { Logger } from "../util/log.js";
import { VERSION } from "../version.js";
import { hintFor } from "./hints.js";
import { History, MAX_DAYS } from "./history.js";
import { iso, LiveState } from "./live.js";
import { BodyError, readJson, sendJson, type WebServer } from "./server.js";

/** What the page reads from the running bridge; each part is absent when it is not configured. */
export interface PageParts {
  config: Config;
  bus: Bus;
  clock: Clock;
  log: Logger;
  health: HealthMonitor;
  mqtt?: { connected: boolean };
  archive?: { stats: { written: number; queued: number; failedBatches: number } };
  statistics?: { stats: { syncs: number; rows: number } };
  influx?: { writer: { buffered: number; stats: { failures: number } } };
  loads?: LoadAdvisorService;
}

/** Pasted captures up to this size are decoded; longer ones are refused before any work. */
export const MAX_DECODE_BYTES = 64 * 1024;
const MAX_DECODE_ITEMS = 50;
const DECODE_TIMEOUT_MS = 5000;
const MAX_TIMELINE = 50;
const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};
const INGRESS_PATH = /^\/api\/hassio_ingress\/[A-Za-z0-9_-]{1,128}$/;

/** The page's files: src/web/static in the package (shipped as is, see package.json `files`). */
export function staticDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the package root (package.json)");
    dir = up;
  }
  return join(dir, "src", "web", "static");
}

/**
 * The page and its API on the bridge's web server: GET / and its files, /api/status, /api/live, /api/events
 * (server-sent events), /api/history, /api/hours, /api/calendar, /api/loads, POST /api/loads/mode, POST /api/decode.
 */
export class Page {
  readonly live: LiveState;
  private db?: BetterSqlite3.Database;
  private history?: History;
  private readonly timelines = new Map<string, { time: string; on: boolean; mode: string; reason: string }[]>();
  private decoding = 0;
  private stopped = false;
  private readonly index: string;
  private readonly secrets: string[];

  constructor(private readonly p: PageParts) {
    this.live = new LiveState(
      p.config.meters.map((m) => m.id),
      p.clock,
      p.config.web?.max_clients ?? 10,
    );
    this.secrets = secretsOf(p.config).filter((s) => s.length >= 4);
    const dir = staticDir();
    this.index = readFileSync(join(dir, "index.html"), "utf8");
    this.files = ["app.js", "app.css"].map((f) => ({ path: `/${f}`, body: readFileSync(join(dir, f)) }));
  }

  private readonly files: { path: string; body: Buffer }[];

  mount(server: WebServer): void {
    for (const f of this.files) server.asset(f.path, MIME[f.path.slice(f.path.lastIndexOf("."))]!, f.body);
    server.get("/", (req, res) => this.sendIndex(req, res));
    server.get("/api/status", (_req, res) => sendJson(res, 200, this.scrub(this.status())));
    server.get("/api/live", (_req, res) => sendJson(res, 200, this.live.snapshot()));
    server.get("/api/events", (_req, res) => this.live.follow(res));
    server.get("/api/history", (req, res) => this.withArchive(res, (h) => this.daily(h, req, res)));
    server.get("/api/hours", (req, res) => this.withArchive(res, (h) => this.hours(h, req, res)));
    server.get("/api/calendar", (req, res) => this.withArchive(res, (h) => this.calendar(h, req, res)));
    server.get("/api/loads", (_req, res) => sendJson(res, 200, this.loadList()));
    server.post("/api/loads/mode", (req, res) => this.setMode(req, res));
    server.post("/api/decode", (req, res) => this.decode(req, res));
  }

  start(): void {
    this.live.start(this.p.bus);
    this.p.loads?.advisor.onChange((s) => {
      if (this.stopped) return;
      this.record(s);
      this.live.broadcast("load", this.loadJson(s));
    });
    for (const s of this.p.loads?.advisor.snapshots() ?? []) this.record(s);
  }

  stop(): void {
    this.stopped = true;
    this.live.stop(this.p.bus);
    this.db?.close();
    this.db = undefined;
  }

  private sendIndex(req: IncomingMessage, res: ServerResponse): void {
    // Behind ingress the page lives under /api/hassio_ingress/<token>/; every URL in it is relative to that.
    const prefix = req.headers["x-ingress-path"];
    const base = typeof prefix === "string" && INGRESS_PATH.test(prefix) ? `${prefix}/` : "./";
    const html = this.index.replace("<head>", `<head>\n<base href="${base}">`);
    res.writeHead(200, { "content-type": MIME[".html"]!, "cache-control": "no-store" });
    res.end(html);
  }

  /** Nothing configured as a secret leaves through the page, whatever a source put in a frame or a reason. */
  private scrub(body: unknown): unknown {
    let text = JSON.stringify(body);
    for (const s of this.secrets) text = text.split(JSON.stringify(s).slice(1, -1)).join("***");
    return JSON.parse(text);
  }

  status(): Record<string, unknown> {
    const p = this.p;
    const cfg = p.config;
    const report = p.health.report();
    return {
      version: VERSION,
      time: iso(p.clock.now()),
      status: report.status,
      problems: report.problems,
      meters: cfg.meters.map((m) => {
        const l = this.live.meters.get(m.id);
        const h = report.meters[m.id];
        return {
          id: m.id,
          name: m.name ?? m.id,
          type: m.type,
          transport: transportOf(m),
          encrypted: "key" in m && typeof m.key === "string",
          online: l?.online ?? h?.online ?? null,
          last_frame: l?.lastFrameAt ? iso(l.lastFrameAt) : (h?.last_valid ?? null),
          last_reading: l?.time ? iso(l.time) : null,
          frames_received: l?.framesReceived ?? h?.frames_received ?? 0,
          frames_rejected: l?.framesRejected ?? h?.frames_rejected ?? 0,
          rejections: (l?.rejections ?? []).map((r) => ({
            time: iso(r.time),
            reason: r.reason,
            hint: hintFor(r.reason),
          })),
          last_raw: l?.lastRaw ?? null,
          identity: l?.info ?? {},
        };
      }),
      mqtt: {
        connected: p.mqtt?.connected === true,
        since: report.mqtt.since,
        broker: describeUrl(cfg.mqtt.url),
        base_topic: cfg.mqtt.base_topic,
      },
      statistics: p.statistics
        ? { enabled: true, syncs: p.statistics.stats.syncs, rows: p.statistics.stats.rows }
        : { enabled: false },
      influx: p.influx
        ? { enabled: true, buffered: p.influx.writer.buffered, failures: p.influx.writer.stats.failures }
        : { enabled: false },
      archive: {
        enabled: cfg.archive.enabled,
        path: cfg.archive.path,
        size_bytes: cfg.archive.enabled ? archiveSize(cfg.archive.path) : null,
        written: p.archive?.stats.written ?? 0,
        queued: p.archive?.stats.queued ?? 0,
        writable: report.archive.writable,
      },
      loads: (p.loads?.configured ?? []).length,
      decoders: Object.keys(DECODERS),
      followers: this.live.followers,
    };
  }

  // History ------------------------------------------------------------------------------------------------------

  private withArchive(res: ServerResponse, f: (h: History) => void): void {
    const cfg = this.p.config.archive;
    if (!cfg.enabled) {
      sendJson(res, 404, { error: "The archive is turned off (archive.enabled), so there is no history." });
      return;
    }
    if (!this.history) {
      if (!existsSync(cfg.path)) {
        sendJson(res, 404, { error: "The archive has no data yet." });
        return;
      }
      this.db = openArchiveReadOnly(cfg.path);
      const intervals = new Set(
        this.p.config.meters.filter((m) => m.type === "smt" || m.type === "smarthub").map((m) => m.id),
      );
      this.history = new History(this.db, intervals);
    }
    f(this.history);
  }

  private meterParam(url: URLSearchParams, res: ServerResponse): string | undefined {
    const id = url.get("meter") ?? "";
    if (this.p.config.meters.some((m) => m.id === id)) return id;
    sendJson(res, 400, { error: `no meter ${JSON.stringify(id.slice(0, 40))} in the configuration` });
    return undefined;
  }

  private daily(h: History, req: IncomingMessage, res: ServerResponse) {
    const q = query(req);
    const meter = this.meterParam(q, res);
    if (!meter) return;
    const to = q.get("to") ?? iso(this.p.clock.now()).slice(0, 10);
    const days = Math.min(MAX_DAYS, Math.max(1, Number(q.get("days") ?? 31) || 31));
    if (!DAY.test(to)) return sendJson(res, 400, { error: "to: expected a day, YYYY-MM-DD" });
    const from = new Date(Date.parse(`${to}T00:00:00Z`) - (days - 1) * 86_400_000).toISOString().slice(0, 10);
    sendJson(res, 200, { meter, from, to, days: h.daily(meter, from, to) });
  }

  private hours(h: History, req: IncomingMessage, res: ServerResponse) {
    const q = query(req);
    const meter = this.meterParam(q, res);
    if (!meter) return;
    const day = q.get("day") ?? "";
    if (!DAY.test(day)) return sendJson(res, 400, { error: "day: expected YYYY-MM-DD" });
    const from = `${day}T00:00:00Z`;
    const to = new Date(Date.parse(from) + 86_400_000).toISOString().replace(".000Z", "Z");
    sendJson(res, 200, { meter, day, hours: h.hourly(meter, from, to) });
  }

  private calendar(h: History, req: IncomingMessage, res: ServerResponse) {
    const q = query(req);
    const meter = this.meterParam(q, res);
    if (!meter) return;
    const month = q.get("month") ?? iso(this.p.clock.now()).slice(0, 7);
    if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) return sendJson(res, 400, { error: "month: expected YYYY-MM" });
    const type = this.p.config.meters.find((m) => m.id === meter)?.type;
    if (type !== "smt" && type !== "smarthub")
      return sendJson(res, 400, {
        error: `${meter} is a live meter; the calendar is for Smart Meter Texas and SmartHub`,
      });
    sendJson(res, 200, { meter, month, today: iso(this.p.clock.now()).slice(0, 10), days: h.calendar(meter, month) });
  }

  // Loads --------------------------------------------------------------------------------------------------------

  private record(s: LoadSnapshot): void {
    let t = this.timelines.get(s.id);
    if (!t) this.timelines.set(s.id, (t = []));
    const last = t.at(-1);
    if (last && last.on === s.on && last.mode === s.mode) return;
    t.push({ time: iso(s.time), on: s.on, mode: s.mode, reason: s.reason });
    if (t.length > MAX_TIMELINE) t.shift();
  }

  private loadJson(s: LoadSnapshot): Record<string, unknown> {
    return { id: s.id, ...loadStateMessage(s), timeline: this.timelines.get(s.id) ?? [] };
  }

  private loadList(): unknown[] {
    const loads = this.p.loads;
    if (!loads) return [];
    const snaps = new Map(loads.advisor.snapshots().map((s) => [s.id, s]));
    return loads.configured.map((l) => {
      const s = snaps.get(l.id);
      return {
        name: l.name ?? l.id,
        meter: l.meter,
        power_w: l.power_w,
        ...(s ? this.loadJson(s) : { id: l.id, state: null, mode: "auto", reason: "starting", timeline: [] }),
      };
    });
  }

  private async setMode(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await this.body(req, res, 1024);
    if (body === undefined) return;
    const { id, mode } = body as { id?: unknown; mode?: unknown };
    const loads = this.p.loads;
    if (!loads || typeof id !== "string" || typeof mode !== "string")
      return sendJson(res, 400, { error: "expected {id, mode}" });
    if (!loads.setMode(id, mode))
      return sendJson(res, 400, {
        error: `no load ${JSON.stringify(id.slice(0, 40))} or mode not one of auto, on, off`,
      });
    this.p.log.info(`web: ${id} set to ${mode.trim().toLowerCase()} from the page`);
    const s = loads.advisor.snapshots().find((x) => x.id === id);
    sendJson(res, 200, s ? this.loadJson(s) : { id, mode });
  }

  // Decode -------------------------------------------------------------------------------------------------------

  private async decode(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.decoding >= 2) return sendJson(res, 429, { error: "another decode is running; try again in a moment" });
    this.decoding++;
    try {
      const body = await this.body(req, res, MAX_DECODE_BYTES * 2 + 1024);
      if (body === undefined) return;
      const { format, text, key, aad, timezone } = body as Record<string, unknown>;
      const load = typeof format === "string" && Object.hasOwn(DECODERS, format) ? DECODERS[format] : undefined;
      if (!load) return sendJson(res, 400, { error: `format: one of ${Object.keys(DECODERS).join(", ")}` });
      if (typeof text !== "string" || text.trim() === "")
        return sendJson(res, 400, { error: "paste a telegram, fragment, row or frame to decode" });
      // A browser's text box gives lines ending in \n; a P1 telegram's CRC counts the meter's \r\n.
      const pasted = format === "dsmr" ? `${text.replace(/\r?\n/g, "\r\n").replace(/(\r\n)?$/, "\r\n")}` : text;
      const bytes = Buffer.from(pasted, format === "dsmr" ? "latin1" : "utf8");
      if (bytes.length > MAX_DECODE_BYTES)
        return sendJson(res, 413, { error: `at most ${MAX_DECODE_BYTES / 1024} KiB can be decoded here` });
      const hex = (v: unknown): string | undefined =>
        typeof v === "string" && /^[0-9a-fA-F]{32}$/.test(v.trim()) ? v.trim() : undefined;
      if ((key !== undefined && key !== "" && !hex(key)) || (aad !== undefined && aad !== "" && !hex(aad)))
        return sendJson(res, 400, { error: "key and aad: 32 hex digits each" });
      const decoder = await load();
      const items: { ok: boolean; json?: unknown; reason?: string; hint?: string }[] = [];
      let more = false;
      const run = (async () => {
        async function* input(): AsyncIterable<Buffer> {
          yield bytes;
        }
        for await (const it of decoder(input(), {
          source: "pasted text",
          ...(hex(key) ? { key: hex(key) } : {}),
          ...(hex(aad) ? { aad: hex(aad) } : {}),
          ...(typeof timezone === "string" && timezone.length < 64 ? { timezone } : {}),
        })) {
          if (items.length >= MAX_DECODE_ITEMS) {
            more = true;
            break;
          }
          const hint = it.ok ? undefined : hintFor(it.reason);
          items.push(it.ok ? { ok: true, json: it.json } : { ok: false, reason: it.reason, ...(hint ? { hint } : {}) });
        }
      })();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">((r) => {
        timer = setTimeout(() => r("timeout"), DECODE_TIMEOUT_MS);
      });
      const outcome = await Promise.race([run.then(() => "done" as const), timeout]).finally(() => clearTimeout(timer));
      if (outcome === "timeout") return sendJson(res, 503, { error: "decoding took too long" });
      // What was pasted never comes back, nor the key: the answer is what was read from it.
      sendJson(res, 200, { format, items, more });
    } catch (err) {
      sendJson(res, 400, { error: `cannot decode: ${(err as Error).message}` });
    } finally {
      this.decoding--;
    }
  }

  private async body(req: IncomingMessage, res: ServerResponse, max: number): Promise<unknown> {
    try {
      return await readJson(req, max);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      res.setHeader("connection", "close");
      sendJson(res, err.status, { error: err.message });
      return undefined;
    }
  }
}

const DAY = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

function query(req: IncomingMessage): URLSearchParams {
  const url = req.url ?? "";
  const at = url.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : url.slice(at + 1, at + 1 + 1024));
}

/** How a meter is reached, in words and without any secret. */
function transportOf(m: MeterConfig): string {
  switch (m.type) {
    case "smt":
      return [m.imap ? `email from ${m.imap.host}` : undefined, "folder" in m && m.folder ? `folder ${m.folder}` : ""]
        .filter(Boolean)
        .join(", ");
    case "smarthub":
      return m.base_url;
    default:
      return "port" in m && typeof m.port === "string" ? m.port.replace(/^file:.*[\\/]/, "file:") : m.type;
  }
}

function archiveSize(path: string): number | null {
  let total = 0;
  let found = false;
  for (const suffix of ["", "-wal"]) {
    try {
      total += statSync(path + suffix).size;
      found = true;
    } catch {
      // absent
    }
  }
  return found ? total : null;
}
