/**
 * Operations, with real parts: one bridge per archive (a second is refused and the first goes on; SIGKILL leaves no
 * stale lock; `report` works beside it), the health check going to 503 when the meter's line goes quiet and back,
 * and `meter2mqtt check` naming the failing part and the fix against a real mosquitto, a real dovecot, the HA
 * stand-in and a silent pseudo-terminal.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { type CliProcess, spawnCli, startBridge } from "./helpers/bridge.js";
import { type Dovecot, startDovecot } from "./helpers/dovecot.js";
import { type FakeHa, startFakeHa } from "./helpers/fake-ha.js";
import { type Collector, collect, freePort, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const ROOT = join(import.meta.dirname, "..");

async function eventually(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const states = simulate(Date.UTC(2026, 10, 21, 8, 0, 0), 400, 1);
const telegrams = states.map((s) => dsmr5Telegram(s));

describe("one bridge per archive, and its health", () => {
  let dir: string;
  let broker: Mosquitto;
  let pty: PtyPair;
  let sub: Collector;
  let webPort: number;
  const bridges: CliProcess[] = [];
  let sent = 0;
  let writer: NodeJS.Timeout | undefined;
  const config = (): string[] => [
    "mqtt:",
    `  url: ${broker.url}`,
    "archive:",
    `  path: ${join(dir, "archive.sqlite")}`,
    "  interval: 0",
    "web:",
    `  port: ${webPort}`,
    "meters:",
    `  - {id: p1, type: dsmr, port: ${pty.device}, baud: 115200, timeout: 2}`,
  ];
  const feed = (on: boolean): void => {
    if (writer) clearInterval(writer);
    writer = on
      ? setInterval(() => void pty.write(telegrams[sent++ % telegrams.length]!).catch(() => {}), 250)
      : undefined;
  };
  const health = async (): Promise<number> => {
    try {
      return (await fetch(`http://127.0.0.1:${webPort}/health`)).status;
    } catch {
      return 0;
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-ops-"));
    broker = await startMosquitto();
    pty = await startPtyPair(dir);
    webPort = await freePort();
    sub = await collect(broker.url, ["meter2mqtt/#"]);
  }, 30_000);

  afterAll(async () => {
    feed(false);
    for (const b of bridges) b.kill();
    await sub?.close();
    await pty?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a second bridge on the same archive, naming the first one's PID, and the first goes on", async () => {
    const first = startBridge(dir, config());
    bridges.push(first);
    feed(true);
    await sub.waitFor((m) => m.topic === "meter2mqtt/p1/state", 20_000);
    const second = startBridge(dir, config());
    bridges.push(second);
    expect(await second.exit).toBe(1);
    const lines = second.output().trim().split("\n");
    expect(lines.at(-1)).toBe(
      `meter2mqtt: another meter2mqtt (PID ${first.child.pid}) is already running on the archive ${join(dir, "archive.sqlite")}: stop it first (two bridges on one meter make Home Assistant's entities flap)`,
    );
    // The first one still reads and publishes.
    const before = sub.messages.filter((m) => m.topic === "meter2mqtt/p1/state").length;
    await until(
      () => sub.messages.filter((m) => m.topic === "meter2mqtt/p1/state").length > before + 2,
      10_000,
      "states after the second bridge gave up",
    );
    expect(first.child.exitCode).toBeNull();
  }, 60_000);

  it("report reads the archive beside the running bridge", () => {
    const day = new Date(states[0]!.time).toISOString().slice(0, 10);
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli.ts",
        "report",
        "daily",
        "--config",
        join(dir, "config.yaml"),
        "--meter",
        "p1",
        "--from",
        day,
        "--to",
        day,
        "--format",
        "json",
      ],
      { cwd: ROOT, encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(day);
  }, 30_000);

  it("GET /health answers 200 while telegrams arrive, 503 when the line goes quiet, 200 again when they come back", async () => {
    await eventually(async () => (await health()) === 200, 10_000, "200");
    feed(false);
    let status = 0;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && status !== 503) {
      status = await health();
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(503);
    const body = (await (await fetch(`http://127.0.0.1:${webPort}/health`)).json()) as { problems: string[] };
    expect(body.problems[0]).toMatch(/^meter p1: no valid telegram for \d+ s$/);
    const retained = await sub.waitFor(
      (m) =>
        m.topic === "meter2mqtt/bridge/health" && (JSON.parse(m.payload) as { status: string }).status === "failing",
      10_000,
    );
    expect(retained.retain).toBe(true);
    feed(true);
    await eventually(async () => (await health()) === 200, 10_000, "200 again");
    // Not spawnSync: the telegram writer of this test must keep running meanwhile.
    const probe = spawnCli(["health", "--config", join(dir, "config.yaml")]);
    expect(await probe.exit).toBe(0);
    expect(probe.output().trim()).toBe("ok");
  }, 60_000);

  it("after SIGKILL the bridge starts again on the same archive: no stale lock", async () => {
    const first = bridges[0]!;
    first.child.kill("SIGKILL");
    await first.exit;
    const again = startBridge(dir, config());
    bridges.push(again);
    const at = sub.messages.length;
    await until(
      () => sub.messages.slice(at).some((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online"),
      20_000,
      "the restarted bridge online",
    );
    expect(again.child.exitCode).toBeNull();
    expect(again.output()).not.toContain("already running");
  }, 60_000);
});

describe("meter2mqtt check", () => {
  let dir: string;
  let broker: Mosquitto;
  let dovecot: Dovecot;
  let ha: FakeHa;
  let pty: PtyPair;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-check-"));
    [broker, dovecot, ha, pty] = await Promise.all([
      startMosquitto({ users: { bridge: "right-password" } }),
      startDovecot({ user: "texas", password: "mail-password" }),
      startFakeHa({ token: "good-token" }),
      startPtyPair(),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled([broker?.stop(), dovecot?.stop(), ha?.close(), pty?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  function check(lines: string[]): CliProcess {
    const file = join(dir, `check-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `${lines.join("\n")}\n`);
    return spawnCli(["check", "--config", file, "--wait", "3"]);
  }
  const base = (o: { mqttPassword: string; mailPassword: string; token: string }) => [
    "mqtt:",
    `  url: ${broker.url}`,
    "  username: bridge",
    `  password: ${o.mqttPassword}`,
    "homeassistant:",
    "  statistics: true",
    `  url: ${ha.url}`,
    `  token: ${o.token}`,
    "archive:",
    `  path: ${join(dir, "archive.sqlite")}`,
    "meters:",
    `  - {id: p1, type: dsmr, port: ${pty.device}, baud: 115200}`,
    "  - id: texas",
    "    type: smt",
    "    imap:",
    "      host: 127.0.0.1",
    `      port: ${dovecot.port}`,
    "      tls: false",
    "      user: texas",
    `      password: ${o.mailPassword}`,
    "      sender: reports@example.com",
  ];

  it("names every failing part and its fix, one line each, and exits 1", async () => {
    const run = check(base({ mqttPassword: "wrong", mailPassword: "wrong", token: "bad-token" }));
    expect(await run.exit).toBe(1);
    const out = run.output().trim().split("\n");
    const line = (part: RegExp): string => {
      const found = out.find((l) => part.test(l));
      if (!found) throw new Error(`no line for ${part} in:\n${out.join("\n")}`);
      return found;
    };
    expect(line(/^FAIL MQTT broker: /)).toMatch(/refused the login: check mqtt\.username and mqtt\.password/);
    expect(line(/^FAIL meter p1 /)).toMatch(/nothing valid arrived in 3 s: check the cable/);
    expect(line(/^FAIL meter texas mailbox /)).toMatch(/refused the login: check imap\.user and imap\.password/);
    expect(line(/^FAIL Home Assistant: /)).toMatch(/refused the access token.*long-lived access token/);
    expect(out.at(-1)).toBe("4 part(s) need attention");
    // Secrets never printed.
    for (const secret of ["wrong", "bad-token"]) expect(run.output()).not.toContain(secret);
  }, 60_000);

  it("passes when every part works, reading a telegram from the meter", async () => {
    await dovecot.append("From: reports@example.com\r\nTo: texas@example.com\r\nSubject: Energy Data\r\n\r\nhello\r\n");
    const writer = setInterval(() => void pty.write(telegrams[0]!).catch(() => {}), 200);
    try {
      const run = check(base({ mqttPassword: "right-password", mailPassword: "mail-password", token: "good-token" }));
      const code = await run.exit;
      const out = run.output().trim().split("\n");
      expect(out.filter((l) => l.startsWith("FAIL"))).toEqual([]);
      expect(code).toBe(0);
      expect(out.find((l) => l.startsWith("ok   meter p1"))).toMatch(/valid data from Iskra/);
      expect(out.find((l) => l.startsWith("ok   meter texas mailbox"))).toMatch(
        /1 email\(s\) from reports@example.com/,
      );
      expect(out.find((l) => l.startsWith("ok   Home Assistant"))).toMatch(/recorder answers/);
      expect(out.at(-1)).toBe("every part works");
    } finally {
      clearInterval(writer);
    }
  }, 60_000);
});
