import { SerialPort } from "serialport";
import {
  currentSummation,
  deviceInfo,
  type Ids,
  instantaneousDemand,
  LAYOUTS,
  type Layout,
  meterList,
  networkInfo,
  priceCluster,
  warning,
} from "../../src/sources/raven/build.js";
import { FragmentReader } from "../../src/sources/raven/fragments.js";
import type { PtyPair } from "./pty.js";

/**
 * A Rainforest EMU-2 at the meter end of a socat pseudo-terminal pair: it reads the bridge's commands and answers
 * them as the device does (MeterList, DeviceInfo, NetworkInfo, InstantaneousDemand, CurrentSummationDelivered,
 * PriceCluster; a Warning for anything else), and the test makes it push unsolicited fragments in between, send
 * garbage, or disappear like an unplugged USB stick. The meter end is opened with the real `serialport`
 * package, as the bridge opens its end: non-blocking, and closable while nothing arrives.
 */

export interface Emu2State {
  /** Negative while exporting. */
  watts: number;
  importKwh: number;
  exportKwh: number;
  price: number;
  /** ISO 4217 numeric. */
  currency: number;
  linkStrength: number;
}

export interface ReceivedCommand {
  name: string;
  meterMac?: string;
  raw: string;
}

export const EMU2_IDS: Ids = { deviceMac: "D8D5B9000000F919", meterMac: "00135003004653A5" };
export const EMU2_FIRMWARE = "2.0.0 (7400)";

export class Emu2 {
  readonly commands: ReceivedCommand[] = [];
  readonly state: Emu2State = {
    watts: 1234,
    importKwh: 35395.554,
    exportKwh: 12.5,
    price: 0.1375,
    currency: 840,
    linkStrength: 100,
  };
  /** While set, commands are read and recorded but not answered (a device that hangs). */
  silent = false;
  private port: SerialPort | undefined;
  private readonly reader = new FragmentReader();
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly pty: PtyPair,
    private readonly ids: Ids = EMU2_IDS,
    private readonly layout: Layout = LAYOUTS.emu2,
  ) {}

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.pty.meterEnd, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    // A vanished pty reports an error on the old handle; it is closed and replaced on reappear().
    port.on("error", () => {});
    port.on("data", (chunk: Buffer) => this.onData(chunk));
    this.reader.reset();
    this.port = port;
  }

  async close(): Promise<void> {
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  /** Unplugged: the port and both pty links go away. */
  async disappear(): Promise<void> {
    await this.close();
    await this.pty.vanish();
  }

  /** Plugged in again: new ptys behind the same paths. */
  async reappear(): Promise<void> {
    await this.pty.reappear();
    await this.open();
  }

  write(bytes: Buffer | string): Promise<void> {
    const port = this.port;
    if (!port) return Promise.reject(new Error("the emulator's port is closed"));
    return new Promise((resolve, reject) => {
      port.write(bytes, (err) => {
        if (err) reject(err);
        else port.drain(() => resolve());
      });
    });
  }

  fragment(kind: "demand" | "summation" | "price" | "network" | "connection" | "meters" | "device"): Buffer {
    const time = Date.now();
    const s = this.state;
    switch (kind) {
      case "demand":
        return instantaneousDemand(this.ids, { time, watts: s.watts }, this.layout);
      case "summation":
        return currentSummation(this.ids, { time, importKwh: s.importKwh, exportKwh: s.exportKwh }, this.layout);
      case "price":
        return priceCluster(this.ids, { time, price: s.price, currency: s.currency, trailingDigits: 4 }, this.layout);
      case "network":
      case "connection":
        return networkInfo(
          this.ids,
          { linkStrength: s.linkStrength, fragment: kind === "network" ? "NetworkInfo" : "ConnectionStatus" },
          this.layout,
        );
      case "meters":
        return meterList(this.ids.deviceMac, [this.ids.meterMac], this.layout);
      case "device":
        return deviceInfo(this.ids, { firmware: EMU2_FIRMWARE }, this.layout);
    }
  }

  /** An unsolicited fragment, as the EMU-2 pushes demand, summation and price by itself. */
  push(kind: Parameters<Emu2["fragment"]>[0]): Promise<void> {
    return this.write(this.fragment(kind));
  }

  /** What a USB buffer can hold after a glitch: noise, the tail of one fragment and the head of another. */
  garbage(): Promise<void> {
    const demand = this.fragment("demand").toString("latin1");
    const tail = demand.slice(demand.indexOf("<Demand>") + 4);
    const head = this.fragment("summation").toString("latin1").slice(0, 120);
    return this.write(Buffer.concat([Buffer.from([0x00, 0xff, 0xfe, 0x8f]), Buffer.from(tail + head, "latin1")]));
  }

  count(name: string): number {
    return this.commands.filter((c) => c.name === name).length;
  }

  /** Resolves once `n` commands named `name` have been received in all. */
  async waitForCommand(name: string, n = 1, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.count(name) < n) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `the emulator got ${this.count(name)} × ${name}, not ${n}, within ${timeoutMs} ms; received: ${this.commands
            .map((c) => c.name)
            .slice(-10)
            .join(", ")}`,
        );
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  private onData(chunk: Buffer): void {
    for (const ev of this.reader.push(chunk)) {
      if (!("fragment" in ev) || ev.fragment.name !== "Command") continue;
      const field = (k: string): string | undefined => ev.fragment.fields.find(([n]) => n === k)?.[1];
      const name = field("Name") ?? "";
      const meter = field("MeterMacId")?.replace(/^0x/i, "").toUpperCase();
      this.commands.push({
        name,
        ...(meter ? { meterMac: meter } : {}),
        raw: ev.fragment.fields.map(([k, v]) => `${k}=${v}`).join(" "),
      });
      for (const w of [...this.waiters]) w();
      if (!this.silent) void this.answer(name, meter).catch(() => {});
    }
  }

  private answer(name: string, meter: string | undefined): Promise<void> {
    if (meter && meter !== this.ids.meterMac) return this.write(warning("Invalid MeterMacId", this.layout));
    switch (name) {
      case "get_meter_list":
        return this.push("meters");
      case "get_device_info":
        return this.push("device");
      case "get_network_info":
        return this.push("network");
      case "get_connection_status":
        return this.push("connection");
      case "get_instantaneous_demand":
        return this.push("demand");
      case "get_current_summation_delivered":
        return this.push("summation");
      case "get_current_price":
        return this.push("price");
      default:
        return this.write(warning("Unknown command", this.layout));
    }
  }
}
