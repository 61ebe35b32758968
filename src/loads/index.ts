/**
 * The load advisor as the app runs it: the configured loads, fed from the bus, published through the MQTT
 * output's extension points (entities, retained states, a command topic per load), plus each load's optional
 * direct command for relays Home Assistant does not drive (Tasmota, Shelly).
 */
import type { Bus } from "../bus.js";
import type { Config, LoadConfig } from "../config/schema.js";
import type { Reading } from "../model/types.js";
import type { MqttOutput } from "../outputs/mqtt/index.js";
import type { CapacityConfig } from "../tariffs/capacity.js";
import { meterTimezone, tariffsByMeter } from "../tariffs/index.js";
import { type Clock, systemClock, type Timer } from "../util/clock.js";
import { type Logger, LogLimiter, quote, rootLogger } from "../util/log.js";
import { type AdvisedLoad, LoadAdvisor, type LoadSnapshot } from "./advisor.js";
import { MODES, type Mode } from "./control.js";
import { loadDiscovery, loadModeTopic, loadStateMessage, loadStateTopic, parseLoadState } from "./discovery.js";

export { type AdvisedLoad, LoadAdvisor, type LoadSnapshot } from "./advisor.js";
export { LoadGroup, type LoadSpec, type LoadStatus, MODES, type Mode, REASONS, type Reason } from "./control.js";
export * from "./discovery.js";
export { PeakSavings, peakKwValue } from "./savings.js";

const OWNER = "loads";
/**
 * Meters are read before the broker answers, but a restart must switch nothing: readings wait (in order, at most
 * this many) until each load's retained state from the last run is in, the broker has had this long after
 * connecting to send it, or the broker has not answered for GATE_MAX_MS.
 */
const MAX_HELD = 2000;
export const RETAINED_WAIT_MS = 2000;
const GATE_MAX_MS = 15_000;
/** The longest mode command taken: "auto" with room for whitespace around it. */
const MAX_MODE_LENGTH = 16;

export function advisedLoad(l: LoadConfig): AdvisedLoad {
  return {
    id: l.id,
    meter: l.meter,
    powerW: l.power_w,
    priority: l.priority,
    onSurplusW: l.on_surplus_w ?? l.power_w,
    offImportW: l.off_import_w,
    onDelayMs: l.on_delay * 1000,
    offDelayMs: l.off_delay * 1000,
    minOnMs: l.min_on * 1000,
    minOffMs: l.min_off * 1000,
    peakGuard: l.peak_guard,
    failSafe: l.fail_safe,
    failSafeAfterMs: l.fail_safe_after * 1000,
  };
}

/** Belgium's capacity tariff of each meter whose tariff has `capacity`, in the tariff's zone. */
function capacityByMeter(
  config: Partial<Pick<Config, "tariffs" | "meters">>,
): Record<string, { config: CapacityConfig; zone: string }> {
  if (!config.tariffs || !config.meters) return {};
  const tariffs = tariffsByMeter({
    tariffs: config.tariffs,
    meters: config.meters.map((m) => ({ id: m.id, timezone: meterTimezone(m) })),
  });
  const out: Record<string, { config: CapacityConfig; zone: string }> = {};
  for (const [id, t] of tariffs) if (t.config.capacity) out[id] = { config: t.config.capacity, zone: t.timezone };
  return out;
}

export class LoadAdvisorService {
  readonly advisor: LoadAdvisor;
  private readonly loads: ReadonlyMap<string, LoadConfig>;
  private readonly log: Logger;
  private readonly clock: Clock;
  /** Bad commands are anyone's to send: one warning a minute per load, however many come. */
  private readonly limiter: LogLimiter;
  private mqtt?: MqttOutput;
  private readonly unsubscribe: (() => void)[] = [];
  /** Loads whose last state may still come from the broker; readings wait in `held` meanwhile. */
  private readonly waiting = new Set<string>();
  private readonly held: Reading[] = [];
  private gateTimer?: Timer;

  constructor(
    private readonly config: Pick<Config, "loads" | "peak_guard" | "mqtt"> &
      Partial<Pick<Config, "tariffs" | "meters">>,
    opts: { clock?: Clock; log?: Logger } = {},
  ) {
    this.log = opts.log ?? rootLogger.child("loads");
    this.clock = opts.clock ?? systemClock;
    this.limiter = new LogLimiter(this.log);
    this.loads = new Map(config.loads.map((l) => [l.id, l]));
    this.advisor = new LoadAdvisor(
      config.loads.map(advisedLoad),
      Object.fromEntries(config.peak_guard.map((g) => [g.meter, g.limit_w])),
      { clock: opts.clock, log: this.log, capacity: capacityByMeter(config) },
    );
    this.advisor.onChange((s) => this.publish(s));
  }

  start(bus: Bus): void {
    // The peak guard's savings ride on the meter's readings (those with grid power: never the bridge's diagnostics).
    bus.transform("reading", (r) => {
      if (typeof r.values.power_net_w !== "number") return r;
      const s = this.advisor.savedMonth(r.meterId, r.time);
      return s
        ? { ...r, values: { ...r.values, peak_guard_saved_month: s.saved, peak_guard_saved_since: s.since } }
        : r;
    });
    for (const id of this.loads.keys()) this.waiting.add(id);
    bus.subscribe(OWNER, "reading", (r) => {
      if (this.waiting.size === 0) this.advisor.onReading(r);
      else if (this.held.push(r) > MAX_HELD) this.held.shift();
    });
    this.gateTimer = this.clock.setTimeout(() => {
      this.gateTimer = undefined;
      if (this.waiting.size > 0)
        this.log.info(`loads: no last state from the broker within ${GATE_MAX_MS / 1000} s; starting afresh`);
      this.open();
    }, GATE_MAX_MS);
    this.advisor.start();
    this.log.info(`load advisor: ${[...this.loads.values()].map((l) => `${l.id} on ${l.meter}`).join(", ")}`);
  }

  /** Called once the MQTT output is connected: entities, mode commands, and what is known so far. */
  attach(mqtt: MqttOutput): void {
    this.mqtt = mqtt;
    const base = this.config.mqtt.base_topic;
    for (const l of this.loads.values()) {
      mqtt.announceEntities(
        loadDiscovery({
          discoveryPrefix: this.config.mqtt.discovery_prefix,
          baseTopic: base,
          origin: mqtt.discoveryOrigin,
          load: { id: l.id, name: l.name, meter: l.meter, powerW: l.power_w },
        }),
      );
      this.unsubscribe.push(
        mqtt.subscribe(loadModeTopic(base, l.id), (payload) => {
          if (!this.setMode(l.id, payload))
            this.limiter.warn(
              `mode:${l.id}`,
              `${l.id}: mode ${quote(payload)} on ${loadModeTopic(base, l.id)} ignored, expected ${MODES.join(", ")}`,
            );
        }),
      );
      // The previous run's retained state: the first message on our own topic, then no more (it echoes ours).
      const stateTopic = loadStateTopic(base, l.id);
      const stop = mqtt.subscribe(stateTopic, (payload, retained) => {
        stop();
        try {
          this.restoreFrom(l.id, stateTopic, payload, retained);
        } finally {
          this.release(l.id);
        }
      });
      this.unsubscribe.push(stop);
    }
    for (const s of this.advisor.snapshots()) this.publish(s);
  }

  /** The previous run's state of a load, from the retained message on its state topic. */
  private restoreFrom(id: string, stateTopic: string, payload: string, retained: boolean): void {
    if (!retained) return;
    const previous = parseLoadState(payload, this.clock.now());
    if (!previous.ok) {
      this.log.warn(
        `${id}: the retained state on ${stateTopic} is ignored (${previous.why}): ${quote(payload)}; starting afresh`,
      );
      return;
    }
    if (this.advisor.restore(id, previous))
      this.log.info(`${id}: carrying on from the last run: ${previous.on ? "on" : "off"}, mode ${previous.mode}`);
  }

  /**
   * A mode command (the MQTT select, the web page): "auto", "on" or "off", any case, spaces around it ignored.
   * Returns false, changing nothing, for an unknown load or mode.
   */
  setMode(id: string, payload: string): boolean {
    const mode = payload.length <= MAX_MODE_LENGTH ? payload.trim().toLowerCase() : "";
    if (!this.loads.has(id) || !MODES.includes(mode as Mode)) return false;
    this.advisor.setMode(id, mode as Mode);
    return true;
  }

  /** The configured loads, in the configuration's order. */
  get configured(): readonly LoadConfig[] {
    return [...this.loads.values()];
  }

  /** The broker answered: a retained state it has comes at once; loads without one start afresh soon after. */
  mqttConnected(): void {
    if (this.waiting.size === 0) return;
    this.clock.setTimeout(() => this.open(), RETAINED_WAIT_MS);
  }

  private release(id: string): void {
    this.waiting.delete(id);
    if (this.waiting.size === 0) this.open();
  }

  /** Lets readings through, first those held meanwhile, in order. */
  private open(): void {
    this.waiting.clear();
    if (this.gateTimer) this.clock.clearTimeout(this.gateTimer);
    this.gateTimer = undefined;
    for (const r of this.held.splice(0)) this.advisor.onReading(r);
  }

  stop(bus: Bus): void {
    if (this.gateTimer) this.clock.clearTimeout(this.gateTimer);
    this.gateTimer = undefined;
    this.advisor.stop();
    bus.unsubscribeAll(OWNER);
    for (const u of this.unsubscribe.splice(0)) u();
  }

  private publish(s: LoadSnapshot): void {
    const mqtt = this.mqtt;
    const l = this.loads.get(s.id);
    if (!mqtt || !l) return;
    mqtt.publishState(loadStateTopic(this.config.mqtt.base_topic, s.id), JSON.stringify(loadStateMessage(s)));
    if (l.command)
      mqtt.publishState(l.command.topic, s.on ? l.command.payload_on : l.command.payload_off, {
        retain: l.command.retain,
      });
  }
}
