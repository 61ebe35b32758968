/**
 * Home Assistant MQTT discovery payloads and the topic layout, as pure functions of the quantity catalogue,
 * so they can be checked without a broker. Full key names throughout (no `stat_t`-style abbreviations):
 * the payloads are meant to be read by people debugging their setup with an MQTT explorer.
 */
import { REPLACED_AT, RESET_REGISTERS } from "../../derived/replacement.js";
import type { QuantitySpec, StateClass } from "../../model/quantities.js";
import type { MeterInfo } from "../../model/types.js";

export interface MeterDescription {
  id: string;
  name?: string;
  type: string;
}

/** Where users are sent from HA's device page ("MQTT INFO" → origin). */
export const SUPPORT_URL = "https://github.com/meter2mqtt/meter2mqtt";
export const ORIGIN_NAME = "meter2mqtt";

export interface DiscoveryAvailability {
  topic: string;
}

export interface DiscoveryDevice {
  identifiers: string[];
  name: string;
  manufacturer?: string;
  model?: string;
  serial_number?: string;
  sw_version?: string;
  /** identifiers[0] of the device this one is reached through (a load's device names its meter's). */
  via_device?: string;
}

export interface DiscoveryOrigin {
  name: string;
  sw_version?: string;
  support_url?: string;
}

/** The subset of HA's MQTT sensor schema this bridge sends. */
export interface SensorDiscovery {
  name: string;
  unique_id: string;
  /**
   * Deprecated since HA 2025.10 in favour of default_entity_id. Sent as well so HA before 2025.10 still picks our
   * entity ids: HA does not warn when both are present, and its discovery schemas drop keys they do not know.
   */
  object_id: string;
  default_entity_id: string;
  state_topic: string;
  value_template: string;
  unit_of_measurement?: string;
  device_class?: string;
  state_class?: StateClass;
  /** state_class total only: where HA reads the time of the register's last reset (a replaced meter). */
  last_reset_value_template?: string;
  suggested_display_precision?: number;
  /** The states of a device_class "enum" sensor. */
  options?: string[];
  icon?: string;
  entity_category?: "diagnostic";
  enabled_by_default?: false;
  availability: DiscoveryAvailability[];
  availability_mode: "all";
  device: DiscoveryDevice;
  origin: DiscoveryOrigin;
}

/** The keys every entity this bridge announces carries, whatever its component. */
export type EntityDiscoveryBase = Pick<
  SensorDiscovery,
  | "name"
  | "unique_id"
  | "object_id"
  | "default_entity_id"
  | "icon"
  | "entity_category"
  | "enabled_by_default"
  | "availability"
  | "availability_mode"
  | "device"
  | "origin"
>;

/** The subset of HA's MQTT binary_sensor schema this bridge sends. */
export interface BinarySensorDiscovery extends EntityDiscoveryBase {
  state_topic: string;
  value_template: string;
  payload_on: string;
  payload_off: string;
  device_class?: string;
}

/** The subset of HA's MQTT select schema: the option picked in HA is published to command_topic. */
export interface SelectDiscovery extends EntityDiscoveryBase {
  state_topic: string;
  value_template: string;
  command_topic: string;
  options: string[];
}

export type EntityComponent = "sensor" | "binary_sensor" | "select";

export interface DiscoveryMessage {
  topic: string;
  payload: SensorDiscovery;
}

export interface DiscoveryContext {
  discoveryPrefix: string;
  baseTopic: string;
  meter: MeterDescription;
  info?: MeterInfo;
  /** From the meter's own `currency` value; turns the price into `<currency>/kWh`. */
  currency?: string;
  origin: DiscoveryOrigin;
}

export const bridgeStateTopic = (base: string): string => `${base}/bridge/state`;
export const meterStateTopic = (base: string, meterId: string): string => `${base}/${meterId}/state`;
export const meterAvailabilityTopic = (base: string, meterId: string): string => `${base}/${meterId}/availability`;
export const haStatusTopic = (discoveryPrefix: string): string => `${discoveryPrefix}/status`;

/**
 * `<base>_<meter>`: the discovery node id, the device identifier and the unique_id prefix.
 * HA only accepts [a-zA-Z0-9_-] in the node id of a discovery topic, and a base topic may hold `/`.
 */
export function nodeId(baseTopic: string, meterId: string): string {
  return `${baseTopic}_${meterId}`.replace(/[^a-zA-Z0-9_-]/g, "_");
}

export function discoveryTopic(discoveryPrefix: string, baseTopic: string, meterId: string, quantity: string): string {
  return `${discoveryPrefix}/sensor/${nodeId(baseTopic, meterId)}/${quantity}/config`;
}

/** `<prefix>/<component>/<node>/<object>/config`, for entities that are not meter quantities. */
export function componentDiscoveryTopic(
  discoveryPrefix: string,
  component: EntityComponent,
  node: string,
  objectId: string,
): string {
  return `${discoveryPrefix}/${component}/${node}/${objectId}/config`;
}

export function deviceOf(ctx: Pick<DiscoveryContext, "baseTopic" | "meter" | "info">): DiscoveryDevice {
  const device: DiscoveryDevice = {
    identifiers: [nodeId(ctx.baseTopic, ctx.meter.id)],
    name: ctx.meter.name ?? ctx.meter.id,
  };
  const info = ctx.info;
  if (info?.manufacturer) device.manufacturer = info.manufacturer;
  if (info?.model) device.model = info.model;
  if (info?.serialNumber) device.serial_number = info.serialNumber;
  if (info?.swVersion) device.sw_version = info.swVersion;
  return device;
}

function unitOf(spec: QuantitySpec, currency: string | undefined): string | undefined {
  if (spec.name === "price_per_kwh") return currency ? `${currency}/kWh` : spec.unit;
  // Monetary sensors: HA's Energy dashboard takes a cost entity only in its own currency's ISO 4217 code.
  if (spec.kind === "cost") return currency ?? spec.unit;
  return spec.unit;
}

/** One sensor entity, everything taken from the catalogue entry. */
export function sensorDiscovery(ctx: DiscoveryContext, spec: QuantitySpec): DiscoveryMessage {
  const meterId = ctx.meter.id;
  const node = nodeId(ctx.baseTopic, meterId);
  const unit = unitOf(spec, ctx.currency);
  // Keys in the order HA's documentation lists them, optional ones left out rather than sent as null.
  const payload: SensorDiscovery = {
    name: spec.label,
    unique_id: `${node}_${spec.name}`,
    object_id: `${meterId}_${spec.name}`,
    default_entity_id: `sensor.${meterId}_${spec.name}`,
    state_topic: meterStateTopic(ctx.baseTopic, meterId),
    value_template: `{{ value_json.${spec.name} }}`,
    ...(unit === undefined ? {} : { unit_of_measurement: unit }),
    ...(spec.deviceClass === undefined ? {} : { device_class: spec.deviceClass }),
    ...(spec.stateClass === undefined ? {} : { state_class: spec.stateClass }),
    ...(spec.stateClass === "total" && spec.lastResetFrom
      ? { last_reset_value_template: `{{ value_json.${spec.lastResetFrom} }}` }
      : {}),
    // A replaced meter (src/derived/replacement.ts): HA's last_reset, empty (ignored by HA) until one happens.
    ...(spec.stateClass === "total" && RESET_REGISTERS.includes(spec.name)
      ? { last_reset_value_template: `{{ value_json.${REPLACED_AT} | default('') }}` }
      : {}),
    ...(spec.precision === undefined ? {} : { suggested_display_precision: spec.precision }),
    ...(spec.icon === undefined ? {} : { icon: spec.icon }),
    ...(spec.entityCategory === undefined ? {} : { entity_category: spec.entityCategory }),
    ...(spec.disabledByDefault ? { enabled_by_default: false as const } : {}),
    availability: [
      { topic: bridgeStateTopic(ctx.baseTopic) },
      { topic: meterAvailabilityTopic(ctx.baseTopic, meterId) },
    ],
    availability_mode: "all",
    device: deviceOf(ctx),
    origin: ctx.origin,
  };
  return { topic: discoveryTopic(ctx.discoveryPrefix, ctx.baseTopic, meterId, spec.name), payload };
}

export function originOf(version: string | undefined): DiscoveryOrigin {
  const origin: DiscoveryOrigin = { name: ORIGIN_NAME };
  if (version) origin.sw_version = version;
  origin.support_url = SUPPORT_URL;
  return origin;
}
