/**
 * The add-on's start-up path without Docker: a local stand-in for the Supervisor's API (`GET /services/mqtt`, the
 * answers and refusals its source documents), a temporary folder as /data, and a real mosquitto that only lets in
 * the login the stand-in hands out. The bridge runs as the add-on's CMD runs it: `run` without --config.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadAddonConfig } from "../src/addon/index.js";
import { ConfigError } from "../src/config/load.js";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { createLogger, setLogSink } from "../src/util/log.js";
import { type Collector, collect, freePort, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";
import {
  type Answer,
  mqttOk as mqttOkFor,
  NOT_ENABLED,
  type StandInSupervisor,
  startSupervisor as startStandIn,
} from "./helpers/supervisor.js";

const ROOT = join(import.meta.dirname, "..");
const TOKEN = "4f1c0de2b7a94e1f8d3c6b5a29e87f10";
const MQTT_PASSWORD = "Ahsh9ooxeiY7ieph";
/** The add-on's shipped defaults: what the Supervisor writes to options.json before the user changes anything. */
const DEFAULTS = (
  parseYaml(readFileSync(join(ROOT, "addon/config.yaml"), "utf8")) as { options: Record<string, unknown> }
).options;

type StandIn = StandInSupervisor;
const mqttOk = (port: number): Answer => mqttOkFor(port, MQTT_PASSWORD);
const startSupervisor = () => startStandIn(TOKEN);

describe("add-on start-up (in process)", () => {
  let dir: string;
  let supervisor: StandIn;
  const lines: string[] = [];
  const log = createLogger("addon");

  function optionsFile(options: Record<string, unknown>): string {
    const file = join(dir, "options.json");
    writeFileSync(file, JSON.stringify(options));
    return file;
  }
  const withMeter = (meter: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    ...DEFAULTS,
    ...extra,
    meters: [{ id: "home", type: "dsmr", ...meter }],
  });
  const load = (options: Record<string, unknown>, env: Record<string, string | undefined> = {}) =>
    loadAddonConfig({
      env: {
        METER2MQTT_OPTIONS: optionsFile(options),
        SUPERVISOR_URL: supervisor.url,
        SUPERVISOR_TOKEN: TOKEN,
        ...env,
      },
      log,
      supervisor: { attempts: 3, sleep: async () => {} },
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-addon-"));
    supervisor = await startSupervisor();
    setLogSink((line) => lines.push(line));
  });
  afterAll(async () => {
    await supervisor.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    supervisor.requests.length = 0;
    supervisor.answers = [mqttOk(1883)];
    lines.length = 0;
  });

  it("takes the broker and login from the Supervisor when the options leave MQTT blank, and logs each decision", async () => {
    const { config, source } = await load(withMeter({ port: "/dev/ttyUSB0" }, { mqtt: { url: "", username: "" } }));
    expect(supervisor.requests).toHaveLength(1);
    expect(supervisor.requests[0]).toMatchObject({ method: "GET", path: "/services/mqtt" });
    expect(config.mqtt).toMatchObject({ url: "mqtt://127.0.0.1:1883", username: "addons", password: MQTT_PASSWORD });
    expect(config.archive.path).toBe(join(dir, "meter2mqtt.sqlite"));
    expect(config.homeassistant).toMatchObject({
      url: `${supervisor.url.replace("http", "ws")}/core/websocket`,
      token: TOKEN,
    });
    expect(source).toBe(`${join(dir, "options.json")} (app)`);
    const text = lines.join("\n");
    expect(text).toContain(
      "MQTT: broker mqtt://127.0.0.1:1883 and login (user addons) from the Supervisor's MQTT service (core_mosquitto)",
    );
    expect(text).toContain(`archive: ${join(dir, "meter2mqtt.sqlite")}`);
    expect(text).toContain("meter home (dsmr): serial device /dev/ttyUSB0");
    expect(text).toContain("Home Assistant: websocket through the Supervisor's proxy");
    expect(text).not.toContain(MQTT_PASSWORD);
    expect(text).not.toContain(TOKEN);
  });

  it("leaves the Supervisor alone when the user set a broker, and keeps the user's password out of the log", async () => {
    const mqtt = { url: "mqtt://192.168.1.10:1883", username: "me", password: "user-pass-9!" };
    const { config } = await load(withMeter({ tcp: "192.168.1.50:8088" }, { mqtt }));
    expect(supervisor.requests).toHaveLength(0);
    expect(config.mqtt).toMatchObject(mqtt);
    expect(config.meters[0]).toMatchObject({ port: "tcp://192.168.1.50:8088" });
    expect(lines.join("\n")).toContain("MQTT: broker mqtt://192.168.1.10:1883 from the options, user me");
    expect(lines.join("\n")).not.toContain("user-pass-9!");
  });

  it("uses the Supervisor's broker with the user's own login when only the login is set", async () => {
    const { config } = await load(
      withMeter({ port: "/dev/ttyACM0" }, { mqtt: { username: "me", password: "pw-xyz" } }),
    );
    expect(supervisor.requests).toHaveLength(1);
    expect(config.mqtt).toMatchObject({ url: "mqtt://127.0.0.1:1883", username: "me", password: "pw-xyz" });
  });

  it("says what to do when the Supervisor has no broker, without retrying a refusal", async () => {
    supervisor.answers = [NOT_ENABLED];
    const err = await load(withMeter({ port: "/dev/ttyUSB0" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(
      /no MQTT broker to hand out \(Service not enabled\); install and start the Mosquitto broker app, or set mqtt.url/,
    );
    expect(supervisor.requests).toHaveLength(1);
  });

  it("reports a refused token as the Supervisor's refusal", async () => {
    const err = await load(withMeter({ port: "/dev/ttyUSB0" }), { SUPERVISOR_TOKEN: "0000" }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/refused to tell this app the MQTT broker \(HTTP 401: Invalid token\)/);
    expect((err as Error).message).not.toContain("0000");
  });

  it("retries while the Supervisor answers 5xx, and gives up on one that cannot be reached", async () => {
    supervisor.answers = [{ status: 503, body: { result: "error", message: "busy" } }, mqttOk(1884)];
    const { config } = await load(withMeter({ port: "/dev/ttyUSB0" }));
    expect(supervisor.requests).toHaveLength(2);
    expect(config.mqtt.url).toBe("mqtt://127.0.0.1:1884");

    const nobody = `http://127.0.0.1:${await freePort()}`;
    await expect(load(withMeter({ port: "/dev/ttyUSB0" }), { SUPERVISOR_URL: nobody })).rejects.toThrow(
      /cannot reach the Supervisor at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\) after 3 attempt/,
    );
  });

  it("needs mqtt.url when not started by the Supervisor", async () => {
    await expect(load(withMeter({ port: "/dev/ttyUSB0" }), { SUPERVISOR_TOKEN: undefined })).rejects.toThrow(
      /mqtt.url is blank and SUPERVISOR_TOKEN is not set/,
    );
    expect(supervisor.requests).toHaveLength(0);
  });

  it("folds an SMT meter's imap_* fields into its imap, turns statistics on, and keeps the mail password out of the log", async () => {
    const password = "smt-mail-Pw 7x!";
    const meter = {
      id: "texas",
      name: "Texas house",
      type: "smt",
      imap_host: "imap.mail.yahoo.com",
      imap_port: 993,
      imap_user: "me@yahoo.com",
      // As typed, with the trailing space a paste brings: the app gets it trimmed, the log neither form.
      imap_password: `${password} `,
      imap_sender: "reports@smt.example.com",
      imap_move_to: "Smart Meter Texas",
      imap_flag: "",
      esiid: "'10443720000000001",
      check_at: "12:15",
      folder: "/share/smt",
    };
    const { config } = await load({ ...DEFAULTS, meters: [meter] });
    expect(config.meters).toEqual([
      {
        id: "texas",
        name: "Texas house",
        type: "smt",
        imap: {
          host: "imap.mail.yahoo.com",
          port: 993,
          tls: true,
          user: "me@yahoo.com",
          password,
          sender: "reports@smt.example.com",
          mailbox: "INBOX",
          move_to: "Smart Meter Texas",
        },
        esiid: "10443720000000001",
        timezone: "America/Chicago",
        check_at: "12:15",
        recheck_minutes: 60,
        folder: "/share/smt",
      },
    ]);
    expect(config.homeassistant).toMatchObject({ statistics: true, token: TOKEN });
    const text = lines.join("\n");
    expect(text).toContain(
      "meter texas (smt): the daily email at imap.mail.yahoo.com:993, user me@yahoo.com and the CSVs in /share/smt",
    );
    expect(text).toContain("Home Assistant: long-term statistics on for the SMT meter(s) texas");
    expect(text).not.toMatch(/serial device|network dongle/);
    expect(text).not.toContain(password);
  });

  it("registers the mail password as a secret before the first log line, even when start-up stops early", async () => {
    const password = "early-stop-mail-pw";
    supervisor.answers = [NOT_ENABLED];
    const meter = { id: "texas", type: "smt", imap_host: "h", imap_user: "u", imap_password: password };
    await expect(load({ ...DEFAULTS, meters: [meter] })).rejects.toThrow(/no MQTT broker to hand out/);
    // Nothing was parsed by the app's schema (which registers the config's secrets): the add-on did it.
    log.info(`a line that happens to hold ${password}`);
    expect(lines.at(-1)).toContain("a line that happens to hold ***");
  });

  it("names the SMT meter's flat fields in errors, and refuses a port, a missing mailbox and a folder it cannot see", async () => {
    const smt = (fields: Record<string, unknown>) => ({
      ...DEFAULTS,
      meters: [{ id: "texas", type: "smt", ...fields }],
    });
    const err = await load(smt({ imap_host: "imap.example.com", imap_password: "pw-123456" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([
      "meters[0].imap_user: missing, expected string",
      "meters[0].imap_sender: missing, expected string",
    ]);
    await expect(load(smt({ port: "/dev/ttyUSB0", folder: "/share/smt" }))).rejects.toThrow(
      /meters\[0\]\.port: smt meters read no serial port or network dongle; leave it empty/,
    );
    await expect(load(smt({}))).rejects.toThrow(/meters\[0\]: an smt meter reads the daily email/);
    await expect(load(smt({ folder: "/media/smt" }))).rejects.toThrow(
      /meters\[0\]\.folder: the app sees files under \/share only/,
    );
  });

  it("merges meter2mqtt.yaml from the app's config folder, and keeps its secrets and the encrypted P1 keys out of the log", async () => {
    const configDir = mkdtempSync(join(tmpdir(), "m2m-addon-config-"));
    const key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const aad = "3000112233445566778899aabbccddee";
    const influxPassword = "yaml-pw-Kq8";
    try {
      writeFileSync(
        join(configDir, "meter2mqtt.yaml"),
        [
          "meters:",
          "  - id: home",
          `    aad: ${aad}`,
          "influx:",
          "  url: http://127.0.0.1:8086",
          "  version: 1",
          "  database: energy",
          "  username: writer",
          `  password: ${influxPassword}`,
        ].join("\n"),
      );
      const { config } = await load(withMeter({ port: "/dev/ttyUSB0", key: key.toUpperCase() }), {
        METER2MQTT_CONFIG_DIR: configDir,
      });
      expect(config.meters[0]).toMatchObject({ id: "home", port: "/dev/ttyUSB0", key, aad });
      expect(config.influx).toMatchObject({ version: 1, database: "energy", username: "writer" });
      const text = lines.join("\n");
      expect(text).toMatch(/options from .*options\.json, merged with .*meter2mqtt\.yaml/);
      log.info(`lines that happen to hold ${key} ${key.toUpperCase()} ${aad} ${influxPassword}`);
      for (const secret of [key, key.toUpperCase(), aad, influxPassword])
        expect(lines.join("\n"), secret).not.toContain(secret);

      // A key the app refuses is named by file and key path, and not echoed.
      writeFileSync(join(configDir, "meter2mqtt.yaml"), "meters:\n  - id: home\n    key: not-a-key-123\n");
      const err = await load(withMeter({ port: "/dev/ttyUSB0" }), { METER2MQTT_CONFIG_DIR: configDir }).then(
        () => undefined,
        (e: unknown) => e as ConfigError,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect(err!.issues).toEqual([
        `${join(configDir, "meter2mqtt.yaml")}: meters[0].key: expected the 32-hex-digit key your grid operator gave you`,
      ]);
    } finally {
      rmSync(configDir, { recursive: true, force: true });
    }
  });

  it("puts the backup's copy of the archive in place after a restore, and drops one left beside a live archive", async () => {
    const copy = join(dir, "meter2mqtt.backup.sqlite");
    const live = join(dir, "meter2mqtt.sqlite");
    rmSync(live, { force: true });
    writeFileSync(copy, "restored archive");
    await load(withMeter({ port: "/dev/ttyUSB0" }));
    expect(readFileSync(live, "utf8")).toBe("restored archive");
    expect(existsSync(copy)).toBe(false);
    expect(lines.join("\n")).toContain("archive: restored from the backup's consistent copy");

    writeFileSync(copy, "stale copy");
    await load(withMeter({ port: "/dev/ttyUSB0" }));
    expect(readFileSync(live, "utf8")).toBe("restored archive");
    expect(existsSync(copy)).toBe(false);
    expect(lines.join("\n")).toContain("archive: removed a copy left over from an unfinished backup");
    rmSync(live);
  });

  it("names the add-on's own options in errors: port or tcp, a bad dongle address, tcp where the type takes none", async () => {
    await expect(load(withMeter({}))).rejects.toThrow(/meters\[0\]\.port: missing; pick the serial device/);
    await expect(load(withMeter({ port: "/dev/ttyUSB0", tcp: "10.0.0.2:23" }))).rejects.toThrow(
      /meters\[0\]: set either port \(a serial device\) or tcp \(a network dongle\), not both/,
    );
    await expect(load(withMeter({ tcp: "dongle.local" }))).rejects.toThrow(/meters\[0\]\.tcp: expected host:port/);
    // A RAVEn stick shared by ser2net is a network dongle too; an SMT meter reads none.
    const { config: ser2net } = await load(withMeter({ type: "raven", tcp: "10.0.0.2:23" }));
    expect(ser2net.meters[0]).toMatchObject({ type: "raven", port: "tcp://10.0.0.2:23" });
    await expect(load(withMeter({ type: "smt", folder: "/share/smt", tcp: "10.0.0.2:23" }))).rejects.toThrow(
      /meters\[0\]\.tcp: smt meters read no serial port or network dongle/,
    );
    await expect(load(withMeter({ id: "My Meter", port: "/dev/ttyUSB0" }))).rejects.toThrow(
      /meters\[0\]\.id: expected lowercase/,
    );
  });
});

describe("add-on start-up (the bridge process, a real broker with a login)", () => {
  let dir: string;
  let broker: Mosquitto;
  let supervisor: StandIn;
  let pty: PtyPair;
  let sub: Collector;
  let webPort: number;

  function startBridge(options: Record<string, unknown>): {
    child: ChildProcess;
    output: () => string;
    exit: Promise<number | null>;
  } {
    writeFileSync(join(dir, "options.json"), JSON.stringify(options));
    let output = "";
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "run"], {
      cwd: ROOT,
      env: {
        ...process.env,
        METER2MQTT_OPTIONS: join(dir, "options.json"),
        SUPERVISOR_URL: supervisor.url,
        SUPERVISOR_TOKEN: TOKEN,
        METER2MQTT_WEB_PORT: String(webPort),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, output: () => output, exit };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-addon-e2e-"));
    webPort = await freePort();
    broker = await startMosquitto({ users: { addons: MQTT_PASSWORD } });
    supervisor = await startSupervisor();
    pty = await startPtyPair(dir);
    sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#"], {
      username: "addons",
      password: MQTT_PASSWORD,
    });
  }, 60_000);

  afterAll(async () => {
    await sub?.close();
    await pty?.stop();
    await supervisor?.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("connects with the login the Supervisor handed out and publishes discovery; the archive lands in /data", async () => {
    supervisor.answers = [mqttOk(broker.port)];
    const meter = { ...(DEFAULTS.meters as Record<string, unknown>[])[0], port: pty.device };
    const bridge = startBridge({ ...DEFAULTS, meters: [meter] });
    try {
      // Generous: four test runs may share two cores.
      await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 45_000);
      await until(() => /\bopen\b/.test(bridge.output()), 10_000, "the port to be opened");
      const telegrams = simulate(Date.UTC(2026, 10, 21, 8, 0, 0), 3, 10).map((s) => dsmr5Telegram(s));
      for (const t of telegrams) await pty.write(t);

      const config = await sub.waitFor(
        (m) => m.topic === "homeassistant/sensor/meter2mqtt_home/energy_import_kwh/config",
        10_000,
      );
      expect(JSON.parse(config.payload)).toMatchObject({
        default_entity_id: "sensor.home_energy_import_kwh",
        device_class: "energy",
        device: { name: "Electricity meter" },
      });
      await sub.waitFor((m) => m.topic === "meter2mqtt/home/state", 10_000);

      expect(supervisor.requests.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ["GET", "/services/mqtt", `Bearer ${TOKEN}`],
      ]);
      const log = bridge.output();
      expect(log).toContain(
        `MQTT: broker mqtt://127.0.0.1:${broker.port} and login (user addons) from the Supervisor's MQTT service`,
      );
      expect(log).toContain(`archive: ${join(dir, "meter2mqtt.sqlite")}`);
      expect(log).toContain(`meter home (dsmr): serial device ${pty.device}`);
      expect(log).toContain(`configuration from ${join(dir, "options.json")} (app)`);
      expect(log).not.toContain(MQTT_PASSWORD);
      expect(log).not.toContain(TOKEN);

      bridge.child.kill("SIGTERM");
      expect(await bridge.exit).toBe(0);
      const db = openArchiveReadOnly(join(dir, "meter2mqtt.sqlite"));
      const rows = db.prepare("SELECT count(*) AS n FROM readings WHERE meter_id = 'home'").get() as { n: number };
      db.close();
      expect(rows.n).toBeGreaterThan(0);
    } finally {
      if (bridge.child.exitCode === null) bridge.child.kill("SIGKILL");
    }
  }, 90_000);

  it("exits with the reason, before touching meter or archive, when the Supervisor has no broker", async () => {
    supervisor.answers = [NOT_ENABLED];
    rmSync(join(dir, "meter2mqtt.sqlite"), { force: true });
    const meter = { ...(DEFAULTS.meters as Record<string, unknown>[])[0], port: pty.device };
    const bridge = startBridge({ ...DEFAULTS, meters: [meter] });
    expect(await bridge.exit).toBe(2);
    expect(bridge.output()).toMatch(/install and start the Mosquitto broker app, or set mqtt\.url/);
    expect(bridge.output()).not.toMatch(/\bopen\b/);
    expect(existsSync(join(dir, "meter2mqtt.sqlite"))).toBe(false);
  }, 30_000);
});
