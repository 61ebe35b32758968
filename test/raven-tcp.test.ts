/**
 * An EMU-2 shared over the network (ser2net, a USB server): the device emulator sits behind socat's TCP listener,
 * the bridge process reads `port: tcp://…`, sends its commands over the socket, and publishes to mosquitto.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RavenMeterSchema } from "../src/config/schema.js";
import { type CliProcess, startBridge } from "./helpers/bridge.js";
import { EMU2_IDS, Emu2 } from "./helpers/emu2.js";
import {
  type Collector,
  collect,
  findExecutable,
  freePort,
  type Mosquitto,
  startMosquitto,
  until,
} from "./helpers/mosquitto.js";
import type { PtyPair } from "./helpers/pty.js";

describe("EMU-2 over TCP (ser2net) to mosquitto", () => {
  let dir: string;
  let broker: Mosquitto;
  let socat: ChildProcess;
  let emu: Emu2;
  let sub: Collector;
  let bridge: CliProcess;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-raven-tcp-"));
    broker = await startMosquitto();
    port = await freePort();
    const link = join(dir, "emu2");
    // The pty first (the emulator opens it at once), then the listener the bridge connects to, as ser2net serves it.
    socat = spawn(
      findExecutable("socat"),
      [`pty,raw,echo=0,link=${link}`, `tcp-listen:${port},bind=127.0.0.1,reuseaddr`],
      { stdio: "ignore" },
    );
    await until(() => existsSync(link), 10_000, "socat's pty");
    const pty = { meterEnd: link } as PtyPair;
    emu = new Emu2(pty);
    await emu.open();
    sub = await collect(broker.url, ["meter2mqtt/#"]);
    bridge = startBridge(dir, [
      "mqtt:",
      `  url: ${broker.url}`,
      "  min_interval: {energy: 0, power: 0, demand: 0}",
      "archive:",
      "  enabled: false",
      "meters:",
      `  - {id: emu, type: raven, port: "tcp://127.0.0.1:${port}", demand_interval: 2, summation_interval: 3, price_interval: 5, command_timeout: 2, timeout: 15}`,
    ]);
  }, 60_000);

  afterAll(async () => {
    bridge?.kill();
    await sub?.close();
    await emu?.close();
    socat?.kill("SIGKILL");
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes tcp:// ports in the configuration", () => {
    expect(RavenMeterSchema.parse({ id: "e", type: "raven", port: "tcp://ser2net.local:3333" }).port).toBe(
      "tcp://ser2net.local:3333",
    );
    expect(() => RavenMeterSchema.parse({ id: "e", type: "raven", port: "tcp://nohost" })).toThrow(/tcp:\/\/host:port/);
  });

  it("sends its commands over the socket and publishes what the device answers", async () => {
    await emu.waitForCommand("get_meter_list", 1, 30_000);
    await emu.waitForCommand("get_instantaneous_demand", 1, 15_000);
    const perMeter = emu.commands.filter((c) => /demand|summation|price/.test(c.name));
    for (const c of perMeter) expect(c.meterMac).toBe(EMU2_IDS.meterMac);
    const s = emu.state;
    const state = await sub.waitFor((m) => {
      if (m.topic !== "meter2mqtt/emu/state") return false;
      const v = JSON.parse(m.payload) as Record<string, unknown>;
      return v.power_net_w === s.watts && v.energy_import_kwh === s.importKwh;
    }, 20_000);
    expect(JSON.parse(state.payload)).toMatchObject({ power_import_w: s.watts, energy_export_kwh: s.exportKwh });
    expect(bridge.output()).toContain(`tcp://127.0.0.1:${port}`);
  }, 60_000);
});
