import type { Bus } from "../../bus.js";
import type { RavenMeterConfig } from "../../config/schema.js";
import { createTransport, SerialTransport } from "../../transports/index.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { SourceHealth } from "../health.js";
import { buildCommand, type CommandName, REPLY } from "./commands.js";
import { type Decoded, decodeFragment, KNOWN_FRAGMENTS, normalMac } from "./decode.js";
import { DemandIntegrator } from "./estimate.js";
import { type Fragment, type FragmentEvent, FragmentReader } from "./fragments.js";
import { type CommandTransport, RAVEN_SERIAL } from "./transport.js";

export interface RavenSourceOptions {
  clock?: Clock;
  log?: Logger;
  /** Tests may hand in a transport; normally it comes from the configured port. */
  transport?: CommandTransport;
  /** How often the frame counters are reported when nothing else changes. */
  statusEveryMs?: number;
  /** How often link strength and connection status are asked for (the device also pushes changes). */
  networkEveryMs?: number;
}

/** Why a command failed; only that command fails, the session goes on. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly kind: "warning" | "timeout" | "malformed" | "closed" | "write",
  ) {
    super(message);
    this.name = "CommandError";
  }
}

interface Pending {
  name: CommandName;
  reply: string;
  promise: Promise<Decoded>;
  resolve(d: Decoded): void;
  reject(e: CommandError): void;
  timer?: Timer;
}

type PollKind = "demand" | "summation" | "price" | "network";
const POLL_COMMAND: Record<PollKind, CommandName> = {
  demand: "get_instantaneous_demand",
  summation: "get_current_summation_delivered",
  price: "get_current_price",
  network: "get_network_info",
};
/** Which poll a fragment answers, pushed or polled: a push postpones the poll. */
const POLL_OF_FRAGMENT: Record<string, PollKind> = {
  InstantaneousDemand: "demand",
  CurrentSummationDelivered: "summation",
  PriceCluster: "price",
  NetworkInfo: "network",
  ConnectionStatus: "network",
};
/** Fragments whose values make up the metering snapshot carried by every reading they cause. */
const METERING = new Set(["InstantaneousDemand", "CurrentSummationDelivered", "PriceCluster"]);
const METER_LIST_TRIES = 3;
/** Before this a fragment's TimeStamp is a device whose clock was never set by the meter: receipt time is used. */
const PLAUSIBLE_FROM = Date.UTC(2010, 0, 1);
const ESTIMATED = ["energy_import_estimated_kwh", "energy_export_estimated_kwh"] as const;

/**
 * A Rainforest EMU-2 or RAVEn stick: transport → fragment reader → decoder → readings on the bus, and a
 * command session on the same port. On every (re)connect it finds the meter (get_meter_list, retried: the
 * first reply may be lost among leftovers), reads the device's identity, then polls demand, summation, price
 * and link quality, each at its own interval; whatever the device pushes by itself counts the same and
 * postpones the matching poll. One command is on the wire at a time, each with its own timeout; a `Warning`
 * or a timeout fails that command only.
 *
 * A reading carries the newest demand, summation and price together (a "metering snapshot"), at the time of
 * the fragment that caused it: the device sends them in separate fragments, and the archive keeps one reading
 * per interval, so a summation sent on its own between two demand pushes would mostly never be archived.
 */
export class RavenSource {
  readonly id: string;
  private readonly transport: CommandTransport;
  private readonly reader = new FragmentReader();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly events: FragmentEvent[] = [];
  private readonly integrator: DemandIntegrator;
  private readonly configuredMeter: string | undefined;
  /** Bumped on every open, close and stop: a session step started before it does nothing after it. */
  private gen = 0;
  private stopped = false;
  private readonly health: SourceHealth;
  private lastInfo = "";
  private readonly warned = new Set<string>();
  private readonly unknown = new Set<string>();
  private meterMac: string | undefined;
  private queue: Pending[] = [];
  private inflight: Pending | undefined;
  private readonly polls = new Map<PollKind, Timer>();
  private metering: Record<string, number | string> = {};
  private readonly startedAt: number;
  private lastSummationAt: number | undefined;
  private summationRefused = false;
  private summationTimeouts = 0;
  private estimatingNow = false;
  private resolveFinished!: () => void;
  /** Resolves when a file replay has been read to its end (never for a device). */
  readonly finished = new Promise<void>((r) => {
    this.resolveFinished = r;
  });

  constructor(
    private readonly cfg: RavenMeterConfig,
    private readonly bus: Bus,
    private readonly opts: RavenSourceOptions = {},
  ) {
    this.id = cfg.id;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger(`raven:${cfg.id}`);
    this.startedAt = this.clock.now();
    this.configuredMeter = cfg.meter_mac ? normalMac(cfg.meter_mac) : undefined;
    // Demand normally comes every few seconds; a gap of several polls is an outage, not a steady load.
    this.integrator = new DemandIntegrator(Math.max(300_000, 3 * cfg.demand_interval * 1000));
    this.transport =
      opts.transport ??
      (cfg.port.startsWith("file:") || cfg.port.startsWith("tcp://")
        ? createTransport(cfg.port, {
            replay: { intervalMs: cfg.replay_interval_ms, loop: cfg.replay_loop, split: splitFragments },
            clock: this.clock,
            log: this.log,
          })
        : new SerialTransport(cfg.port, { serial: RAVEN_SERIAL, clock: this.clock, log: this.log }));
    this.health = new SourceHealth({
      meterId: cfg.id,
      bus,
      clock: this.clock,
      log: this.log,
      transport: this.transport,
      frame: "fragment",
      timeoutS: cfg.port.startsWith("file:") ? 0 : cfg.timeout,
      statusEveryMs: opts.statusEveryMs,
    });
    this.transport.on("data", (chunk) => this.onData(chunk));
    this.transport.on("open", () => this.onOpen());
    this.transport.on("close", (reason) => this.onClose(reason));
    this.transport.on("end", () => {
      this.reader.end(this.events);
      this.drain();
      const h = this.health;
      this.log.info(`replay of ${cfg.port} finished: ${h.framesReceived} fragments, ${h.framesRejected} rejected`);
      h.emit();
      this.resolveFinished();
    });
  }

  get stats(): { framesReceived: number; framesRejected: number; online: boolean; meterMac?: string } {
    return {
      framesReceived: this.health.framesReceived,
      framesRejected: this.health.framesRejected,
      online: this.health.online,
      ...(this.meterMac ? { meterMac: this.meterMac } : {}),
    };
  }

  start(): void {
    this.log.info(`reading ${this.transport.description}`);
    this.transport.start();
    this.health.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.endSession("stopped");
    this.health.stop();
    await this.transport.stop();
  }

  // ── the connection ─────────────────────────────────────────────────────────────────────────────

  private get canWrite(): boolean {
    return typeof this.transport.write === "function";
  }

  private onOpen(): void {
    // Whatever the reader held belongs to the old connection; what the device still had buffered arrives
    // first and is skipped as one run of garbage.
    this.endSession("reopened");
    const gen = this.gen;
    this.warned.clear();
    this.health.opened();
    if (this.canWrite) void this.converse(gen);
  }

  private onClose(reason: string): void {
    this.endSession(reason);
    this.health.closed();
  }

  /** Ends what belongs to one connection: commands, polls, half-read fragments, the demand curve. */
  private endSession(reason: string): void {
    this.gen++;
    this.reader.reset();
    this.integrator.gap();
    this.metering = {};
    this.meterMac = undefined;
    for (const t of this.polls.values()) this.clock.clearTimeout(t);
    this.polls.clear();
    const pending = [...(this.inflight ? [this.inflight] : []), ...this.queue];
    this.inflight = undefined;
    this.queue = [];
    for (const p of pending) {
      if (p.timer) this.clock.clearTimeout(p.timer);
      p.reject(new CommandError(`${p.name}: connection ${reason}`, "closed"));
    }
  }

  private live(gen: number): boolean {
    return gen === this.gen && !this.stopped;
  }

  /** The session: find the meter, read the device's identity, start the polls. */
  private async converse(gen: number): Promise<void> {
    let meters: string[] | undefined;
    for (let attempt = 1; attempt <= METER_LIST_TRIES; attempt++) {
      try {
        meters = (await this.command("get_meter_list")).meters ?? [];
        break;
      } catch (err) {
        if (!this.live(gen)) return;
        const e = err as CommandError;
        if (e.kind === "warning") {
          this.log.info(`${e.message}; reading the device's current meter`);
          break;
        }
        if (attempt === METER_LIST_TRIES)
          this.warnOnce("meter-list", `${e.message} (${attempt} tries); reading the device's current meter`);
        else this.log.debug(() => `${e.message}; retrying`);
      }
    }
    if (!this.live(gen)) return;
    this.meterMac = this.chooseMeter(meters);
    try {
      await this.command("get_device_info");
    } catch (err) {
      if (!this.live(gen)) return;
      this.warnOnce("device-info", (err as CommandError).message);
    }
    if (!this.live(gen)) return;
    for (const kind of ["network", "demand", "summation", "price"] as const)
      if (this.intervalMs(kind) > 0) this.poll(kind);
  }

  private chooseMeter(meters: string[] | undefined): string | undefined {
    const wanted = this.configuredMeter;
    if (meters === undefined) return wanted;
    if (meters.length === 0) {
      this.warnOnce("no-meter", "the device is not paired with a meter yet (empty meter list)");
      return wanted;
    }
    if (wanted) {
      if (!meters.includes(wanted))
        this.warnOnce("meter-missing", `meter_mac ${wanted} is not among the device's meters (${meters.join(", ")})`);
      return wanted;
    }
    const first = meters[0]!;
    if (meters.length > 1)
      this.log.info(
        `the device knows ${meters.length} meters (${meters.join(", ")}); reading ${first} (meter_mac chooses)`,
      );
    return first;
  }

  private intervalMs(kind: PollKind): number {
    switch (kind) {
      case "demand":
        return this.cfg.demand_interval * 1000;
      case "summation":
        return this.cfg.summation_interval * 1000;
      case "price":
        return this.cfg.price_interval * 1000;
      case "network":
        return this.opts.networkEveryMs ?? 300_000;
    }
  }

  private poll(kind: PollKind): void {
    const gen = this.gen;
    this.command(POLL_COMMAND[kind]).then(
      () => {
        if (this.live(gen)) this.arm(kind);
      },
      (err: CommandError) => {
        if (!this.live(gen)) return;
        if (kind === "summation") {
          if (err.kind === "warning") this.summationRefused = true;
          else if (err.kind === "timeout") this.summationTimeouts++;
        }
        this.warnOnce(`poll-${kind}-${err.kind}`, err.message);
        this.arm(kind);
      },
    );
  }

  /** (Re)starts the wait before the next poll of `kind`. */
  private arm(kind: PollKind): void {
    const ms = this.intervalMs(kind);
    const old = this.polls.get(kind);
    if (old) this.clock.clearTimeout(old);
    this.polls.delete(kind);
    if (ms <= 0 || this.stopped || !this.canWrite || !this.transport.isOpen) return;
    this.polls.set(
      kind,
      this.clock.setTimeout(() => {
        this.polls.delete(kind);
        this.poll(kind);
      }, ms),
    );
  }

  // ── commands ───────────────────────────────────────────────────────────────────────────────────

  /** Queues a command (once: asking again while it is queued joins the same one) and resolves with its reply. */
  private command(name: CommandName): Promise<Decoded> {
    const same = this.inflight?.name === name ? this.inflight : this.queue.find((p) => p.name === name);
    if (same) return same.promise;
    let resolve!: (d: Decoded) => void;
    let reject!: (e: CommandError) => void;
    const promise = new Promise<Decoded>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Every caller handles the failure; this keeps a failure nobody waits for any more from being "unhandled".
    promise.catch(() => {});
    this.queue.push({ name, reply: REPLY[name], promise, resolve, reject });
    this.pump();
    return promise;
  }

  private pump(): void {
    if (this.inflight || this.queue.length === 0 || !this.transport.write) return;
    const p = this.queue.shift()!;
    this.inflight = p;
    const timeoutS = this.cfg.command_timeout;
    p.timer = this.clock.setTimeout(
      () => this.settle(p, new CommandError(`${p.name}: no <${p.reply}> within ${timeoutS} s`, "timeout")),
      timeoutS * 1000,
    );
    this.log.debug(() => `→ ${p.name}${this.meterMac ? ` (meter ${this.meterMac})` : ""}`);
    this.transport
      .write(buildCommand(p.name, this.meterMac))
      .catch((err: Error) => this.settle(p, new CommandError(`${p.name} not sent: ${err.message}`, "write")));
  }

  private settle(p: Pending, result: Decoded | CommandError): void {
    if (this.inflight !== p) return;
    if (p.timer) this.clock.clearTimeout(p.timer);
    this.inflight = undefined;
    if (result instanceof CommandError) p.reject(result);
    else p.resolve(result);
    this.pump();
  }

  // ── what the device sends ──────────────────────────────────────────────────────────────────────

  private onData(chunk: Buffer): void {
    this.reader.push(chunk, this.events);
    this.drain();
  }

  private drain(): void {
    const events = this.events;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if ("fragment" in ev) {
        const r = decodeFragment(ev.fragment);
        if (r.ok) this.accept(r.decoded, ev.fragment);
        else if (r.unknown) this.skipUnknown(ev.fragment.name);
        else this.reject(`<${ev.fragment.name}>: ${r.reason}`, ev.fragment.name, ev.fragment);
      } else this.reject(ev.rejected, ev.name);
    }
    events.length = 0;
  }

  private accept(d: Decoded, f?: Fragment): void {
    this.health.received(f && fragmentText(f));
    const p = this.inflight;
    if (p && d.name === "Warning")
      this.settle(p, new CommandError(`${p.name}: the device answered "${d.warning}"`, "warning"));
    else if (d.name === "Warning") this.log.warn(`the device warns: "${d.warning}"`);
    if (this.meterMac && d.meterMac && d.meterMac !== this.meterMac) {
      this.warnOnce(`other-meter-${d.meterMac}`, `fragments of meter ${d.meterMac} skipped (reading ${this.meterMac})`);
      return;
    }
    if (p && d.name === p.reply) this.settle(p, d);
    const kind = POLL_OF_FRAGMENT[d.name];
    if (kind && this.polls.has(kind)) this.arm(kind);
    if (d.device) this.identify(d);
    if (Object.keys(d.values).length === 0) return;
    if (!METERING.has(d.name)) {
      this.bus.emit("reading", { meterId: this.id, time: this.clock.now(), values: d.values });
      return;
    }
    const time = d.time !== undefined && d.time >= PLAUSIBLE_FROM ? d.time : this.clock.now();
    if (d.name === "InstantaneousDemand") this.integrator.add(time, d.values.power_net_w as number);
    if (d.name === "CurrentSummationDelivered") {
      this.lastSummationAt = this.clock.now();
      this.summationRefused = false;
      this.summationTimeouts = 0;
    }
    Object.assign(this.metering, d.values);
    this.addEstimates();
    this.bus.emit("reading", { meterId: this.id, time, values: { ...this.metering } });
  }

  /**
   * A device reports no summation when it refuses the command, lets it time out three times running, or has
   * sent none for a while; then energy integrated from demand stands in, under its own names.
   */
  private addEstimates(): void {
    const now = this.clock.now();
    const staleMs = Math.max(900_000, 3 * this.cfg.summation_interval * 1000);
    const fresh = this.lastSummationAt !== undefined && now - this.lastSummationAt < staleMs;
    const estimating =
      !fresh &&
      (this.summationRefused ||
        this.summationTimeouts >= 3 ||
        now - (this.lastSummationAt ?? this.startedAt) >= staleMs);
    if (estimating !== this.estimatingNow) {
      this.estimatingNow = estimating;
      this.log.info(
        estimating
          ? "no summation from the device: publishing energy estimated from demand (energy_*_estimated_kwh)"
          : "the device reports summation again: estimated energy no longer published",
      );
    }
    if (!estimating) {
      for (const k of ESTIMATED) delete this.metering[k];
      return;
    }
    const round = (x: number): number => Math.round(x * 1e6) / 1e6;
    this.metering.energy_import_estimated_kwh = round(this.integrator.importKwh);
    this.metering.energy_export_estimated_kwh = round(this.integrator.exportKwh);
  }

  private identify(d: Decoded): void {
    const dev = d.device!;
    const info = `${dev.manufacturer ?? ""}|${dev.model ?? ""}|${d.deviceMac ?? ""}|${dev.firmware ?? ""}`;
    if (info === this.lastInfo) return;
    this.lastInfo = info;
    this.bus.emit("meterInfo", {
      meterId: this.id,
      ...(dev.manufacturer ? { manufacturer: dev.manufacturer } : {}),
      ...(dev.model ? { model: dev.model } : {}),
      ...(d.deviceMac ? { serialNumber: d.deviceMac } : {}),
      ...(dev.firmware ? { swVersion: dev.firmware } : {}),
    });
    this.log.info(
      `device found: ${dev.manufacturer ?? "?"} ${dev.model ?? "?"}, firmware ${dev.firmware ?? "?"}` +
        `${this.meterMac ? `, reading meter ${this.meterMac}` : ""}`,
    );
  }

  private skipUnknown(name: string): void {
    // Still proof that the device is there and talking.
    this.health.received();
    if (this.unknown.has(name) || this.unknown.size >= 100) return;
    this.unknown.add(name);
    this.log.info(`fragment <${name}> is not one this bridge reads; skipped (not logged again)`);
  }

  private reject(reason: string, name: string | undefined, f?: Fragment): void {
    const p = this.inflight;
    if (p && name === p.reply) this.settle(p, new CommandError(`${p.name}: malformed reply (${reason})`, "malformed"));
    this.health.rejected(reason, f && fragmentText(f));
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) {
      this.log.debug(message);
      return;
    }
    this.warned.add(key);
    this.log.warn(message);
  }
}

const FRAGMENT_END = new RegExp(`</(?:${KNOWN_FRAGMENTS.join("|")})>[\\r\\n]*`, "g");

/** A capture cut after each known fragment, so a `file:` replay paces them like a device. */
export function splitFragments(whole: Buffer): Buffer[] {
  const text = whole.toString("latin1");
  const pieces: Buffer[] = [];
  let from = 0;
  for (const m of text.matchAll(FRAGMENT_END)) {
    const to = m.index + m[0].length;
    pieces.push(whole.subarray(from, to));
    from = to;
  }
  if (from < whole.length) pieces.push(whole.subarray(from));
  return pieces;
}

/** A fragment as read (its fields, values trimmed), for the web page's "last frame". */
function fragmentText(f: Fragment): Buffer {
  return Buffer.from(`<${f.name}>\n${f.fields.map(([k, v]) => `  <${k}>${v}</${k}>\n`).join("")}</${f.name}>\n`);
}
