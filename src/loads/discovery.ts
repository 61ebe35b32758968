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

/** An earlier run's state from its retained message; undefined when it is not one of ours. */
export function parseLoadState(payload: string): { on: boolean; since: number; mode: Mode } | undefined {
  try {
    const m = JSON.parse(payload) as Partial<LoadStateMessage>;
    if ((m.state !== "on" && m.state !== "off") || !MODES.includes(m.mode as Mode)) return undefined;
    const since = typeof m.since === "string" ? Date.parse(m.since) : Number.NaN;
    return {
      on: m.state === "on",
      mode: m.mode as Mode,
      since: Number.isNaN(since) ? Number.NEGATIVE_INFINITY : since,
    };
  } catch {
    return undefined;
  }
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
