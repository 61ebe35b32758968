import { existsSync, mkdirSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Aedes } from "aedes";
import { connect } from "mqtt";
import { App } from "./app.js";
import { parseConfig } from "./config/load.js";
import { openArchiveReadOnly } from "./outputs/archive/index.js";
import { createLogger } from "./util/log.js";

const log = createLogger("demo");

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the package root (package.json)");
    dir = up;
  }
  return dir;
}

async function listen(server: Server, port: number): Promise<number> {
  return new Promise((res, rej) => {
    server.once("error", rej);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", rej);
      res((server.address() as { port: number }).port);
    });
  });
}

const out = (line: string): boolean => process.stdout.write(`${line}\n`);

/**
 * The demo: two bundled captures (a Dutch DSMR 5 meter and a Belgian Fluvius meter, made by
 * scripts/make-demo-captures.ts) replayed through the real pipeline into an embedded broker and an
 * archive under ./data, printing what gets published.
 */
export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      interval: { type: "string", default: "20" },
      port: { type: "string" },
      quiet: { type: "boolean", default: false },
      /** Serve the bridge's page (and replay the captures in a loop) until Ctrl-C. */
      web: { type: "boolean", default: false },
      "web-port": { type: "string", default: "8099" },
    },
    strict: true,
  });
  // With the page, a telegram a second as a meter sends them, over and over, so the live view moves.
  const interval = values.web && !args.some((a) => a.startsWith("--interval")) ? 1000 : Number(values.interval);
  const root = packageRoot();
  const dataDir = resolve("data");
  mkdirSync(dataDir, { recursive: true });
  const dbPath = join(dataDir, "demo.sqlite");
  for (const suffix of ["", "-wal", "-shm"]) rmSync(dbPath + suffix, { force: true });

  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  let port: number;
  try {
    port = await listen(server, values.port ? Number(values.port) : 1883);
  } catch {
    port = await listen(server, 0);
  }
  const url = `mqtt://127.0.0.1:${port}`;
  let webPort: number | undefined;
  if (values.web) {
    // The port asked for when it is free, else any.
    const probe = createServer();
    webPort = await listen(probe, Number(values["web-port"])).catch(() => listen(probe, 0));
    await new Promise<void>((r) => probe.close(() => r()));
  }
  out(`Embedded MQTT broker on ${url}  (watch it: mosquitto_sub -h 127.0.0.1 -p ${port} -t '#' -v)`);

  const config = parseConfig({
    mqtt: {
      url,
      base_topic: "meter2mqtt",
      // The captures are replayed far faster than real time: publish every change so the demo shows them.
      min_interval: { energy: 0, power: 0, demand: 0, voltage: 0, current: 0 },
    },
    archive: { path: dbPath, interval: 0 },
    meters: [
      {
        id: "home_nl",
        name: "Home (NL)",
        type: "dsmr",
        port: `file:${join(root, "fixtures/demo/nl-dsmr5.txt")}`,
        replay_interval_ms: interval,
        replay_loop: values.web,
      },
      {
        id: "home_be",
        name: "Home (BE)",
        type: "dsmr",
        port: `file:${join(root, "fixtures/demo/be-fluvius.txt")}`,
        timezone: "Europe/Brussels",
        replay_interval_ms: interval,
        replay_loop: values.web,
      },
    ],
    ...(webPort ? { web: { port: webPort } } : {}),
  });

  const watcher = connect(url, { clientId: "meter2mqtt-demo-watcher" });
  const stateCount = new Map<string, number>();
  let discovery = 0;
  let shownFullDiscovery = false;
  watcher.on("message", (topic, payload) => {
    const text = payload.toString();
    if (topic.endsWith("/config")) discovery++;
    else if (topic.endsWith("/state") && !topic.endsWith("bridge/state"))
      stateCount.set(topic, (stateCount.get(topic) ?? 0) + 1);
    if (values.quiet) return;
    if (topic.endsWith("/config")) {
      if (!shownFullDiscovery) {
        shownFullDiscovery = true;
        out(`\n${topic}\n${JSON.stringify(JSON.parse(text), null, 2)}\n`);
        return;
      }
      const c = JSON.parse(text) as Record<string, unknown>;
      const what = [c.device_class, c.state_class, c.unit_of_measurement, c.entity_category].filter(Boolean).join(", ");
      out(`${topic}  (${what})`);
    } else if (topic.endsWith("/state") && !topic.endsWith("bridge/state")) {
      const n = stateCount.get(topic) ?? 0;
      if (n === 1 || n % 60 === 0) out(`${topic}  ${text}`);
    } else out(`${topic}  ${text}`);
  });
  await new Promise<void>((res) => watcher.subscribe(["meter2mqtt/#", "homeassistant/#"], () => res()));

  // With the page the demo runs until Ctrl-C (or SIGTERM), also one that comes while it starts.
  const interrupted = webPort
    ? new Promise<void>((r) => {
        process.once("SIGINT", () => r());
        process.once("SIGTERM", () => r());
      })
    : undefined;
  const app = new App(config);
  await app.start();
  if (interrupted) {
    out(`\nThe bridge's page: http://127.0.0.1:${webPort}/  (Ctrl-C to stop)\n`);
    await interrupted;
  } else await Promise.all(app.sources.map((s) => s.finished));
  await new Promise((r) => setTimeout(r, 300));
  await app.stop();
  await new Promise((r) => setTimeout(r, 100));

  out("\nPublished:");
  out(`  ${discovery} discovery configs (retained) under homeassistant/sensor/…`);
  for (const [topic, n] of stateCount) out(`  ${n} state messages on ${topic}`);
  const db = openArchiveReadOnly(dbPath);
  const rows = db
    .prepare(
      "SELECT meter_id, hour, round(import_kwh, 3) AS import_kwh, round(export_kwh, 3) AS export_kwh, round(net_kwh, 3) AS net_kwh FROM energy_hourly ORDER BY meter_id, hour",
    )
    .all() as Record<string, unknown>[];
  const gas = db
    .prepare("SELECT meter_id, hour, round(gas_m3, 3) AS gas_m3 FROM gas_hourly ORDER BY meter_id, hour")
    .all() as Record<string, unknown>[];
  const counts = db.prepare("SELECT meter_id, count(*) AS n FROM readings GROUP BY meter_id").all() as {
    meter_id: string;
    n: number;
  }[];
  db.close();
  out(`\nArchive ${dbPath}:`);
  for (const c of counts) out(`  ${c.meter_id}: ${c.n} readings`);
  out("  energy_hourly (view):");
  for (const r of rows)
    out(`    ${r.meter_id}  ${r.hour}  import ${r.import_kwh} kWh  export ${r.export_kwh} kWh  net ${r.net_kwh} kWh`);
  out("  gas_hourly (view):");
  for (const r of gas) out(`    ${r.meter_id}  ${r.hour}  ${r.gas_m3} m³`);
  out(`\nQuery it yourself: sqlite3 ${dbPath} 'SELECT * FROM energy_daily'`);

  watcher.end(true);
  await new Promise<void>((r) => broker.close(() => r()));
  await new Promise<void>((r) => server.close(() => r()));
  log.debug("demo finished");
  return 0;
}
