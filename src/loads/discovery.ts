/**
 * What the load advisor publishes per load, as pure functions: the topics, the JSON state, and the discovery of
 * its four Home Assistant entities. Each load is a device of its own, reached through its meter's device.
 *
 *   <base>/loads/<id>/state      {"state":"on","mode":"auto","reason":"surplus","delay_s":0,...}, retained
 *   <base>/loads/<id>/mode/set   auto | on | off, from HA's select or anyone
 *
 *   binary_sensor.load_<id>_recommended   on / off, what the advisor recommends
 *   select.load_<id>_mode                 auto / on / off
 *   sensor.load_<id>_reason               why (an enum sensor: starting, surplus, on_delay, peak_guard, ...)
 *   sensor.load_<id>_delay_remaining      seconds until the change being waited for may happen
 */
import {
  type BinarySensorDiscovery,
  bridgeStateTopic,
  componentDiscoveryTopic,
  type DiscoveryOrigin,
  type EntityDiscoveryBase,
  nodeId,
  type SelectDiscovery,
  type SensorDiscovery,
} from "../outputs/mqtt/discovery.js";
import type { LoadSnapshot } from "./advisor.js";
import { MODES, type Mode, REASONS } from "./control.js";

export const loadStateTopic = (base: string, id: string): string => `${base}/loads/${id}/state`;
export const loadModeTopic = (base: string, id: string): string => `${base}/loads/${id}/mode/set`;

/** The published state; `time` is when it was evaluated (the meter's time), `since` when `state` last changed. */
export interface LoadStateMessage {
  state: "on" | "off";
  mode: Mode;
  reason: string;
  delay_s: number;
  change_at: string | null;
  since: string | null;
  time: string;
}

const iso = (t: number): string | null => (Number.isFinite(t) ? new Date(t).toISOString() : null);

export function loadStateMessage(s: LoadSnapshot): LoadStateMessage {
  return {
    state: s.on ? "on" : "off",
    mode: s.mode,
    reason: s.reason,
    delay_s: s.delayS,
    change_at: s.changeAt === undefined ? null : iso(s.changeAt),
    since: iso(s.since),
    time: iso(s.time) ?? "",
  };
}

/** A restored `since` may be this far ahead of our clock (another machine's clock, a second of skew). */
const SINCE_SLACK_MS = 5 * 60_000;
/** Longer than any retained state is worth believing (a payload would have to be hand-made to be this big). */
const MAX_STATE_BYTES = 1024;

/**
 * An earlier run's state from its retained message: the state, or why it is not believed. Anyone can retain a
 * message on the topic, so everything is checked: a known state and mode, and a `since` that is a time not in the
 * future (a `since` of 9999 would hold a load off its minimum time forever).
 */
export function parseLoadState(
  payload: string,
  now: number,
): { ok: true; on: boolean; since: number; mode: Mode } | { ok: false; why: string } {
  if (payload.length > MAX_STATE_BYTES) return { ok: false, why: `${payload.length} bytes long` };
  let m: Partial<Record<keyof LoadStateMessage, unknown>>;
  try {
    const parsed: unknown = JSON.parse(payload);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      return { ok: false, why: "not a JSON object" };
    m = parsed as typeof m;
  } catch {
    return { ok: false, why: "not JSON" };
  }
  if (m.state !== "on" && m.state !== "off") return { ok: false, why: "state is neither on nor off" };
  if (!MODES.includes(m.mode as Mode)) return { ok: false, why: `mode is not one of ${MODES.join(", ")}` };
  let since = Number.NEGATIVE_INFINITY;
  if (m.since !== null && m.since !== undefined) {
    since = typeof m.since === "string" && m.since.length <= 40 ? Date.parse(m.since) : Number.NaN;
    if (Number.isNaN(since)) return { ok: false, why: "since is not a time" };
    if (since > now + SINCE_SLACK_MS) return { ok: false, why: "since is in the future" };
  }
  return { ok: true, on: m.state === "on", mode: m.mode as Mode, since };
}

export interface LoadDiscoveryContext {
  discoveryPrefix: string;
  baseTopic: string;
  origin: DiscoveryOrigin;
  load: { id: string; name?: string; meter: string; powerW: number };
}

export interface LoadDiscoveryMessage {
  topic: string;
  payload: BinarySensorDiscovery | SelectDiscovery | SensorDiscovery;
}

export function loadDiscovery(ctx: LoadDiscoveryContext): LoadDiscoveryMessage[] {
  const { id } = ctx.load;
  const base = ctx.baseTopic;
  const node = nodeId(base, `load_${id}`);
  const state = loadStateTopic(base, id);
  const common = (key: string, name: string, component: string): EntityDiscoveryBase => ({
    name,
    unique_id: `${node}_${key}`,
    object_id: `load_${id}_${key}`,
    default_entity_id: `${component}.load_${id}_${key}`,
    // Only the bridge's own availability: when the meter falls silent the fail-safe recommendation is the news.
    availability: [{ topic: bridgeStateTopic(base) }],
    availability_mode: "all",
    device: {
      identifiers: [node],
      name: ctx.load.name ?? id,
      manufacturer: "meter2mqtt",
      model: `Load advisor (${ctx.load.powerW} W)`,
      via_device: nodeId(base, ctx.load.meter),
    },
    origin: ctx.origin,
  });
  const recommended: BinarySensorDiscovery = {
    ...common("recommended", "Recommended", "binary_sensor"),
    icon: "mdi:power-plug-outline",
    state_topic: state,
    value_template: "{{ value_json.state }}",
    payload_on: "on",
    payload_off: "off",
  };
  const mode: SelectDiscovery = {
    ...common("mode", "Mode", "select"),
    icon: "mdi:hand-back-right-outline",
    state_topic: state,
    value_template: "{{ value_json.mode }}",
    command_topic: loadModeTopic(base, id),
    options: [...MODES],
  };
  const reason: SensorDiscovery = {
    ...common("reason", "Reason", "sensor"),
    icon: "mdi:information-outline",
    state_topic: state,
    value_template: "{{ value_json.reason }}",
    device_class: "enum",
    options: [...REASONS],
  };
  const delay: SensorDiscovery = {
    ...common("delay_remaining", "Delay remaining", "sensor"),
    icon: "mdi:timer-sand",
    state_topic: state,
    value_template: "{{ value_json.delay_s }}",
    unit_of_measurement: "s",
    device_class: "duration",
    suggested_display_precision: 0,
  };
  return [
    { topic: componentDiscoveryTopic(ctx.discoveryPrefix, "binary_sensor", node, "recommended"), payload: recommended },
    { topic: componentDiscoveryTopic(ctx.discoveryPrefix, "select", node, "mode"), payload: mode },
    { topic: componentDiscoveryTopic(ctx.discoveryPrefix, "sensor", node, "reason"), payload: reason },
    { topic: componentDiscoveryTopic(ctx.discoveryPrefix, "sensor", node, "delay_remaining"), payload: delay },
  ];
}
