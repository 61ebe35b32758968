import { SerialPort } from "serialport";
import { BaseTransport, type Connection, errorCode, errorText, type Failure, type Link } from "./base.js";
import { DSMR_SERIAL, type SerialSettings, type TransportOptions } from "./types.js";

export function formatSerial(s: SerialSettings): string {
  return `${s.baudRate} ${s.dataBits}${s.parity === "even" ? "E" : "N"}${s.stopBits}`;
}

/** A serial device (USB P1 cable, RS-232 adapter) through the `serialport` package. */
export class SerialTransport extends BaseTransport {
  private current: SerialSettings;
  /** The open port, for write(); a P1 port is only read, a RAVEn stick takes commands. */
  private port: SerialPort | undefined;

  constructor(
    readonly path: string,
    opts: TransportOptions = {},
  ) {
    super(opts);
    this.current = { ...(opts.serial ?? DSMR_SERIAL.v4plus) };
  }

  get description(): string {
    return `${this.path} (${formatSerial(this.current)})`;
  }

  get settings(): SerialSettings {
    return { ...this.current };
  }

  /** Applies new line settings and reopens (reopening is the one way that also changes data bits and parity). */
  setSettings(s: SerialSettings): void {
    const before = formatSerial(this.current);
    this.current = { ...s };
    this.restart(`serial settings ${before} → ${formatSerial(s)}`, false);
  }

  protected override connect(link: Link): Connection {
    const s = this.current;
    const port = new SerialPort({
      path: this.path,
      baudRate: s.baudRate,
      dataBits: s.dataBits,
      parity: s.parity,
      stopBits: s.stopBits,
      autoOpen: false,
    });
    port.on("data", (chunk: Buffer) => link.data(chunk));
    // An unplugged USB adapter shows up as 'close' with a DisconnectedError; a zero-byte read as 'end'.
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
        // An open in flight cannot be cancelled; wait for it so the port is never left open behind our back.
        await opening;
        if (this.port === port) this.port = undefined;
        port.removeAllListeners();
        // A late error from a port we no longer use must not crash the process (no listener = throw).
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

  protected override explain(err: unknown): Failure {
    const msg = errorText(err);
    const code = errorCode(err);
    if (code === "EACCES" || /permission denied/i.test(msg))
      return {
        reason: `permission denied on ${this.path}`,
        kind: "permission",
        advice:
          `add the user running meter2mqtt to the "dialout" group (sudo usermod -aG dialout <user>, then log in again),` +
          ` or in Docker pass the device with --device ${this.path}`,
      };
    if (/cannot lock port/i.test(msg))
      return {
        reason: `${this.path} is in use by another program`,
        kind: "locked",
        advice: "stop the other program (another meter2mqtt, ModemManager, a terminal program) that holds the port",
      };
    if (code === "ENOTTY" || /inappropriate ioctl|not a typewriter/i.test(msg))
      return {
        reason: `${this.path} is not a serial port`,
        kind: "not-serial",
        advice: "check the meter's port setting",
      };
    if (/baud rate/i.test(msg))
      return { reason: msg, kind: "settings", advice: `${this.path} does not accept ${formatSerial(this.current)}` };
    if (code === "ENOENT" || /no such file or directory/i.test(msg))
      return { reason: `${this.path} not found (unplugged?)`, kind: "connection" };
    if ((err as { disconnected?: unknown } | null)?.disconnected === true)
      return { reason: `device disconnected (${msg})`, kind: "connection" };
    return { reason: msg, kind: "connection" };
  }
}
