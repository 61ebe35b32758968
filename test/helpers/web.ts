/**
 * A bridge with its page for the web tests: an embedded broker (aedes, as the demo has), a DSMR meter on
 * tcp:// fed by the test (a ser2net-like server), a Smart Meter Texas meter on an empty folder, a fixture archive with
 * three days of hourly registers and a month of intervals (complete, estimated, missing and revised days), a flat
 * tariff and a load.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";
import Database from "better-sqlite3";
import { App } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { Archive } from "../../src/outputs/archive/index.js";
import { dsmr5Telegram, type MeterState } from "../../src/sources/dsmr/build.js";
import { freePort } from "./mosquitto.js";

const DAY_MS = 86_400_000;
const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
/**
 * The fixture archive's days (UTC; 12 to 10 days ago, so the page's default month of history shows them), registers
 * read every hour from 10:00 to 20:00; and the month of intervals: the one before this one.
 */
export const FIXTURE_DAYS = [12, 11, 10].map((n) => new Date(today - n * DAY_MS).toISOString().slice(0, 10));
export const INTERVAL_MONTH = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() - 1, 1))
  .toISOString()
  .slice(0, 7);

export interface WebBridge {
  app: App;
  url: string;
  dir: string;
  broker: Aedes;
  /** Writes bytes to the DSMR meter's TCP line. */
  send(bytes: Buffer): void;
  /** A valid DSMR 5 telegram with this net import power (W). */
  telegram(powerW: number): Buffer;
  close(): Promise<void>;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
  });
}

export async function makeFixtureArchive(path: string): Promise<void> {
  const archive = new Archive({ enabled: true, path, interval: 0 });
  await archive.start();
  archive.upsertMeter({ id: "home", name: "Home", type: "dsmr" });
  archive.upsertMeter({ id: "texas", name: "Texas", type: "smt" });
  // Registers that end just below those of the telegrams the tests send (1234.567, 2345.678, 802.467 kWh).
  let t1 = 1168;
  let t2 = 2312;
  let exp = 800.9;
  for (const [d, day] of FIXTURE_DAYS.entries())
    for (let hour = 10; hour <= 20; hour++) {
      // Day n uses (n + 1) kWh an hour on tariff 1 and half that on tariff 2; exports 0.5 kWh an hour at noon.
      t1 += d + 1;
      t2 += (d + 1) / 2;
      if (hour === 12) exp += 0.5;
      archive.add({
        meterId: "home",
        time: Date.parse(`${day}T${String(hour).padStart(2, "0")}:30:00Z`),
        values: {
          energy_import_kwh: t1 + t2,
          energy_import_tariff1_kwh: t1,
          energy_import_tariff2_kwh: t2,
          energy_export_kwh: exp,
          power_net_w: 500,
        },
      });
    }
  await archive.stop();
  // A month of Smart Meter Texas intervals: the 1st to the 10th whole and actual, the 3rd with an estimated one, the
  // 4th with a missing one, the 5th revised, the 11th only half there.
  const db = new Database(path);
  const put = db.prepare(
    `INSERT INTO interval_revisions (meter_id, start, direction, revised_at, received_at, end, day, energy_kwh, quality, imported_at)
     VALUES ('texas', ?, 'import', ?, ?, ?, ?, ?, ?, ?)`,
  );
  db.transaction(() => {
    for (let d = 1; d <= 11; d++) {
      const day = `${INTERVAL_MONTH}-${String(d).padStart(2, "0")}`;
      const base = Date.parse(`${day}T06:00:00Z`);
      const count = d === 11 ? 48 : 96;
      for (let q = 0; q < count; q++) {
        const start = new Date(base + q * 900_000).toISOString();
        const end = new Date(base + (q + 1) * 900_000).toISOString();
        const quality = d === 3 && q === 10 ? "estimated" : d === 4 && q === 20 ? "missing" : "actual";
        const received = `${day}T23:00:00.000Z`;
        put.run(start, received, received, end, day, quality === "missing" ? null : 0.25, quality, received);
        if (d === 5 && q < 4) {
          const later = `${INTERVAL_MONTH}-06T23:00:00.000Z`;
          put.run(start, later, later, end, day, 0.3, "actual", later);
        }
      }
    }
  })();
  db.close();
}

export async function startWebBridge(
  opts: { web?: Record<string, unknown>; mqtt?: Record<string, unknown>; archive?: boolean } = {},
): Promise<WebBridge> {
  const dir = mkdtempSync(join(tmpdir(), "m2m-web-"));
  const dbPath = join(dir, "archive.sqlite");
  if (opts.archive !== false) await makeFixtureArchive(dbPath);
  const folder = join(dir, "smt");
  mkdirSync(folder);

  const broker = await Aedes.createBroker();
  const mqttServer = createServer(broker.handle);
  const mqttPort = await listen(mqttServer);

  const sockets = new Set<Socket>();
  const line = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => sockets.delete(s));
  });
  const linePort = await listen(line);
  const webPort = await freePort();

  const config = parseConfig({
    mqtt: {
      url: `mqtt://127.0.0.1:${mqttPort}`,
      min_interval: { energy: 0, power: 0, demand: 0, voltage: 0, current: 0 },
      ...opts.mqtt,
    },
    archive: { path: dbPath, interval: 0 },
    meters: [
      { id: "home", name: "Home", type: "dsmr", port: `tcp://127.0.0.1:${linePort}`, timeout: 0 },
      { id: "texas", name: "Texas", type: "smt", folder },
    ],
    tariffs: { flat: { meters: ["home"], currency: "EUR", import: 0.25 } },
    loads: [{ id: "boiler", name: "Boiler", meter: "home", power_w: 2000, on_delay: 5, off_delay: 5 }],
    web: { port: webPort, ...opts.web },
  });
  const app = new App(config, { mqttConnectTimeoutMs: 2000 });
  await app.start();
  // The meter's line is connected before the test sends anything.
  const until = Date.now() + 10_000;
  while (sockets.size === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  if (sockets.size === 0) throw new Error("the bridge did not connect to the meter's line");

  let n = 0;
  return {
    app,
    url: `http://127.0.0.1:${webPort}/`,
    dir,
    broker,
    send: (bytes) => {
      for (const s of sockets) s.write(bytes);
    },
    telegram: (powerW) => {
      const s: MeterState = {
        time: Date.now() - 1000 + n++,
        importT1: 1234.567 + n / 1000,
        importT2: 2345.678,
        exportT1: 345.678,
        exportT2: 456.789,
        tariff: 2,
        phaseImportW: [powerW, 0, 0],
        phaseExportW: [0, 0, 0],
        voltage: [230.1, 231.2, 229.9],
        gasM3: 4321.123,
        gasAt: Date.now() - 60_000,
      };
      return dsmr5Telegram(s);
    },
    close: async () => {
      await app.stop();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => line.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => mqttServer.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The same telegram with one digit of a register changed: its CRC no longer matches. */
export function corrupt(telegram: Buffer): Buffer {
  const text = telegram.toString("latin1");
  const at = text.indexOf("1-0:1.8.1(") + "1-0:1.8.1(".length;
  const digit = text[at] === "9" ? "8" : "9";
  return Buffer.from(text.slice(0, at) + digit + text.slice(at + 1), "latin1");
}
