/**
 * The MQTT output: bridge and meter availability, Home Assistant discovery, and each meter's JSON state.
 *
 * Topics (`<base>` is mqtt.base_topic):
 *   <base>/bridge/state          online | offline, retained, also the last will
 *   <base>/<meter>/availability  online | offline, retained, from the source's status
 *   <base>/<meter>/state         JSON of the meter's current values + "time", retained
 *   <discovery_prefix>/sensor/<base>_<meter>/<quantity>/config   one per entity, retained
 */

import { connect, type IClientOptions, type MqttClient } from "mqtt";
import type { MqttConfig } from "../../config/schema.js";
import { REPLACED_AT, RESET_REGISTERS } from "../../derived/replacement.js";
import { bridgeDiagnosticsOnly, quantity } from "../../model/quantities.js";
import type { MeterInfo, Reading, SourceStatus } from "../../model/types.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import { type Logger, LogLimiter, redact, rootLogger } from "../../util/log.js";
import {
  bridgeStateTopic,
  type DiscoveryOrigin,
  haStatusTopic,
  type MeterDescription,
  meterAvailabilityTopic,
  meterStateTopic,
  originOf,
  sensorDiscovery,
} from "./discovery.js";
import { MeterState, type Value } from "./state.js";

export * from "./discovery.js";
export { MeterState } from "./state.js";

/** mqtt.js retries at this fixed period; short enough that a broker restart costs seconds of data, not minutes. */
const RECONNECT_PERIOD_MS = 2000;
/** How long stop() waits for the broker to take the final `offline`: a dead broker must not hold up shutdown. */
const STOP_WAIT_MS = 1500;
/**
 * Home Assistant announces `online` once when it starts; anyone else may publish it a thousand times. The first
 * `online` after a quiet spell is answered after this pause (a burst is answered once), and the discovery is not
 * sent again sooner than the gap after the previous re-send, however many arrive. The gap doubles with each re-send
 * while announcements keep coming (a flood costs one re-send in five minutes) and is back to its start once they
 * have been quiet for HA_QUIET_MS, as between two real restarts of Home Assistant.
 */
const HA_STATUS_DEBOUNCE_MS = 1000;
const HA_RESEND_GAP_MS = 5000;
const HA_RESEND_GAP_MAX_MS = 300_000;
const HA_QUIET_MS = 60_000;
/** Inbound messages on the topics this bridge subscribes to are commands and states of a few bytes. */
export const MAX_INBOUND_BYTES = 4096;
/**
 * A broker that stops answering (hung, SIGSTOPped, a half-open NAT) is noticed well before the keepalive: a QoS 1
 * publication without its acknowledgement, a ping without its answer, or bytes that stay unwritten this long.
 * mqtt.js sends its own pings only when it has sent nothing for a keepalive, so a bridge that publishes every
 * second would never notice at all.
 */
const STALL_MS = 6000;
/** Without anything from the broker for this long, a ping asks whether it is still there. */
const PROBE_AFTER_MS = 5000;
const WATCHDOG_TICK_MS = 1000;
/**
 * A connection that ends this soon after the broker accepted it is a flap (see onClose): a broker refusing a topic
 * or a permission drops the client at its first publication, right after the connect.
 */
const FLAP_MS = 2000;
/**
 * A change held back by its interval normally rides on the next reading. This timer sends it anyway when the
 * meter falls quiet, so the last value before a pause is not lost; the slack keeps the timer from racing a
 * meter that sends exactly on the interval.
 */
const FLUSH_SLACK_MS = 1000;
const DIAGNOSTICS = ["frames_received", "frames_rejected"] as const;
/**
 * The frame counters go up with every telegram. As plain `count` values (no interval) they would make every
 * reading due and undo the flood control for the whole message, so they get their own minimum interval.
 */
const DIAGNOSTICS_MIN_INTERVAL_S = { frames_received: 60, frames_rejected: 5 } as const;

interface MeterEntry {
  readonly desc: MeterDescription;
  readonly state: MeterState;
  /** Quantities announced to HA (sent, or to be sent on the next connect). */
  readonly announced: Set<string>;
  info?: MeterInfo;
  /** Time of the newest reading, UTC ms. */
  time?: number;
  online?: boolean;
  sentAvailability?: string;
  flush?: { timer: Timer; at: number };
}

/** `retained`: replayed by the broker on subscribe rather than published since. */
export type MessageHandler = (payload: string, retained: boolean) => void;

export interface MqttOutputOptions {
  clock?: Clock;
  log?: Logger;
  version?: string;
  connectTimeoutMs?: number;
  /**
   * Keep trying when the first connection takes longer than connectTimeoutMs (the bridge: a broker that comes up
   * after us); start() then resolves whenever it connects. Only a refusal (credentials) rejects.
   */
  persistent?: boolean;
  /** Tests shorten the stall detection (see STALL_MS). */
  stallMs?: number;
}

export class MqttOutput {
  /** published: state messages; discoveryPublished: discovery configs; reconnects: connections regained. */
  readonly stats = {
    published: 0,
    discoveryPublished: 0,
    reconnects: 0,
    /** Home Assistant `online` announcements received, and the re-sends they caused. */
    haOnline: 0,
    haResends: 0,
    /** Inbound messages dropped for their size. */
    oversized: 0,
    /** Connections given up because the broker stopped answering. */
    stalls: 0,
    /** Every message handed to the client: states, discovery, availability, the load advisor's. */
    messages: 0,
    /** Connections the broker dropped within FLAP_MS of accepting them. */
    flaps: 0,
  };

  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly origin: DiscoveryOrigin;
  private readonly connectTimeoutMs: number;
  private readonly base: string;
  /** The broker address as shown in logs and errors: scheme, host and port, never credentials. */
  private readonly where: string;
  private readonly meters = new Map<string, MeterEntry>();
  /** Last discovery payload sent per topic, to skip identical re-sends. */
  private readonly sentDiscovery = new Map<string, string>();
  private readonly warnedNames = new Set<string>();
  private readonly warnedMeters = new Set<string>();
  /** Discovery of entities that are not meter quantities (see announceEntities), JSON by topic. */
  private readonly extraDiscovery = new Map<string, string>();
  /** Messages sent again after each reconnect (see publishState). */
  private readonly kept = new Map<string, { payload: string; retain: boolean }>();
  /** Handlers of topics subscribed through subscribe(), which are subscribed again on each reconnect. */
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  /** Topics whose messages may be longer than MAX_INBOUND_BYTES (a day's prices), and how long. */
  private readonly maxBytes = new Map<string, number>();

  private client?: MqttClient;
  private connectedOnce = false;
  private down = false;
  private downSince = 0;
  private lastError?: string;
  private abortStart?: (err: Error) => void;
  private stopping?: Promise<void>;
  private readonly persistent: boolean;
  private readonly stallMs: number;
  private readonly limiter: LogLimiter;
  /** A re-send for Home Assistant's `online` waiting for its burst to end, and when the last one went out. */
  private haTimer?: NodeJS.Timeout;
  private haResentAt = Number.NEGATIVE_INFINITY;
  private haGap = HA_RESEND_GAP_MS;
  private haLastOnline = Number.NEGATIVE_INFINITY;
  /** Stall watchdog: real time, whatever clock the meters run on. */
  private watchdog?: NodeJS.Timeout;
  private lastInbound = 0;
  private pingSentAt?: number;
  /** QoS 1 publications not yet acknowledged, by our own sequence number: when each was sent. */
  private readonly unacked = new Map<number, number>();
  private ackSeq = 0;
  private written?: { bytes: number; since: number };
  /** When the current connection was accepted, and whether the last one ended within FLAP_MS of that. */
  private connectedAt = 0;
  /** The last connection was a flap the log already told of this minute: its reconnect goes unsaid too. */
  private quietFlap = false;

  constructor(
    private readonly cfg: MqttConfig,
    meters: MeterDescription[],
    opts: MqttOutputOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? rootLogger.child("mqtt");
    this.origin = originOf(opts.version);
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.persistent = opts.persistent ?? false;
    this.stallMs = opts.stallMs ?? STALL_MS;
    this.limiter = new LogLimiter(this.log);
    this.base = cfg.base_topic;
    this.where = describeUrl(cfg.url);
    for (const desc of meters)
      this.meters.set(desc.id, {
        desc,
        state: new MeterState(
          cfg.min_interval,
          // A rejection is news (a failing cable, a wrong baud rate): it goes out within seconds.
          { ...DIAGNOSTICS_MIN_INTERVAL_S },
        ),
        announced: new Set(),
      });
  }

  /** Resolves once connected the first time; later outages are handled by reconnecting. */
  start(): Promise<void> {
    if (this.client) return Promise.reject(new Error("MqttOutput.start() called twice"));
    const cfg = this.cfg;
    const options: IClientOptions = {
      clientId: cfg.client_id ?? `meter2mqtt_${Math.random().toString(16).slice(2, 10)}`,
      username: cfg.username,
      password: cfg.password,
      rejectUnauthorized: cfg.reject_unauthorized,
      reconnectPeriod: RECONNECT_PERIOD_MS,
      // A refusal (bad password, broker restarted with new ACLs) is retried like any outage once running;
      // at start-up it fails start() instead, below.
      reconnectOnConnackError: true,
      connectTimeout: Math.min(this.connectTimeoutMs, 10_000),
      keepalive: 30,
      // Ping every keepalive even while publishing (see STALL_MS).
      reschedulePings: false,
      clean: true,
      // Stale state messages are worthless after an outage; the reconnect handler sends the latest once.
      queueQoSZero: false,
      resubscribe: false,
      will: { topic: bridgeStateTopic(this.base), payload: Buffer.from("offline"), qos: 1, retain: true },
    };
    const client = connect(cfg.url, options);
    this.client = client;
    client.on("connect", () => this.onConnect());
    client.on("close", () => this.onClose());
    client.on("error", (err) => {
      this.lastError = this.scrub(err.message);
      this.log.debug(() => `${this.where}: ${this.lastError}`);
    });
    client.on("message", (topic, payload, packet) => this.onMessage(topic, payload, packet.retain));
    client.on("packetreceive", () => {
      this.lastInbound = Date.now();
      this.pingSentAt = undefined;
    });
    this.watchdog = setInterval(() => this.checkStall(), WATCHDOG_TICK_MS);
    this.watchdog.unref();

    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const why = this.lastError ? `: ${this.lastError}` : " (no answer)";
        const message = `cannot connect to the MQTT broker at ${this.where} within ${this.connectTimeoutMs / 1000} s${why}`;
        if (!this.persistent) {
          fail(new Error(message));
          return;
        }
        this.log.warn(
          `${message}; meters are read and archived meanwhile, and the connection is tried every ${RECONNECT_PERIOD_MS / 1000} s`,
        );
      }, this.connectTimeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        client.off("connect", onConnect);
        client.off("error", onError);
        this.abortStart = undefined;
      };
      const fail = (err: Error): void => {
        done();
        client.end(true);
        reject(err);
      };
      const onConnect = (): void => {
        done();
        resolve();
      };
      const onError = (err: Error & { code?: unknown }): void => {
        // A numeric code is the broker's CONNACK refusal: retrying will not change its mind.
        if (typeof err.code === "number")
          fail(new Error(`the MQTT broker at ${this.where} refused the connection: ${this.scrub(err.message)}`));
      };
      this.abortStart = fail;
      client.on("connect", onConnect);
      client.on("error", onError);
    });
  }

  onReading(r: Reading): void {
    try {
      if (this.stopping) return;
      const m = this.meter(r.meterId);
      if (!m) return;
      const values: Record<string, Value> = {};
      for (const [name, v] of Object.entries(r.values))
        if (typeof v === "string" || (typeof v === "number" && Number.isFinite(v))) values[name] = v;
      const currencyBefore = m.state.get("currency");
      // A replaced meter: the old meter's last registers, if still held back, go out before the new meter's first,
      // so HA closes the old cycle with them instead of losing what it measured last.
      const replaced = values[REPLACED_AT];
      if (replaced !== undefined && replaced !== m.state.get(REPLACED_AT) && this.client?.connected) {
        const held = m.state.pending().filter((n) => RESET_REGISTERS.includes(n));
        if (held.length > 0) this.sendState(m, m.state.take(held, this.clock.now()));
      }
      m.state.update(values);
      // The bridge's own figures (the archive's size) carry the bridge's clock, not the meter's.
      if (!bridgeDiagnosticsOnly(values)) m.time = r.time;
      // Readings prove the meter is there; a source that never sends a status still gets available entities.
      if (m.online === undefined) m.online = true;
      for (const name of Object.keys(values)) this.announce(m, name);
      if (m.state.get("currency") !== currencyBefore && m.announced.has("price_per_kwh"))
        this.sendDiscovery(m, "price_per_kwh", false);
      this.sendAvailability(m, false);
      this.sendDue(m);
    } catch (err) {
      this.log.error(`reading of ${r?.meterId} not published: ${(err as Error).message}`);
    }
  }

  onStatus(s: SourceStatus): void {
    try {
      if (this.stopping) return;
      const m = this.meter(s.meterId);
      if (!m) return;
      m.online = s.online;
      m.state.update({ frames_received: s.framesReceived, frames_rejected: s.framesRejected });
      for (const name of DIAGNOSTICS) this.announce(m, name);
      this.sendAvailability(m, false);
      // Counters usually ride on the next reading; the flush timer covers a meter whose frames all fail.
      this.scheduleFlush(m);
    } catch (err) {
      this.log.error(`status of ${s?.meterId} not published: ${(err as Error).message}`);
    }
  }

  onMeterInfo(info: MeterInfo): void {
    try {
      if (this.stopping) return;
      const m = this.meter(info.meterId);
      if (!m) return;
      const merged: MeterInfo = { ...m.info, meterId: info.meterId };
      if (info.manufacturer) merged.manufacturer = info.manufacturer;
      if (info.model) merged.model = info.model;
      if (info.serialNumber) merged.serialNumber = info.serialNumber;
      if (info.swVersion) merged.swVersion = info.swVersion;
      m.info = merged;
      for (const name of m.announced) this.sendDiscovery(m, name, false);
    } catch (err) {
      this.log.error(`device info of ${info?.meterId} not published: ${(err as Error).message}`);
    }
  }

  /** Publishes `offline` on the bridge state (bounded wait) and closes the connection. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  // ── For features beside the meters (the load advisor): entities, states and commands of their own ──────────

  /** Connected to the broker right now. */
  get connected(): boolean {
    return this.client?.connected === true;
  }

  /** The `origin` every discovery payload of this bridge carries. */
  get discoveryOrigin(): DiscoveryOrigin {
    return this.origin;
  }

  /**
   * Discovery configs of entities that are not meter quantities, sent like the meters' own: retained, skipped when
   * unchanged, again after a reconnect and when Home Assistant comes back online. Nothing is sent with discovery off.
   */
  announceEntities(messages: readonly { topic: string; payload: object }[]): void {
    if (this.stopping) return;
    for (const { topic, payload } of messages) {
      const json = JSON.stringify(payload);
      this.extraDiscovery.set(topic, json);
      if (!this.cfg.discovery || !this.client?.connected || this.sentDiscovery.get(topic) === json) continue;
      this.sentDiscovery.set(topic, json);
      this.stats.discoveryPublished++;
      this.publish(topic, json, 1);
    }
  }

  /**
   * A message the broker must hold the latest of (an entity's state, a relay's command): skipped when unchanged,
   * and sent again after each reconnect, since a broker without persistence forgets retained messages and a
   * device may have missed a command while the link was down. QoS 1, retained unless told otherwise.
   */
  publishState(topic: string, payload: string, opts: { retain?: boolean } = {}): void {
    if (this.stopping) return;
    const retain = opts.retain ?? true;
    const prev = this.kept.get(topic);
    this.kept.set(topic, { payload, retain });
    if (prev?.payload === payload && prev.retain === retain) return;
    if (this.client?.connected) this.publish(topic, payload, 1, retain);
  }

  /**
   * Calls `handler` with each message on `topic` (an exact topic, no wildcards), including the retained one the
   * broker replays; subscribed again after each reconnect. Returns the function that ends it.
   */
  subscribe(topic: string, handler: MessageHandler, opts: { maxBytes?: number } = {}): () => void {
    if (opts.maxBytes !== undefined) this.maxBytes.set(topic, Math.max(this.maxBytes.get(topic) ?? 0, opts.maxBytes));
    let set = this.handlers.get(topic);
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
      if (this.client?.connected) this.subscribeTopic(topic);
    }
    set.add(handler);
    const handlers = set;
    return () => {
      handlers.delete(handler);
      if (handlers.size > 0 || this.handlers.get(topic) !== handlers) return;
      this.handlers.delete(topic);
      if (this.client?.connected && !this.stopping) this.client.unsubscribe(topic);
    };
  }

  private subscribeTopic(topic: string): void {
    this.client?.subscribe(topic, { qos: 1 }, (err) => {
      if (err) this.log.warn(`cannot subscribe to ${topic}: ${this.scrub(err.message)}`);
    });
  }

  private async shutdown(): Promise<void> {
    for (const m of this.meters.values()) this.clearFlush(m);
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.haTimer) clearTimeout(this.haTimer);
    this.haTimer = undefined;
    const client = this.client;
    if (!client) return;
    // What min_interval held back goes out before `offline`: the last values HA keeps are the newest ones.
    if (client.connected) {
      const now = this.clock.now();
      for (const m of this.meters.values()) if (m.state.pending().length > 0) this.sendState(m, m.state.takeAll(now));
    }
    this.abortStart?.(new Error(`stopped before connecting to the MQTT broker at ${this.where}`));
    if (!client.connected) {
      client.end(true);
      return;
    }
    const deadline = Date.now() + STOP_WAIT_MS;
    const offline = await settle(
      client.publishAsync(bridgeStateTopic(this.base), "offline", { qos: 1, retain: true }),
      STOP_WAIT_MS,
    );
    if (offline !== "ok")
      this.log.warn(
        `${this.where} did not take "offline" on ${bridgeStateTopic(this.base)} (${offline}); the will covers it`,
      );
    const ended = offline === "ok" && (await settle(client.endAsync(), deadline - Date.now())) === "ok";
    if (!ended) client.end(true);
    const st = this.stats;
    this.log.info(
      `disconnected from ${this.where}: ${st.messages} message(s) published this run (${st.published} meter state(s), ${st.discoveryPublished} discovery config(s)), ${st.reconnects} reconnect(s), ${st.stalls} stall(s) noticed, ${st.haOnline} "online" from Home Assistant answered by ${st.haResends} re-send(s)`,
    );
  }

  private onConnect(): void {
    if (this.stopping) return;
    // Nagle's algorithm holds a small publish back until the previous one is acknowledged, and on Linux the
    // acknowledgement may be delayed: measured, one state message in twenty arrived ~20 ms late.
    (this.client?.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    if (this.down) {
      this.stats.reconnects++;
      // A broker that drops us right after each connect is reported once a minute (onClose), not twice a cycle.
      if (!this.quietFlap)
        this.log.info(`reconnected to ${this.where} after ${Math.round((Date.now() - this.downSince) / 1000)} s`);
    } else if (!this.connectedOnce) {
      this.log.info(`connected to ${this.where}`);
    }
    this.connectedOnce = true;
    this.down = false;
    this.connectedAt = Date.now();
    this.lastError = undefined;
    this.lastInbound = Date.now();
    this.pingSentAt = undefined;
    this.unacked.clear();
    this.written = undefined;
    if (this.cfg.discovery)
      this.client?.subscribe(haStatusTopic(this.cfg.discovery_prefix), { qos: 1 }, (err) => {
        if (err) this.log.warn(`cannot subscribe to Home Assistant's status: ${this.scrub(err.message)}`);
      });
    for (const topic of this.handlers.keys()) this.subscribeTopic(topic);
    this.republish();
  }

  private onClose(): void {
    // mqtt.js closes once per failed retry too: report the outage once, not every two seconds.
    if (this.stopping || !this.connectedOnce || this.down) return;
    this.down = true;
    this.downSince = Date.now();
    const why = this.lastError ? ` (${this.lastError})` : "";
    const lasted = this.downSince - this.connectedAt;
    this.quietFlap = false;
    if (lasted < FLAP_MS) {
      this.stats.flaps++;
      this.quietFlap = !this.limiter.warn(
        "flap",
        `lost the connection to ${this.where} ${(lasted / 1000).toFixed(1)} s after the broker accepted it${why}; if it keeps doing so, its log names the topic or permission it refuses; retrying every ${RECONNECT_PERIOD_MS / 1000} s`,
      );
      return;
    }
    this.log.warn(`lost the connection to ${this.where}${why}; retrying every ${RECONNECT_PERIOD_MS / 1000} s`);
  }

  /** Anyone may publish on the topics we subscribe to: each message costs a bounded amount, whatever it holds. */
  private onMessage(topic: string, bytes: Buffer, retained: boolean): void {
    if (this.stopping) return;
    const handlers = this.handlers.get(topic);
    if (handlers) {
      const max = this.maxBytes.get(topic) ?? MAX_INBOUND_BYTES;
      if (bytes.length > max) {
        this.stats.oversized++;
        this.limiter.warn(
          `size:${topic}`,
          `a message of ${bytes.length} bytes on ${topic} ignored: more than ${max} bytes is not what this topic carries`,
        );
        return;
      }
      const payload = bytes.toString();
      for (const handler of [...handlers])
        try {
          handler(payload, retained);
        } catch (err) {
          this.limiter.warn(`handler:${topic}`, `a message on ${topic} was not handled: ${(err as Error).message}`);
        }
      return;
    }
    if (topic !== haStatusTopic(this.cfg.discovery_prefix)) return;
    // A retained `online` is an old announcement replayed on subscribe; the connect just re-sent everything.
    if (retained || bytes.length !== 6 || bytes.toString() !== "online") return;
    this.stats.haOnline++;
    const now = Date.now();
    if (now - this.haLastOnline > HA_QUIET_MS) this.haGap = HA_RESEND_GAP_MS;
    this.haLastOnline = now;
    if (this.haTimer) return;
    const at = Math.max(now + HA_STATUS_DEBOUNCE_MS, this.haResentAt + this.haGap);
    this.haTimer = setTimeout(() => {
      this.haTimer = undefined;
      if (this.stopping || !this.client?.connected) return;
      if (this.haResentAt > Number.NEGATIVE_INFINITY) this.haGap = Math.min(this.haGap * 2, HA_RESEND_GAP_MAX_MS);
      this.haResentAt = Date.now();
      this.stats.haResends++;
      this.log.info("Home Assistant came online: sending discovery and states again");
      this.republish();
    }, at - Date.now());
    this.haTimer.unref();
  }

  /** Gives up a connection the broker stopped answering on; mqtt.js then reconnects and we send everything again. */
  private checkStall(): void {
    const client = this.client;
    if (!client || this.stopping || !client.connected) {
      this.unacked.clear();
      this.pingSentAt = undefined;
      this.written = undefined;
      return;
    }
    const now = Date.now();
    let why: string | undefined;
    let oldest = Number.POSITIVE_INFINITY;
    for (const at of this.unacked.values()) oldest = Math.min(oldest, at);
    if (now - oldest > this.stallMs) why = `no acknowledgement for ${Math.round((now - oldest) / 1000)} s`;
    if (this.pingSentAt !== undefined && now - this.pingSentAt > this.stallMs)
      why ??= `no answer to a ping for ${Math.round((now - this.pingSentAt) / 1000)} s`;
    const stream = client.stream as { writableLength?: number; bytesWritten?: number } | undefined;
    if ((stream?.writableLength ?? 0) > 0) {
      const bytes = stream?.bytesWritten ?? 0;
      if (this.written?.bytes !== bytes) this.written = { bytes, since: now };
      else if (now - this.written.since > this.stallMs)
        why ??= `${stream?.writableLength} bytes not taken for ${Math.round((now - this.written.since) / 1000)} s`;
    } else this.written = undefined;
    if (why) {
      this.stats.stalls++;
      this.lastError = `the broker stopped answering: ${why}`;
      this.unacked.clear();
      this.pingSentAt = undefined;
      this.written = undefined;
      // mqtt.js sees the socket close and reconnects; onConnect then sends the latest of everything.
      client.stream?.destroy();
      return;
    }
    if (this.pingSentAt === undefined && now - this.lastInbound > Math.min(PROBE_AFTER_MS, this.stallMs)) {
      this.pingSentAt = now;
      client.sendPing();
    }
  }

  /** After a (re)connect or an HA restart: bridge online, every discovery config, availability, latest states. */
  private republish(): void {
    if (!this.client?.connected) return;
    this.publish(bridgeStateTopic(this.base), "online", 1);
    const now = this.clock.now();
    for (const m of this.meters.values()) {
      for (const name of m.announced) this.sendDiscovery(m, name, true);
      this.sendAvailability(m, true);
      this.clearFlush(m);
      if (!m.state.empty) this.sendState(m, m.state.takeAll(now));
    }
    for (const [topic, json] of this.extraDiscovery)
      if (this.cfg.discovery) {
        this.sentDiscovery.set(topic, json);
        this.stats.discoveryPublished++;
        this.publish(topic, json, 1);
      }
    for (const [topic, { payload, retain }] of this.kept) this.publish(topic, payload, 1, retain);
  }

  private meter(id: string): MeterEntry | undefined {
    const m = this.meters.get(id);
    if (!m && !this.warnedMeters.has(id)) {
      this.warnedMeters.add(id);
      this.log.warn(`data for meter "${id}", which is not configured, is not published`);
    }
    return m;
  }

  private announce(m: MeterEntry, name: string): void {
    if (m.announced.has(name)) return;
    if (!quantity(name)) {
      if (!this.warnedNames.has(name)) {
        this.warnedNames.add(name);
        this.log.warn(`"${name}" is not in the quantity catalogue: it is in the state JSON but has no HA entity`);
      }
      return;
    }
    m.announced.add(name);
    this.sendDiscovery(m, name, false);
  }

  private sendDiscovery(m: MeterEntry, name: string, force: boolean): void {
    const spec = quantity(name);
    if (!this.cfg.discovery || !spec || !this.client?.connected) return;
    const currency = m.state.get("currency");
    const { topic, payload } = sensorDiscovery(
      {
        discoveryPrefix: this.cfg.discovery_prefix,
        baseTopic: this.base,
        meter: m.desc,
        info: m.info,
        currency: typeof currency === "string" ? currency : undefined,
        origin: this.origin,
      },
      spec,
    );
    const json = JSON.stringify(payload);
    if (!force && this.sentDiscovery.get(topic) === json) return;
    this.sentDiscovery.set(topic, json);
    this.stats.discoveryPublished++;
    this.publish(topic, json, 1);
  }

  private sendAvailability(m: MeterEntry, force: boolean): void {
    if (m.online === undefined || !this.client?.connected) return;
    const value = m.online ? "online" : "offline";
    if (!force && m.sentAvailability === value) return;
    m.sentAvailability = value;
    this.publish(meterAvailabilityTopic(this.base, m.desc.id), value, 1);
  }

  /** Sends the state when at least one changed value is past its kind's interval. */
  private sendDue(m: MeterEntry): void {
    if (!this.client?.connected) return;
    const now = this.clock.now();
    const due = m.state.due(now);
    if (due.length > 0) this.sendState(m, m.state.take(due, now));
    this.scheduleFlush(m);
  }

  private sendState(m: MeterEntry, body: Record<string, Value>): void {
    const message: Record<string, Value> = { ...body };
    if (m.time !== undefined) message.time = new Date(m.time).toISOString();
    this.stats.published++;
    this.publish(meterStateTopic(this.base, m.desc.id), JSON.stringify(message), 0);
  }

  private scheduleFlush(m: MeterEntry): void {
    const next = m.state.nextDue();
    if (next === undefined) {
      this.clearFlush(m);
      return;
    }
    const at = Math.max(next, this.clock.now()) + FLUSH_SLACK_MS;
    if (m.flush && m.flush.at <= at) return;
    this.clearFlush(m);
    const timer = this.clock.setTimeout(() => {
      m.flush = undefined;
      if (!this.stopping) this.sendDue(m);
    }, at - this.clock.now());
    m.flush = { timer, at };
  }

  private clearFlush(m: MeterEntry): void {
    if (!m.flush) return;
    this.clock.clearTimeout(m.flush.timer);
    m.flush = undefined;
  }

  private publish(topic: string, payload: string, qos: 0 | 1, retain = true): void {
    this.stats.messages++;
    const seq = qos === 1 ? ++this.ackSeq : 0;
    if (qos === 1) this.unacked.set(seq, Date.now());
    this.client?.publish(topic, payload, { qos, retain }, (err) => {
      if (qos === 1) this.unacked.delete(seq);
      if (err) this.log.debug(() => `not published to ${topic}: ${this.scrub(err.message)}`);
    });
  }

  /** The password must not leak through an error text, whether or not the app registered it with the logger. */
  private scrub(text: string): string {
    const pw = this.cfg.password;
    // Same floor as the logger's addSecret: masking a one-letter password would garble every message.
    return redact(pw && pw.length >= 3 ? text.split(pw).join("***") : text);
  }
}

const DEFAULT_PORTS: Record<string, string> = {
  "mqtt:": "1883",
  "tcp:": "1883",
  "mqtts:": "8883",
  "ssl:": "8883",
  "ws:": "80",
  "wss:": "443",
};

/** `mqtt://host:port` (plus the path for websockets), without user or password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const port = u.port || DEFAULT_PORTS[u.protocol] || "?";
    const path = u.protocol.startsWith("ws") && u.pathname !== "/" ? u.pathname : "";
    return `${u.protocol}//${u.hostname}:${port}${path}`;
  } catch {
    return "(unparsable broker URL)";
  }
}

/** How `p` ended within `ms`; never rejects. */
async function settle(p: Promise<unknown>, ms: number): Promise<"ok" | "failed" | "timed out"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timed out">((resolve) => {
    timer = setTimeout(() => resolve("timed out"), Math.max(0, ms));
  });
  try {
    return await Promise.race([
      p.then(
        (): "ok" => "ok",
        (): "failed" => "failed",
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
