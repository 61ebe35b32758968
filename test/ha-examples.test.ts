/**
 * ha-config-examples/: every YAML parses, and every entity id it names is one the bridge really publishes.
 *
 * Each folder's meter2mqtt.yaml is run through the real pipeline (sources, MQTT output, discovery) on a bundled
 * capture of that meter family, against an in-process broker; the entity ids come from the discovery payloads
 * it publishes, so an example cannot name a sensor that a renamed quantity or a changed meter id no longer makes.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { Aedes } from "aedes";
import { connectAsync } from "mqtt";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { App } from "../src/app.js";
import { parseConfig } from "../src/config/load.js";
import type { SensorDiscovery } from "../src/outputs/mqtt/discovery.js";

const ROOT = join(import.meta.dirname, "..");
const EXAMPLES = join(ROOT, "ha-config-examples");
const BRIDGE = "meter2mqtt.yaml";

/** A capture of the meter family each folder is about; a new folder needs one. */
const CAPTURES: Record<string, string> = {
  "dsmr-nl": "fixtures/demo/nl-dsmr5.txt",
  "dsmr-be": "fixtures/demo/be-fluvius.txt",
};

type Obj = Record<string, unknown>;
// A folder per example bridge config; blueprints/ holds HA blueprints, checked by test/blueprints.test.ts.
const folders = readdirSync(EXAMPLES, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(EXAMPLES, d.name, "meter2mqtt.yaml")))
  .map((d) => d.name)
  .sort();
const yamlFiles = (folder: string): string[] =>
  readdirSync(join(EXAMPLES, folder))
    .filter((f) => f.endsWith(".yaml") && f !== BRIDGE)
    .sort();

/** Runs the folder's bridge config on its capture and returns the discovery payloads by entity id. */
async function published(folder: string): Promise<Map<string, SensorDiscovery>> {
  const raw = parseYaml(readFileSync(join(EXAMPLES, folder, BRIDGE), "utf8")) as Obj;
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
  const watcher = await connectAsync(url);
  const entities = new Map<string, SensorDiscovery>();
  let offline!: () => void;
  const wentOffline = new Promise<void>((r) => (offline = r));
  watcher.on("message", (topic, payload) => {
    if (topic.endsWith("/config")) {
      const d = JSON.parse(payload.toString()) as SensorDiscovery;
      entities.set(d.default_entity_id, d);
    } else if (topic.endsWith("/bridge/state") && payload.toString() === "offline") offline();
  });
  await watcher.subscribeAsync(["homeassistant/#", "+/bridge/state"]);
  const config = parseConfig({
    ...raw,
    log_level: "error",
    mqtt: { ...(raw.mqtt as Obj), url },
    archive: { enabled: false },
    meters: (raw.meters as Obj[]).map((m) => ({
      ...m,
      port: `file:${join(ROOT, CAPTURES[folder]!)}`,
      replay_interval_ms: 0,
    })),
  });
  const app = new App(config);
  await app.start();
  await Promise.all(app.sources.map((s) => s.finished));
  await app.stop();
  // `offline` is the bridge's last publication, so every discovery config has arrived once it has.
  await wentOffline;
  await watcher.endAsync();
  await new Promise<void>((r) => broker.close(() => r()));
  await new Promise<void>((r) => server.close(() => r()));
  return entities;
}

/** Entities the examples create themselves: utility meters, their tariff sensors and tariff selects. */
function created(doc: Obj): string[] {
  const meters = (doc.utility_meter ?? {}) as Record<string, { tariffs?: string[] }>;
  return Object.entries(meters).flatMap(([key, m]) =>
    m.tariffs ? [`select.${key}`, ...m.tariffs.map((t) => `sensor.${key}_${t}`)] : [`sensor.${key}`],
  );
}

/** Entity ids named anywhere in the text, comments included; `action:` lines name actions, not entities. */
function named(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (/^\s*-?\s*(action|service):/.test(line)) continue;
    for (const m of line.matchAll(/\b(?:sensor|select|binary_sensor)\.[a-z0-9_]+/g))
      if (line[m.index + m[0].length] !== "<") out.push(m[0]);
  }
  return out;
}

describe("ha-config-examples", () => {
  const entities = new Map<string, Map<string, SensorDiscovery>>();

  beforeAll(async () => {
    for (const folder of folders) if (CAPTURES[folder]) entities.set(folder, await published(folder));
  }, 60_000);

  it("has a bridge config, a capture and at least one example in each folder", () => {
    expect(folders.length).toBeGreaterThan(0);
    for (const folder of folders) {
      expect(CAPTURES[folder], `a capture for ${folder}`).toBeDefined();
      expect(readdirSync(join(EXAMPLES, folder)), folder).toContain(BRIDGE);
      expect(yamlFiles(folder).length, folder).toBeGreaterThan(0);
      expect(entities.get(folder)!.size, `${folder} publishes`).toBeGreaterThan(10);
    }
  });

  for (const folder of folders) {
    describe(folder, () => {
      const docs = new Map(
        yamlFiles(folder).map((f) => {
          const text = readFileSync(join(EXAMPLES, folder, f), "utf8");
          return [f, { text, doc: parseYaml(text) as Obj }] as const;
        }),
      );

      it("names only entities the bridge publishes (enabled by default) or that the examples create", () => {
        const bridge = entities.get(folder)!;
        const own = [...docs.values()].flatMap(({ doc }) => created(doc));
        expect(own.length, "utility meters defined twice would clash when loaded together").toBe(new Set(own).size);
        const problems: string[] = [];
        for (const [file, { text }] of docs) {
          const ids = named(text);
          expect(ids.length, `${file} names entities`).toBeGreaterThan(0);
          for (const id of new Set(ids)) {
            const d = bridge.get(id);
            if (d?.enabled_by_default === false) problems.push(`${file}: ${id} is disabled until the user enables it`);
            else if (!d && !own.includes(id)) problems.push(`${file}: ${id} is not published for ${BRIDGE}`);
          }
        }
        expect(problems).toEqual([]);
      });

      it("feeds utility meters from counters, and automations in the current syntax with unique ids", () => {
        const bridge = entities.get(folder)!;
        const ids: string[] = [];
        for (const [file, { doc }] of docs) {
          for (const [key, m] of Object.entries((doc.utility_meter ?? {}) as Record<string, { source: string }>))
            expect(bridge.get(m.source)?.state_class, `${file}: ${key}`).toMatch(/^total/);
          for (const a of (doc.automation ?? []) as Obj[]) {
            expect(a, file).toMatchObject({ id: expect.any(String), alias: expect.any(String) });
            expect(Array.isArray(a.triggers) && Array.isArray(a.actions), `${file}: ${String(a.id)}`).toBe(true);
            ids.push(a.id as string);
          }
        }
        expect(ids.length).toBe(new Set(ids).size);
      });

      const dashboard = docs.get("energy-dashboard.yaml");
      it.runIf(dashboard)("puts in the Energy dashboard only sensors of the kind each field takes", () => {
        const bridge = entities.get(folder)!;
        const doc = dashboard!.doc;
        const grid = (doc.electricity_grid ?? {}) as Obj;
        const fields: [string, unknown, string][] = [
          ["grid_consumption", grid.grid_consumption, "energy"],
          ["return_to_grid", grid.return_to_grid, "energy"],
          ["grid_power", grid.grid_power, "power"],
          ["gas_consumption", doc.gas_consumption, "gas"],
          ["water_consumption", doc.water_consumption, "water"],
        ];
        expect(Object.keys(doc).filter((k) => !fields.some(([f]) => f === k) && k !== "electricity_grid")).toEqual([]);
        expect(grid.grid_consumption).toBeDefined();
        for (const [field, value, deviceClass] of fields) {
          for (const id of value === undefined ? [] : ([value].flat() as string[])) {
            const d = bridge.get(id);
            expect(d?.device_class, `${field}: ${id}`).toBe(deviceClass);
            if (deviceClass !== "power") expect(d?.state_class, `${field}: ${id}`).toMatch(/^total/);
          }
        }
        // The sum and its tariffs together would count the same energy twice.
        const consumption = [grid.grid_consumption].flat() as string[];
        expect(consumption.some((id) => /_energy_import_kwh$/.test(id)) && consumption.length > 1).toBe(false);
      });
    });
  }
});
