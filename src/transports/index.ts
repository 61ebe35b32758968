import { FileTransport } from "./file.js";
import { SerialTransport } from "./serial.js";
import { TcpTransport } from "./tcp.js";
import type { Transport, TransportOptions } from "./types.js";

export { BaseTransport, type Connection, type Failure, type Link } from "./base.js";
export { FileTransport } from "./file.js";
export { formatSerial, SerialTransport } from "./serial.js";
export { parseTcpUrl, TcpTransport } from "./tcp.js";
export {
  type BackoffOptions,
  DSMR_SERIAL,
  type ReplayOptions,
  type SerialSettings,
  type Transport,
  type TransportEvents,
  type TransportOptions,
} from "./types.js";

/**
 * Picks the transport from the port string of the config: "tcp://host:port", "file:path", anything else is a
 * serial device ("/dev/ttyUSB0", "COM3"). Throws on a malformed tcp:// address, before anything is opened.
 */
export function createTransport(port: string, opts: TransportOptions = {}): Transport {
  if (port.startsWith("tcp://")) return new TcpTransport(port, opts);
  if (port.startsWith("file:")) {
    const path = port.slice("file:".length);
    if (!path) throw new Error(`expected file:path, got "${port}"`);
    return new FileTransport(path, opts);
  }
  return new SerialTransport(port, opts);
}
