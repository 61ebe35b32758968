import { SerialPort } from "serialport";
import type { Connection, Link, SerialSettings, Transport } from "../../transports/index.js";
import { SerialTransport } from "../../transports/index.js";

/** RAVEn (RFA-Z106) and EMU-2 are USB CDC devices; the line settings are nominal, 115200 8N1 as documented. */
export const RAVEN_SERIAL: SerialSettings = Object.freeze({
  baudRate: 115200,
  dataBits: 8,
  parity: "none",
  stopBits: 1,
});

/** A transport the source can send commands through; a file replay has no `write` and is only listened to. */
export interface CommandTransport extends Transport {
  write?(bytes: Buffer): Promise<void>;
}

/**
 * The shared SerialTransport with a way to write. The shared Transport only reads (a P1 port is receive-only),
 * and its serial connection keeps the port to itself; this subclass opens the port the same way and keeps a
 * handle to write commands to. Reconnecting, backoff, outage logging and the explanations of permission or
 * lock errors are all inherited unchanged.
 */
export class RavenSerialTransport extends SerialTransport implements CommandTransport {
  private port: SerialPort | undefined;

  protected override connect(link: Link): Connection {
    const s = this.settings;
    const port = new SerialPort({
      path: this.path,
      baudRate: s.baudRate,
      dataBits: s.dataBits,
      parity: s.parity,
      stopBits: s.stopBits,
      autoOpen: false,
    });
    port.on("data", (chunk: Buffer) => link.data(chunk));
    port.on("close", (err: Error | null) => link.failed(err ?? new Error("port closed")));
    port.on("end", () => link.failed(new Error("device reported end of file")));
    port.on("error", (err: Error) => link.failed(err));
    const opening = new Promise<void>((resolve) => {
      port.open((err) => {
        if (err) link.failed(err);
        else {
          this.port = port;
          link.opened();
        }
        resolve();
      });
    });
    return {
      close: async () => {
        if (this.port === port) this.port = undefined;
        await opening;
        if (this.port === port) this.port = undefined;
        port.removeAllListeners();
        port.on("error", () => {});
        if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
      },
    };
  }

  /** Resolves once the bytes are handed to the driver; rejects while the port is not open. */
  write(bytes: Buffer): Promise<void> {
    const port = this.port;
    if (!port?.isOpen) return Promise.reject(new Error(`${this.path} is not open`));
    return new Promise((resolve, reject) => {
      port.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }
}
