import type { ServerResponse } from "node:http";
import type { Bus, BusEvents } from "../bus.js";
import { quantity } from "../model/quantities.js";
import type { Clock } from "../util/clock.js";

/**
 * What the page shows of each meter as it happens, kept from the bus: the latest values, a few minutes of power,
 * the source's counters and the last frames (taken and rejected), and the browsers following it by server-sent
 * events. Everything is bounded: values per meter by the catalogue, power by POWER_POINTS, rejections by
 * MAX_REJECTIONS, frames by the source (16 KiB), followers by `maxClients`.
 */
export interface MeterLive {
  values: Record<string, number | string>;
  /** Meter time of the latest reading (UTC ms). */
  time: number | null;
  /** When the latest valid frame arrived (the bridge's clock). */
  lastFrameAt: number | null;
  online: boolean | null;
  framesReceived: number;
  framesRejected: number;
  lastRaw: string | null;
  rejections: { time: number; reason: string }[];
  power: [number, number][];
  info: { manufacturer?: string; model?: string; serialNumber?: string; swVersion?: string };
}

const POWER_POINTS = 300;
const MAX_REJECTIONS = 5;
const OWNER = "web";
/** A comment line now and then keeps proxies (the Supervisor's) from closing a quiet stream. */
const KEEPALIVE_MS = 20_000;

export class LiveState {
  readonly meters = new Map<string, MeterLive>();
  private readonly clients = new Set<ServerResponse>();
  private keepalive?: NodeJS.Timeout;

  constructor(
    meterIds: readonly string[],
    private readonly clock: Clock,
    private readonly maxClients: number,
  ) {
    for (const id of meterIds) this.meters.set(id, emptyMeter());
  }

  start(bus: Bus): void {
    bus.subscribe(OWNER, "reading", (r) => {
      const m = this.meters.get(r.meterId);
      if (!m) return;
      Object.assign(m.values, r.values);
      m.time = r.time;
      // The chart runs on the time of receipt: a meter's clock may jump (set, or a capture replayed in a loop).
      const power = powerOf(r.values);
      const received = this.clock.now();
      if (power !== undefined) {
        m.power.push([received, power]);
        if (m.power.length > POWER_POINTS) m.power.splice(0, m.power.length - POWER_POINTS);
      }
      this.broadcast("reading", {
        meter: r.meterId,
        time: iso(r.time),
        received: iso(received),
        values: displayValues(r.values),
        power,
      });
    });
    bus.subscribe(OWNER, "status", (s) => {
      const m = this.meters.get(s.meterId);
      if (!m) return;
      m.online = s.online;
      m.framesReceived = s.framesReceived;
      m.framesRejected = s.framesRejected;
      this.broadcast("status", {
        meter: s.meterId,
        online: s.online,
        frames_received: s.framesReceived,
        frames_rejected: s.framesRejected,
      });
    });
    bus.subscribe(OWNER, "meterInfo", (i) => {
      const m = this.meters.get(i.meterId);
      if (!m) return;
      const { meterId: _, ...info } = i;
      m.info = info;
    });
    bus.subscribe(OWNER, "frame", (f: BusEvents["frame"]) => {
      const m = this.meters.get(f.meterId);
      if (!m) return;
      if (f.raw !== undefined) m.lastRaw = printable(f.raw);
      if (f.ok) m.lastFrameAt = f.time;
      else {
        m.rejections.push({ time: f.time, reason: f.reason ?? "rejected" });
        if (m.rejections.length > MAX_REJECTIONS) m.rejections.shift();
      }
    });
    this.keepalive = setInterval(() => {
      for (const c of this.clients) c.write(": keep-alive\n\n");
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  stop(bus: Bus): void {
    bus.unsubscribeAll(OWNER);
    if (this.keepalive) clearInterval(this.keepalive);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  /** The live values of every meter, as the page draws them first. */
  snapshot(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [id, m] of this.meters)
      out[id] = {
        time: m.time === null ? null : iso(m.time),
        values: displayValues(m.values),
        power: m.power.map(([t, w]) => [iso(t), w]),
      };
    return out;
  }

  get followers(): number {
    return this.clients.size;
  }

  /** Answers GET /api/events: a server-sent event stream, or 503 when `maxClients` browsers already follow. */
  follow(res: ServerResponse): void {
    if (this.clients.size >= this.maxClients) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "30" });
      res.end(`Already ${this.maxClients} pages follow the live values (web.max_clients); close one and retry.\n`);
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      // Ask proxies (nginx, the Supervisor) not to hold events back.
      "x-accel-buffering": "no",
    });
    res.write(`retry: 3000\nevent: hello\ndata: ${JSON.stringify({ time: iso(this.clock.now()) })}\n\n`);
    this.clients.add(res);
    res.on("close", () => this.clients.delete(res));
    // A page gone mid-write is only a page gone: never an uncaught error in the bridge.
    res.on("error", () => this.clients.delete(res));
  }

  /** An event for every page following; one that cannot keep up (its buffer past 1 MiB) is dropped. */
  broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of this.clients) {
      if (c.writableLength > 1 << 20) {
        c.destroy();
        this.clients.delete(c);
        continue;
      }
      c.write(text);
    }
  }
}

function emptyMeter(): MeterLive {
  return {
    values: {},
    time: null,
    lastFrameAt: null,
    online: null,
    framesReceived: 0,
    framesRejected: 0,
    lastRaw: null,
    rejections: [],
    power: [],
    info: {},
  };
}

/** Net grid power where the meter gives it, else import power. */
function powerOf(values: Record<string, number | string>): number | undefined {
  const net = values.power_net_w;
  if (typeof net === "number" && Number.isFinite(net)) return net;
  const imp = values.power_import_w;
  if (typeof imp === "number" && Number.isFinite(imp)) return imp - (Number(values.power_export_w) || 0);
  return undefined;
}

/** Values with their label and unit from the catalogue, diagnostics last; names as the MQTT state has them. */
export function displayValues(
  values: Record<string, number | string>,
): { name: string; label: string; value: number | string; unit?: string }[] {
  const rows = Object.entries(values).map(([name, value]) => {
    const q = quantity(name);
    return {
      name,
      label: q?.label ?? name,
      value,
      ...(q?.unit ? { unit: q.unit } : {}),
      diagnostic: q?.entityCategory === "diagnostic",
    };
  });
  rows.sort((a, b) => Number(a.diagnostic) - Number(b.diagnostic));
  return rows.map(({ diagnostic: _, ...r }) => r);
}

export const iso = (ms: number): string => new Date(ms).toISOString();

/** A text frame as it is; a binary one (HAN, an encrypted P1 frame) as hex, 16 bytes a line. */
export function printable(raw: string): string {
  if (!/[^\x20-\x7e\r\n\t]/.test(raw)) return raw;
  const hex = Buffer.from(raw, "latin1").toString("hex");
  return (hex.match(/.{1,32}/g) ?? []).map((line) => line.replace(/(..)(?!$)/g, "$1 ")).join("\n");
}
