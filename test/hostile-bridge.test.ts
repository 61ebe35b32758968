/**
 * Issue 14, the bridge as a process (`meter2mqtt run`, spawned): meters are read at once whatever the broker does,
 * SIGTERM stops it within seconds at any moment and sends what min_interval held back before `offline`, and a
 * broker that refuses the credentials ends it with one line and exit 2.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { decodeTelegram } from "../src/sources/dsmr/decode.js";
import { type CliProcess, startBridge } from "./helpers/bridge.js";
import { type Collector, collect, freePort, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const states = simulate(Date.UTC(2026, 10, 21, 8, 0, 0), 40, 10);
const telegrams = states.map((s) => dsmr5Telegram(s));
const iso = (ms: number): string => new Date(ms).toISOString();

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ dir: string; pty: PtyPair }> {
  const dir = mkdtempSync(join(tmpdir(), "m2m-hostile-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const pty = await startPtyPair(dir);
  cleanups.push(() => pty.stop());
  return { dir, pty };
}

function bridgeAt(dir: string, pty: PtyPair, mqtt: string[]): CliProcess {
  const bridge = startBridge(dir, [
    "mqtt:",
    ...mqtt.map((l) => `  ${l}`),
    "archive:",
    `  path: ${join(dir, "archive.sqlite")}`,
    "  interval: 0",
    "meters:",
    `  - {id: p1, type: dsmr, port: ${pty.device}, baud: 115200, timeout: 20}`,
    "",
  ]);
  cleanups.push(() => {
    if (process.env.E2E_LOG) console.log(bridge.output());
    bridge.kill();
  });
  return bridge;
}

function archived(dir: string): string[] {
  const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
  const rows = db.prepare("SELECT time FROM readings WHERE meter_id = 'p1' ORDER BY time").all() as { time: string }[];
  db.close();
  return rows.map((r) => r.time);
}

async function stopAndTime(bridge: CliProcess): Promise<{ code: number | null; ms: number }> {
  const t = Date.now();
  bridge.child.kill("SIGTERM");
  const code = await bridge.exit;
  return { code, ms: Date.now() - t };
}

describe("the bridge without a broker", () => {
  it("reads and archives the meter from the start, and publishes its latest state once the broker comes", async () => {
    const { dir, pty } = await setup();
    const port = await freePort();
    const bridge = bridgeAt(dir, pty, [`url: mqtt://127.0.0.1:${port}`, "min_interval: {energy: 0, power: 0}"]);
    await until(() => /8N1\) open/.test(bridge.output()), 15_000, "the port to be opened");
    // Opened before the first connection attempt had even timed out (10 s).
    expect(bridge.output()).not.toMatch(/cannot connect/);
    for (let i = 0; i < 5; i++) await pty.write(telegrams[i]!);
    await until(() => /cannot connect to the MQTT broker/.test(bridge.output()), 20_000, "the warning");
    expect(bridge.output()).toMatch(/meters are read and archived meanwhile/);

    const broker: Mosquitto = await startMosquitto({ port });
    cleanups.push(() => broker.stop());
    const sub: Collector = await collect(broker.url, ["meter2mqtt/#"]);
    cleanups.push(() => sub.close());
    // The latest telegram's register (the state's `time` may be a diagnostic's rather than the meter's).
    const decoded = decodeTelegram(telegrams[4]!);
    if (!decoded.ok) throw new Error(decoded.reason);
    const latest = decoded.telegram.values.energy_import_tariff2_kwh;
    expect(latest).not.toBe(
      (decodeTelegram(telegrams[3]!) as { telegram: { values: Record<string, unknown> } }).telegram.values
        .energy_import_tariff2_kwh,
    );
    const state = await sub
      .waitFor(
        (m) =>
          m.topic === "meter2mqtt/p1/state" &&
          (JSON.parse(m.payload) as Record<string, unknown>).energy_import_tariff2_kwh === latest,
        30_000,
      )
      .catch((err: Error) => {
        const seen = sub.messages.filter((m) => m.topic === "meter2mqtt/p1/state").map((m) => m.payload);
        throw new Error(`${err.message}\nstates: ${seen.join("\n")}\nbridge:\n${bridge.output()}`);
      });
    expect(state.retain).toBe(true);
    const { code } = await stopAndTime(bridge);
    expect(code).toBe(0);
    expect(archived(dir)).toEqual(states.slice(0, 5).map((s) => iso(s.time)));
  }, 90_000);

  it("stops within 2 s on SIGTERM while the broker is away, and never opens a meter after stopping", async () => {
    const { dir, pty } = await setup();
    const port = await freePort();
    const bridge = bridgeAt(dir, pty, [`url: mqtt://127.0.0.1:${port}`]);
    await until(() => /8N1\) open/.test(bridge.output()), 15_000, "the port to be opened");
    await pty.write(telegrams[0]!);
    await new Promise((r) => setTimeout(r, 1000));
    const { code, ms } = await stopAndTime(bridge);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2500);
    const out = bridge.output();
    expect(out.slice(out.indexOf("stopping"))).not.toMatch(/8N1\) open/);
    expect(archived(dir)).toEqual([iso(states[0]!.time)]);
  }, 60_000);

  it("stops at once on SIGTERM during start-up, before the meters are read", async () => {
    const { dir, pty } = await setup();
    const port = await freePort();
    const bridge = bridgeAt(dir, pty, [`url: mqtt://127.0.0.1:${port}`]);
    await until(() => /starting with 1 meter/.test(bridge.output()), 15_000, "start-up");
    const { code, ms } = await stopAndTime(bridge);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2500);
    const out = bridge.output();
    expect(out).toMatch(/stopped/);
    expect(out.slice(out.indexOf("stopped"))).not.toMatch(/8N1\) open/);
  }, 60_000);
});

describe("the bridge with a broker", () => {
  it("sends the values min_interval held back before `offline` on SIGTERM", async () => {
    const { dir, pty } = await setup();
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const sub = await collect(broker.url, ["meter2mqtt/#"]);
    cleanups.push(() => sub.close());
    const bridge = bridgeAt(dir, pty, [`url: ${broker.url}`, "min_interval: {energy: 600, power: 600}"]);
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 20_000);
    await until(() => /8N1\) open/.test(bridge.output()), 15_000, "the port to be opened");
    await pty.write(telegrams[0]!);
    await sub.waitFor((m) => m.topic === "meter2mqtt/p1/state", 10_000);
    for (let i = 1; i < 4; i++) await pty.write(telegrams[i]!);
    await until(() => archived(dir).length === 4, 15_000, "the readings to be archived");
    const last = `"time":"${iso(states[3]!.time)}"`;
    expect(sub.messages.some((m) => m.payload.includes(last))).toBe(false);
    const { code, ms } = await stopAndTime(bridge);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2500);
    const offline = await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "offline", 5000);
    const flushed = sub.messages.findIndex((m) => m.topic === "meter2mqtt/p1/state" && m.payload.includes(last));
    expect(flushed).toBeGreaterThan(-1);
    expect(flushed).toBeLessThan(sub.messages.indexOf(offline));
    const values = JSON.parse(sub.messages[flushed]!.payload) as Record<string, number>;
    const decoded = decodeTelegram(telegrams[3]!);
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(values.energy_import_kwh).toBe(decoded.telegram.values.energy_import_kwh);
    expect(values.power_import_w).toBe(decoded.telegram.values.power_import_w);
  }, 60_000);

  it("stops within 2 s on SIGTERM while the broker hangs", async () => {
    const { dir, pty } = await setup();
    const broker = await startMosquitto();
    cleanups.push(async () => {
      broker.signal("SIGCONT");
      await broker.stop();
    });
    const sub = await collect(broker.url, ["meter2mqtt/#"]);
    cleanups.push(() => sub.close());
    const bridge = bridgeAt(dir, pty, [`url: ${broker.url}`]);
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 20_000);
    await until(() => /8N1\) open/.test(bridge.output()), 15_000, "the port to be opened");
    await pty.write(telegrams[0]!);
    await until(() => archived(dir).length === 1, 15_000, "the reading to be archived");
    broker.signal("SIGSTOP");
    await pty.write(telegrams[1]!);
    await new Promise((r) => setTimeout(r, 1000));
    const { code, ms } = await stopAndTime(bridge);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2500);
    expect(bridge.output()).toMatch(/did not take "offline".*the will covers it/);
    expect(archived(dir)).toEqual([iso(states[0]!.time), iso(states[1]!.time)]);
  }, 60_000);

  it("ends with one line and exit 2 when the broker refuses the credentials, without a stack or the password", async () => {
    const { dir, pty } = await setup();
    const broker = await startMosquitto({ users: { meter: "right-horse-battery" } });
    cleanups.push(() => broker.stop());
    const bridge = bridgeAt(dir, pty, [`url: ${broker.url}`, "username: meter", "password: wrong-horse-battery"]);
    expect(await bridge.exit).toBe(2);
    const out = bridge.output();
    const errors = out.split("\n").filter((l) => /ERROR|^meter2mqtt: /.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/refused the connection: .*(authori[sz]ed|Bad user).*check mqtt.username/i);
    expect(out).not.toMatch(/\n\s+at /);
    expect(out).not.toContain("wrong-horse-battery");
  }, 60_000);
});
