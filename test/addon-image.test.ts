/**
 * The images without a Docker engine: both Dockerfiles checked as text against what the Supervisor's build does
 * (supervisor/apps/build.py: the app's folder is the build context, BUILD_VERSION and BUILD_ARCH are passed,
 * BUILD_FROM only with the retired build.yaml), and the runtime tree they ship (scripts/build-runtime-tree.sh)
 * built here and started the way the app image starts it: s6-overlay's `run` script, options.json and
 * meter2mqtt.yaml, a stand-in Supervisor, a real mosquitto. And backups: the backup_pre step against the bridge's
 * archive writer at 100 readings a second, the files a backup takes copied while writing goes on, restored.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { type Collector, collect, freePort, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";
import { backupExcluded, mqttOk, type StandInSupervisor, startSupervisor } from "./helpers/supervisor.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");
const pkg = JSON.parse(read("package.json")) as {
  version: string;
  files: string[];
  dependencies: Record<string, string>;
};
const addon = parseYaml(read("addon/config.yaml")) as {
  version: string;
  options: Record<string, unknown>;
  backup_pre: string;
  backup_post: string;
  backup_exclude: string[];
};
/** `${NAME}`, as a Dockerfile writes a build argument. */
const buildArg = (name: string): string => `\${${name}}`;
const RUN_SCRIPT = "addon/rootfs/etc/s6-overlay/s6-rc.d/meter2mqtt/run";

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

/** A Dockerfile's stages, continuation lines joined; ARGs before the first FROM in a stage named "". */
function stages(text: string): Stage[] {
  const out: Stage[] = [{ name: "", from: "", lines: [] }];
  for (const line of text.replace(/\\\n\s*/g, " ").split("\n")) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ from: from[1]!, name: from[2] ?? "", lines: [] });
    else if (line.trim() && !line.startsWith("#")) out.at(-1)!.lines.push(line.trim());
  }
  return out;
}

/** Docker's rule for .dockerignore as this project writes it: the last matching line wins, `!` includes again. */
function inContext(path: string, patterns: string[]): boolean {
  let included = true;
  for (const raw of patterns) {
    const negate = raw.startsWith("!");
    const pattern = (negate ? raw.slice(1) : raw).replace(/\/$/, "");
    const matches =
      pattern === "*" ||
      path === pattern ||
      path.startsWith(`${pattern}/`) ||
      (pattern.endsWith("/*") && path.startsWith(pattern.slice(0, -1)));
    if (matches) included = negate;
  }
  return included;
}

const copies = (s: Stage[]) =>
  s
    .flatMap((x) => x.lines)
    .filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l))
    .map((l) => l.split(/\s+/));

describe("the app's Dockerfile (addon/Dockerfile, built by the Supervisor)", () => {
  const text = read("addon/Dockerfile");
  const all = stages(text);

  it("is where the Supervisor looks, with the retired build.yaml gone", () => {
    expect(existsSync(join(ROOT, "addon/Dockerfile"))).toBe(true);
    expect(readdirSync(join(ROOT, "addon")).filter((f) => /^build\.(ya?ml|json)$/.test(f))).toEqual([]);
  });

  it("builds on Home Assistant's current multi-arch base image by default, since no BUILD_FROM is passed", () => {
    const arg = /^ARG BUILD_FROM=(\S+)$/m.exec(text);
    expect(arg?.[1]).toMatch(/^ghcr\.io\/home-assistant\/base:3\.(2[4-9]|[3-9]\d)$/);
    expect(all.filter((s) => s.from).map((s) => s.from)).toEqual([buildArg("BUILD_FROM")]);
    // Labels the Supervisor sets too, here for images built by the release workflow.
    for (const label of [
      'io.hass.type="app"',
      `io.hass.version="${buildArg("BUILD_VERSION")}"`,
      `io.hass.arch="${buildArg("BUILD_ARCH")}"`,
    ])
      expect(text).toContain(label);
    expect(text).not.toMatch(/io\.hass\.type="addon"/);
  });

  it("copies only what the app's folder holds, installs the package of config.yaml's version with the shared recipe", () => {
    // The build context is addon/ alone: every COPY source is a file there (the *.tgz glob may match nothing).
    for (const words of copies(all))
      for (const src of words.slice(1, -1).filter((w) => !w.includes("*")))
        expect(existsSync(join(ROOT, "addon", src)), src).toBe(true);
    const runLine = all.at(-1)!.lines.find((l) => l.startsWith("RUN") && l.includes("install.sh"))!;
    expect(runLine).toContain(`package="meter2mqtt@${buildArg("BUILD_VERSION")}"`);
    expect(runLine).toContain('sh /tmp/meter2mqtt/install.sh "$package" /opt/meter2mqtt');
    // The compiler goes again; node stays.
    expect(runLine).toMatch(/apk add --no-cache nodejs .*apk del \.build-deps/);
    // s6-overlay (the base image's /init) starts the service; a CMD would bypass it.
    expect(text).toMatch(/^COPY rootfs \/$/m);
    expect(all.at(-1)!.lines.some((l) => /^(CMD|ENTRYPOINT|USER)\b/.test(l))).toBe(false);
    expect(addon.version).toBe(pkg.version);
  });

  it("installs s6-overlay's service the way s6-rc expects it: a longrun in the user bundle, run and finish scripts", () => {
    const service = join(ROOT, "addon/rootfs/etc/s6-overlay/s6-rc.d/meter2mqtt");
    expect(readFileSync(join(service, "type"), "utf8").trim()).toBe("longrun");
    expect(existsSync(join(ROOT, "addon/rootfs/etc/s6-overlay/s6-rc.d/user/contents.d/meter2mqtt"))).toBe(true);
    for (const script of ["run", "finish"]) {
      const file = join(service, script);
      expect(readFileSync(file, "utf8")).toMatch(/^#!\/command\/with-contenv sh\n/);
      expect(statSync(file).mode & 0o111, `${script} is executable`).not.toBe(0);
    }
    expect(read(RUN_SCRIPT)).toMatch(/exec node "\$\{METER2MQTT_HOME:-\/opt\/meter2mqtt\}\/bin\/meter2mqtt\.js" run$/m);
    const finish = read("addon/rootfs/etc/s6-overlay/s6-rc.d/meter2mqtt/finish");
    expect(finish).toContain("/run/s6-linux-init-container-results/exitcode");
    expect(finish).toContain("exec /run/s6/basedir/bin/halt");
  });
});

describe("the standalone image (Dockerfile)", () => {
  const text = read("Dockerfile");
  const all = stages(text);
  const ignore = read(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));

  it("packs the checkout and installs it with the app's recipe; the final stage runs as a non-root user", () => {
    expect(all.filter((s) => s.from).map((s) => s.name)).toEqual(["source", "build", "runtime"]);
    const build = all.find((s) => s.name === "build")!.lines.join("\n");
    expect(build).toContain("npm pack --ignore-scripts --pack-destination /tmp");
    expect(build).toContain("sh addon/install.sh /tmp/meter2mqtt-*.tgz /opt/meter2mqtt");
    const runtime = all.at(-1)!;
    expect(runtime.from).toMatch(/^node:\$\{NODE_VERSION\}-alpine$/);
    expect(runtime.lines).toContain("USER node");
    expect(runtime.lines.join("\n")).not.toMatch(/apk add|npm (ci|install)/);
    expect(runtime.lines).toContain("COPY --from=build /opt/meter2mqtt /opt/meter2mqtt");
  });

  it("copies what the package ships and the build needs, all of it let through by .dockerignore", () => {
    const sources = copies(all).flatMap((w) => w.slice(1, -1));
    for (const path of sources) {
      expect(existsSync(join(ROOT, path)), path).toBe(true);
      expect(inContext(path, ignore), `${path} is excluded by .dockerignore`).toBe(true);
    }
    // Each entry of package.json "files" (but dist, compiled in the build) is copied, itself or a folder holding it.
    for (const entry of pkg.files.map((f) => f.replace(/\/$/, "")).filter((f) => f !== "dist"))
      expect(
        sources.some((src) => entry === src || entry.startsWith(`${src}/`)),
        `package.json files: ${entry}`,
      ).toBe(true);
    for (const kept of ["node_modules/mqtt/package.json", ".git/HEAD", "data/demo.sqlite", "test/config.test.ts"])
      expect(inContext(kept, ignore), kept).toBe(false);
  });
});

describe("the release workflow", () => {
  it("publishes the npm package, then builds both images for amd64 and arm64 from it", () => {
    const wf = parseYaml(read(".github/workflows/release.yaml")) as {
      on: { release: { types: string[] } };
      jobs: Record<
        string,
        { needs?: string; steps: { uses?: string; run?: string; with?: Record<string, unknown> }[] }
      >;
    };
    expect(wf.on.release.types).toEqual(["published"]);
    expect(wf.jobs.npm!.steps.some((s) => s.run?.startsWith("npm publish"))).toBe(true);
    expect(wf.jobs.images!.needs).toBe("npm");
    const build = wf.jobs.images!.steps.find((s) => s.uses?.startsWith("docker/build-push-action"))!;
    expect(build.with?.platforms).toBe("linux/amd64,linux/arm64");
    expect(String(build.with?.["build-args"])).toContain("BUILD_VERSION=");
  });
});

describe("the runtime tree (scripts/build-runtime-tree.sh), started as the app image starts it", () => {
  let dir: string;
  let tree: string;
  let built: { stdout: string; stderr: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-tree-"));
    tree = join(dir, "tree");
    built = await run("sh", [join(ROOT, "scripts/build-runtime-tree.sh"), tree], { cwd: dir, maxBuffer: 1 << 24 });
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("holds what the npm package ships, compiled, with the production dependencies only", async () => {
    expect(built.stdout).toContain(`meter2mqtt ${pkg.version} starts from ${tree}`);
    expect(built.stdout).toContain(`runtime tree ready: ${tree}`);
    // The same files as `npm pack` puts in the package the app's image installs.
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: ROOT,
      maxBuffer: 1 << 24,
    });
    const packed = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const file of packed.filter((f) => !f.startsWith("dist/")))
      expect(existsSync(join(tree, file)), file).toBe(true);
    // No TypeScript sources: only what "files" names under src (the web page's static files).
    const shipped = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? shipped(join(d, e.name)) : [join(d, e.name)],
      );
    if (existsSync(join(tree, "src"))) expect(shipped(join(tree, "src")).filter((f) => f.endsWith(".ts"))).toEqual([]);
    expect(existsSync(join(tree, "dist/addon/backup.js"))).toBe(true);
    expect(readdirSync(join(tree, "sql"))).toEqual(readdirSync(join(ROOT, "sql")));
    for (const dep of Object.keys(pkg.dependencies))
      expect(existsSync(join(tree, "node_modules", dep, "package.json")), dep).toBe(true);
    for (const dev of ["typescript", "vitest", "tsx", "@biomejs/biome"])
      expect(existsSync(join(tree, "node_modules", dev)), dev).toBe(false);
  });

  it("is what addon/install.sh, the images' recipe, lays out from a package and starts", async () => {
    // npm itself needs the registry here; a stand-in `npm` on PATH does what a global install into a prefix does
    // (the package with its dependencies under PREFIX/lib/node_modules/meter2mqtt) with this tree, and says how
    // it was called. Everything else is install.sh and smoke-test.sh as the images run them.
    const bin = join(dir, "fake-npm");
    mkdirSync(bin);
    const calls = join(dir, "npm-calls");
    writeFileSync(
      join(bin, "npm"),
      [
        "#!/bin/sh",
        `echo "$@" >> "${calls}"`,
        'while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix=$2; shift; done',
        'mkdir -p "$prefix/lib/node_modules"',
        `cp -a "${tree}" "$prefix/lib/node_modules/meter2mqtt"`,
      ].join("\n"),
      { mode: 0o755 },
    );
    const dest = join(dir, "opt", "meter2mqtt");
    const out = await run("sh", [join(ROOT, "addon/install.sh"), "meter2mqtt@0.1.0", dest], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      maxBuffer: 1 << 24,
    });
    expect(readFileSync(calls, "utf8").trim()).toMatch(
      /^install --global --prefix \/\S+ --no-audit --no-fund --loglevel=error meter2mqtt@0\.1\.0$/,
    );
    expect(out.stdout).toContain(`meter2mqtt ${pkg.version} starts from ${dest}`);
    expect(readdirSync(dest).sort()).toEqual(readdirSync(tree).sort());
    // Usage errors stop before anything is installed.
    await expect(run("sh", [join(ROOT, "addon/install.sh"), "meter2mqtt"])).rejects.toMatchObject({ code: 2 });
  }, 60_000);

  describe("s6's run script with options.json and meter2mqtt.yaml, a stand-in Supervisor and a real mosquitto", () => {
    const TOKEN = "9a3f0c1de2b74e55a6b8c7d9e0f1a2b3";
    const PASSWORD = "Zoh5ahgh7ooPh3ee";
    let broker: Mosquitto;
    let supervisor: StandInSupervisor;
    let pty: PtyPair;
    let sub: Collector;
    let influx: Server;
    let influxUrl: string;
    const influxBodies: string[] = [];
    let webPort: number;

    beforeAll(async () => {
      broker = await startMosquitto({ users: { addons: PASSWORD } });
      supervisor = await startSupervisor(TOKEN);
      supervisor.answers = [mqttOk(broker.port, PASSWORD)];
      pty = await startPtyPair(dir);
      sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#"], { username: "addons", password: PASSWORD });
      influx = createServer((req, res) => {
        let body = "";
        req.on("data", (d: Buffer) => (body += d.toString()));
        req.on("end", () => {
          influxBodies.push(`${req.method} ${req.url}\n${body}`);
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => influx.listen(0, "127.0.0.1", r));
      influxUrl = `http://127.0.0.1:${(influx.address() as { port: number }).port}`;
      webPort = await freePort();
    }, 60_000);
    afterAll(async () => {
      await sub?.close();
      await pty?.stop();
      await supervisor?.close();
      await broker?.stop();
      // The bridges are gone; a keep-alive connection of theirs must not hold the close up.
      influx?.closeAllConnections();
      await new Promise<void>((r) => (influx ? influx.close(() => r()) : r()));
    }, 60_000);

    /** The data folder (/data) and the app's config folder (/config) of one start, and the service started. */
    function startService(name: string, options: Record<string, unknown>, yaml?: Record<string, unknown>) {
      const data = join(dir, name, "data");
      const config = join(dir, name, "config");
      mkdirSync(data, { recursive: true });
      mkdirSync(config, { recursive: true });
      writeFileSync(join(data, "options.json"), JSON.stringify(options));
      if (yaml) writeFileSync(join(config, "meter2mqtt.yaml"), toYaml(yaml));
      let output = "";
      // What s6-supervise does: the run script, with the container's environment (with-contenv).
      const child: ChildProcess = spawn("sh", [join(ROOT, RUN_SCRIPT)], {
        cwd: "/",
        env: {
          PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
          METER2MQTT_HOME: tree,
          METER2MQTT_OPTIONS: join(data, "options.json"),
          METER2MQTT_CONFIG_DIR: config,
          SUPERVISOR_URL: supervisor.url,
          SUPERVISOR_TOKEN: TOKEN,
          METER2MQTT_WEB_PORT: String(webPort),
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
      const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      return { child, data, output: () => output, exit };
    }

    /** Telegrams on the meter's port until the bridge has published what the test waits for. */
    async function feedUntil(check: () => boolean, what: string): Promise<void> {
      const telegrams = simulate(Date.now() - 60_000, 60, 1).map((s) => dsmr5Telegram(s));
      const deadline = Date.now() + 30_000;
      for (let i = 0; !check(); i = (i + 1) % telegrams.length) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await pty.write(telegrams[i]!);
        await new Promise((r) => setTimeout(r, 200));
      }
    }

    const entity = (id: string) => (m: { topic: string; payload: string }) =>
      m.topic.endsWith("/config") && m.payload.includes(`"default_entity_id":"${id}"`);
    const state = (key: string) => (m: { topic: string; payload: string }) =>
      m.topic === "meter2mqtt/home/state" && m.payload.includes(`"${key}"`);

    async function checkStart(
      service: ReturnType<typeof startService>,
      load: string,
      measurement: string,
    ): Promise<string> {
      try {
        await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 30_000);
        await until(() => /\bopen\b/.test(service.output()), 15_000, "the port to be opened");
        await feedUntil(
          () =>
            sub.messages.some(entity(`binary_sensor.load_${load}_recommended`)) &&
            sub.messages.some(state("cost_import_total")) &&
            influxBodies.some((b) => b.includes(`\n${measurement},`)),
          `load ${load}, cost and influx ${measurement}`,
        );
        // What the Supervisor's watchdog asks (config.yaml `watchdog`), on the app's address.
        const health = await fetch(`http://127.0.0.1:${webPort}/health`);
        expect(health.status).toBe(200);
        expect(await health.json()).toMatchObject({ status: "ok", meters: { home: { type: "dsmr" } } });
        // The pre-flight check ran first, one line per part, in the app's log.
        expect(service.output()).toMatch(/^ok {3}MQTT broker: .* accepts the login/m);
        service.child.kill("SIGTERM");
        expect(await service.exit).toBe(0);
        expect(existsSync(join(service.data, "meter2mqtt.sqlite"))).toBe(true);
        return service.output();
      } finally {
        if (service.child.exitCode === null) service.child.kill("SIGKILL");
      }
    }

    it("sets loads, tariffs and influx from options.json", async () => {
      sub.clear();
      influxBodies.length = 0;
      const service = startService("options", {
        ...addon.options,
        meters: [{ id: "home", name: "Home", type: "dsmr", port: pty.device }],
        loads: [{ id: "boiler", meter: "home", power_w: 2000 }],
        tariffs: [{ name: "home", meters: "home", currency: "EUR", import: 0.3, export: 0.05 }],
        influx: { url: influxUrl, measurement: "from_options" },
      });
      const log = await checkStart(service, "boiler", "from_options");
      expect(log).toContain("load advisor: 1 load(s) boiler");
      expect(log).toContain("tariff home: home at 0.3 EUR/kWh");
      expect(log).toContain(`influx: line protocol to ${influxUrl} (victoria)`);
      expect(log).toContain(
        `MQTT: broker mqtt://127.0.0.1:${broker.port} and login (user addons) from the Supervisor's MQTT service`,
      );
      expect(log).not.toContain(PASSWORD);
      expect(log).not.toContain(TOKEN);
    }, 90_000);

    it("sets them from meter2mqtt.yaml in the app's config folder, merged over the options", async () => {
      sub.clear();
      influxBodies.length = 0;
      const influxToken = "yaml-influx-token-7Qx";
      const service = startService(
        "yaml",
        { ...addon.options, meters: [{ id: "home", name: "Home", type: "dsmr", port: pty.device }] },
        {
          loads: [{ id: "pump", meter: "home", power_w: 800, command: { topic: "relays/pump" } }],
          tariffs: {
            tou: {
              meters: ["home"],
              currency: "EUR",
              import: [
                { from: "07:00", to: "23:00", days: ["mon", "tue", "wed", "thu", "fri"], price: 0.31 },
                { price: 0.22 },
              ],
            },
          },
          influx: { url: influxUrl, measurement: "from_yaml", token: influxToken },
          mqtt: { min_interval: { power: 0 } },
        },
      );
      const log = await checkStart(service, "pump", "from_yaml");
      expect(log).toMatch(/options from .*options\.json, merged with .*\/config\/meter2mqtt\.yaml/);
      expect(log).toContain("meter2mqtt.yaml: loads, tariffs, influx, mqtt");
      expect(log).not.toContain(influxToken);
      expect(log).not.toContain(PASSWORD);
    }, 90_000);

    it("stops with the key path of a mistake in meter2mqtt.yaml, before touching the meter", async () => {
      const service = startService(
        "bad-yaml",
        { ...addon.options, meters: [{ id: "home", type: "dsmr", port: pty.device }] },
        { tariffs: { tou: { meters: ["home"], currency: "EUR", import: [{ from: "07:10", to: "23:00", price: 1 }] } } },
      );
      expect(await service.exit).toBe(2);
      expect(service.output()).toMatch(
        /\/meter2mqtt\.yaml: tariffs\.tou\.import\[0\]\.from: expected a local time "HH:MM" on a quarter hour/,
      );
      expect(service.output()).not.toMatch(/\bopen\b/);
    }, 30_000);
  });

  describe("backups: backup_pre while the archive is written at 100 readings/s, then restored", () => {
    it("restores a consistent archive with every reading from before the backup began", async () => {
      const data = join(dir, "backup", "data");
      mkdirSync(data, { recursive: true });
      const live = join(data, "meter2mqtt.sqlite");
      let sent = "";
      const writer = spawn(
        process.execPath,
        ["--import", "tsx", join(ROOT, "test/helpers/archive-writer.ts"), live, "100"],
        { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
      );
      writer.stdout!.on("data", (d: Buffer) => (sent += d.toString()));
      const writerExit = new Promise<number | null>((r) => writer.once("exit", (c) => r(c)));
      const readings = () =>
        sent
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split(" ").map(Number) as [number, number]);
      // The Supervisor runs config.yaml's command inside the running app (docker exec); here against the tree.
      const command = (step: string) => {
        const [bin, script, arg] = step.replace("/opt/meter2mqtt", tree).split(" ");
        expect(bin).toBe("node");
        return run(process.execPath, [script!, arg!], { env: { ...process.env, METER2MQTT_DATA: data } });
      };
      try {
        await until(() => readings().length >= 300 && existsSync(live), 30_000, "the first readings");
        const began = Date.now();
        const pre = await command(addon.backup_pre);
        const preMs = Date.now() - began;
        expect(pre.stdout).toMatch(/backup: consistent copy of the archive written \(\d+ pages, \d+ bytes, \d+ ms\)/);

        // The files the Supervisor's tar takes from /data, copied while the writer goes on writing.
        const backup = join(dir, "backup", "taken");
        mkdirSync(backup);
        const taken: string[] = [];
        for (const f of readdirSync(data)) {
          if (backupExcluded(`/mnt/data/supervisor/addons/data/local_meter2mqtt/${f}`, addon.backup_exclude)) continue;
          copyFileSync(join(data, f), join(backup, f));
          taken.push(f);
        }
        expect(taken.sort()).toEqual(["meter2mqtt.backup.sqlite"]);
        await command(addon.backup_post);
        expect(existsSync(join(data, "meter2mqtt.backup.sqlite"))).toBe(false);
        const writtenDuring = readings().filter(([, t]) => t >= began).length;
        expect(writtenDuring, "the writer kept writing during the backup").toBeGreaterThan(100);

        // Restored: the Supervisor empties /data and unpacks the backup; the app's start-up puts the copy in place.
        const restored = join(dir, "backup", "restored");
        mkdirSync(restored);
        for (const f of taken) copyFileSync(join(backup, f), join(restored, f));
        const { restoreArchiveCopy } = await import("../src/addon/backup.js");
        expect(restoreArchiveCopy(restored)).toBe("restored");
        expect(readdirSync(restored)).toEqual(["meter2mqtt.sqlite"]);

        const db = new Database(join(restored, "meter2mqtt.sqlite"), { readonly: true });
        try {
          expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
          const stored = new Set(
            (
              db.prepare("SELECT power_import_w AS n FROM readings WHERE meter_id = 'home'").all() as { n: number }[]
            ).map((r) => r.n),
          );
          const before = readings().filter(([, t]) => t < began);
          const missing = before.filter(([n]) => !stored.has(n)).map(([n]) => n);
          expect(before.length).toBeGreaterThanOrEqual(250);
          expect(missing, `of ${before.length} readings before the backup began`).toEqual([]);
          console.log(
            `backup: ${before.length} readings before the backup began, all restored; backup_pre took ${preMs} ms ` +
              `while ${writtenDuring} more were written; restored archive ${stored.size} readings`,
          );
        } finally {
          db.close();
        }
      } finally {
        writer.kill("SIGTERM");
        expect(await writerExit).toBe(0);
      }
    }, 90_000);
  });
});
