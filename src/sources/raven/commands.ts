/**
 * Commands as the device reads them: `<Command><Name>…</Name>[<Arg>…</Arg>]</Command>`, ASCII, no XML
 * declaration, as aioraven writes them. A trailing newline is harmless to both devices and keeps a
 * capture of the port readable.
 */

export type CommandName =
  | "get_meter_list"
  | "get_device_info"
  | "get_network_info"
  | "get_connection_status"
  | "get_instantaneous_demand"
  | "get_current_summation_delivered"
  | "get_current_price"
  | "get_meter_info"
  | "get_time";

/** The fragment each command is answered with. */
export const REPLY: Readonly<Record<CommandName, string>> = {
  get_meter_list: "MeterList",
  get_device_info: "DeviceInfo",
  get_network_info: "NetworkInfo",
  get_connection_status: "ConnectionStatus",
  get_instantaneous_demand: "InstantaneousDemand",
  get_current_summation_delivered: "CurrentSummationDelivered",
  get_current_price: "PriceCluster",
  get_meter_info: "MeterInfo",
  get_time: "TimeCluster",
};

/** Commands that address one meter take its MAC; without one the device uses its current meter. */
const PER_METER = new Set<CommandName>([
  "get_instantaneous_demand",
  "get_current_summation_delivered",
  "get_current_price",
  "get_meter_info",
  "get_time",
]);

export function buildCommand(name: CommandName, meterMac?: string): Buffer {
  const meter = meterMac && PER_METER.has(name) ? `<MeterMacId>0x${meterMac}</MeterMacId>` : "";
  return Buffer.from(`<Command><Name>${name}</Name>${meter}</Command>\n`, "latin1");
}
