import type { Bus } from "./bus.js";
import type { Config } from "./config/schema.js";
import { bridgeDiagnosticsOnly } from "./model/quantities.js";
import type { Clock, Timer } from "./util/clock.js";
import type { Logger } from "./util/log.js";

/**
 * The bridge's own health, for whatever restarts a stuck bridge (Docker's HEALTHCHECK, the add-on watchdog, a
 * systemd timer) and for a person asking "is it working?": per meter, whether valid data arrive; whether the broker
 * is connected; whether the archive takes writes; how much the outputs hold back. Published as the retained JSON
 * topic `<base>/bridge/health` and served as `GET /health` (200 or 503) when the web server is on.
 *
 * Failing means something a restart may cure or a person must look at: a live meter without a valid frame for
 * longer than its `timeout` (also right after the start), the broker away for more than a minute, the archive
 * refusing writes. Interval meters (Smart Meter Texas, SmartHub) deliver once a day and never fail it.
 */
export interface HealthReport {
  status: "ok" | "failing";
  time: string;
  /** One line per failing part, in words a user can act on. */
  problems: string[];
  meters: Record<
    string,
    {
      type: string;
      online: boolean | null;
      /** When the last valid telegram or fragment (live meters) or interval import (the others) arrived. */
      last_valid: string | null;
      last_valid_age_s: number | null;
      frames_received?: number;
      frames_rejected?: number;
    }
  >;
  mqtt: { connected: boolean; since: string | null };
  archive: { enabled: boolean; writable: boolean; queued: number };
  influx?: { buffered: number; failures: number };
}

export interface HealthProbes {
  mqttConnected(): boolean;
  archive?: () => { queued: number; batches: number; failedBatches: number };
  influx?: () => { buffered: number; failures: number };
}

const LIVE = new Set(["dsmr", "raven", "han"]);
/** The broker may restart (an add-on update takes ~30 s) before the bridge counts as failing. */
const MQTT_GRACE_MS = 60_000;

interface MeterHealth {
  type: string;
  timeoutS: number;
  online: boolean | null;
  lastValid: number | null;
  received?: number;
  rejected?: number;
}

export class HealthMonitor {
  private readonly meters = new Map<string, MeterHealth>();
  private readonly startedAt: number;
  private mqttSince: number;
  private mqttWas = false;
  private archiveSeen = { batches: 0, failedBatches: 0 };
  private archiveWritable = true;
  private timer?: Timer;
  private lastStatus?: string;
  private readonly listeners: ((r: HealthReport) => void)[] = [];

  constructor(
    private readonly cfg: Config,
    private readonly bus: Bus,
    private readonly probes: HealthProbes,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.startedAt = clock.now();
    this.mqttSince = this.startedAt;
    for (const m of cfg.meters)
      this.meters.set(m.id, {
        type: m.type,
        timeoutS: "timeout" in m && typeof m.timeout === "number" && m.timeout > 0 ? m.timeout : 60,
        online: null,
        lastValid: null,
      });
  }

  /** Called with every report (every 30 s and whenever the status changes). */
  onReport(listener: (r: HealthReport) => void): void {
    this.listeners.push(listener);
  }

  start(everyMs = 30_000): void {
    this.bus.subscribe("health", "status", (s) => {
      const m = this.meters.get(s.meterId);
      if (!m) return;
      const before = m.received ?? 0;
      m.online = s.online;
      m.received = s.framesReceived;
      m.rejected = s.framesRejected;
      if (s.framesReceived > before) m.lastValid = this.clock.now();
      this.check();
    });
    this.bus.subscribe("health", "reading", (r) => {
      const m = this.meters.get(r.meterId);
      if (!m || bridgeDiagnosticsOnly(r.values)) return;
      m.lastValid = this.clock.now();
      if (m.online === null && LIVE.has(m.type)) m.online = true;
    });
    this.bus.subscribe("health", "intervals", (list) => {
      const now = this.clock.now();
      for (const i of list) {
        const m = this.meters.get(i.meterId);
        if (m) m.lastValid = now;
      }
    });
    const tick = (): void => {
      this.timer = this.clock.setTimeout(tick, everyMs);
      this.emit();
    };
    this.timer = this.clock.setTimeout(tick, 1000);
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.bus.unsubscribeAll("health");
  }

  /** Reports again at once when the overall status changed. */
  check(): void {
    const status = this.report().status;
    if (status !== this.lastStatus) this.emit();
  }

  private emit(): void {
    const r = this.report();
    if (this.lastStatus !== undefined && r.status !== this.lastStatus) {
      if (r.status === "failing") this.log.warn(`health: failing: ${r.problems.join("; ")}`);
      else this.log.info("health: ok again");
    }
    this.lastStatus = r.status;
    for (const l of this.listeners) l(r);
  }

  report(): HealthReport {
    const now = this.clock.now();
    const problems: string[] = [];
    const meters: HealthReport["meters"] = {};
    for (const [id, m] of this.meters) {
      const age = m.lastValid === null ? null : Math.round((now - m.lastValid) / 1000);
      meters[id] = {
        type: m.type,
        online: m.online,
        last_valid: m.lastValid === null ? null : new Date(m.lastValid).toISOString(),
        last_valid_age_s: age,
        ...(m.received !== undefined ? { frames_received: m.received, frames_rejected: m.rejected ?? 0 } : {}),
      };
      if (!LIVE.has(m.type)) continue;
      const quietS = (now - (m.lastValid ?? this.startedAt)) / 1000;
      if (m.online === false || quietS > m.timeoutS)
        problems.push(
          `meter ${id}: no valid ${m.type === "raven" ? "fragment" : m.type === "han" ? "frame" : "telegram"} for ${Math.round(quietS)} s${m.rejected ? ` (${m.rejected} rejected)` : ""}`,
        );
    }
    const connected = this.probes.mqttConnected();
    if (connected !== this.mqttWas) {
      this.mqttWas = connected;
      this.mqttSince = now;
    }
    if (!connected && now - this.mqttSince > MQTT_GRACE_MS)
      problems.push(`MQTT: not connected to the broker for ${Math.round((now - this.mqttSince) / 1000)} s`);
    const a = this.probes.archive?.();
    if (a) {
      if (a.failedBatches > this.archiveSeen.failedBatches) this.archiveWritable = false;
      else if (a.batches > this.archiveSeen.batches) this.archiveWritable = true;
      this.archiveSeen = { batches: a.batches, failedBatches: a.failedBatches };
      if (!this.archiveWritable) problems.push(`archive: writes to ${this.cfg.archive.path} fail`);
    }
    return {
      status: problems.length ? "failing" : "ok",
      time: new Date(now).toISOString(),
      problems,
      meters,
      mqtt: { connected, since: new Date(this.mqttSince).toISOString() },
      archive: { enabled: a !== undefined, writable: a ? this.archiveWritable : false, queued: a?.queued ?? 0 },
      ...(this.probes.influx ? { influx: this.probes.influx() } : {}),
    };
  }
}
