/**
 * End to end with real parts: the bridge as its own process (`meter2mqtt run`) reads a Dovecot mailbox and a watched
 * folder, publishes to mosquitto, archives to SQLite and sends HA long-term statistics to the enforcing stand-in;
 * then `meter2mqtt import` of downloaded files as a user runs it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { type CliProcess, spawnCli } from "./helpers/bridge.js";
import { type Dovecot, startDovecot } from "./helpers/dovecot.js";
import { type FakeHa, startFakeHa } from "./helpers/fake-ha.js";
import { type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { csvAttachment, expectedTotals, type Row, SMT_SENDER, smtCsv, smtDay, smtEmail } from "./helpers/smt.js";

/** Running sums per hour a fresh import of `days` gives, kWh rounded as HA would show them. */
function sums(days: { day: string; rows: Row[] }[], dir: "import" | "export") {
  const { hourly } = expectedTotals(days);
  let sum = 0;
  return [...hourly.keys()].sort().map((h) => {
    sum += hourly.get(h)![dir];
    return { start: Date.parse(h), sum: sum / 1000 };
  });
}
const haSums = (ha: FakeHa, id: string) =>
  ha.rows(id).map((r) => ({ start: r.start, sum: Math.round(r.sum! * 1e6) / 1e6 }));

describe("Smart Meter Texas end to end", () => {
  let dir: string;
  let broker: Mosquitto;
  let dovecot: Dovecot;
  let ha: FakeHa;
  let sub: Collector;
  let bridge: CliProcess;
  const d1 = {
    day: "2025-06-14",
    rows: smtDay({ day: "2025-06-14", channels: ["Consumption", "Surplus Generation"] }),
  };
  const d2 = {
    day: "2025-06-15",
    rows: smtDay({ day: "2025-06-15", channels: ["Consumption", "Surplus Generation"] }),
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-smt-e2e-"));
    mkdirSync(join(dir, "drop"));
    [broker, dovecot, ha] = await Promise.all([startMosquitto(), startDovecot(), startFakeHa()]);
    sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#"]);
    for (const d of [d1, d2])
      await dovecot.append(
        smtEmail({ date: new Date(`${d.day}T12:00:00Z`), attachments: [csvAttachment(smtCsv(d.rows))] }),
      );
    const config = join(dir, "config.yaml");
    writeFileSync(
      config,
      [
        "mqtt:",
        `  url: ${broker.url}`,
        "archive:",
        `  path: ${join(dir, "archive.sqlite")}`,
        "homeassistant:",
        "  statistics: true",
        `  url: ${ha.url}`,
        `  token: ${ha.token}`,
        "meters:",
        "  - id: texas",
        "    name: Texas house",
        "    type: smt",
        `    imap: {host: 127.0.0.1, port: ${dovecot.port}, tls: false, user: ${dovecot.user}, password: ${dovecot.password}, sender: ${SMT_SENDER}}`,
        `    folder: ${join(dir, "drop")}`,
        "",
      ].join("\n"),
    );
    bridge = spawnCli(["run", "--config", config]);
  }, 60_000);

  afterAll(async () => {
    if (process.env.E2E_LOG) console.log(bridge?.output());
    if (bridge && bridge.child.exitCode === null) bridge.child.kill("SIGKILL");
    await sub?.close();
    await Promise.all([broker?.stop(), dovecot?.stop(), ha?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes the latest full day, the newest interval and the import status, with discovery HA accepts", async () => {
    const { daily } = expectedTotals([d2]);
    // The day's energy may trail the day's date by MQTT's energy interval (flood control): wait for both.
    const importKwh = `"energy_import_last_day_kwh":${daily.get("2025-06-15")!.import / 1000}`;
    const state = await sub.waitFor(
      (m) =>
        m.topic === "meter2mqtt/texas/state" &&
        m.payload.includes('"last_day":"2025-06-15"') &&
        m.payload.includes(importKwh),
      20_000,
    );
    await until(
      () =>
        sub.messages.some((m) => m.topic === "meter2mqtt/texas/state" && m.payload.includes('"import_status":"ok"')),
      10_000,
      "status ok",
    );
    expect(JSON.parse(state.payload)).toMatchObject({
      last_day: "2025-06-15",
      energy_import_last_day_kwh: daily.get("2025-06-15")!.import / 1000,
      energy_export_last_day_kwh: daily.get("2025-06-15")!.export / 1000,
      interval_end_at: "2025-06-16T05:00:00.000Z",
    });
    const config = async (q: string) =>
      JSON.parse(
        (await sub.waitFor((m) => m.topic === `homeassistant/sensor/meter2mqtt_texas/${q}/config`, 10_000)).payload,
      );
    const energy = await config("energy_import_last_day_kwh");
    expect(energy).toMatchObject({
      unit_of_measurement: "kWh",
      device: { name: "Texas house", manufacturer: "Smart Meter Texas" },
    });
    // Not offered to the Energy dashboard: the statistics carry the energy at the right hours.
    expect(energy.state_class).toBeUndefined();
    expect(energy.device_class).toBeUndefined();
    expect(await config("interval_end_at")).toMatchObject({ device_class: "timestamp", entity_category: "diagnostic" });
    expect(await config("import_status")).toMatchObject({ entity_category: "diagnostic" });
    expect(await config("last_day")).toMatchObject({ device_class: "date" });
  });

  it("puts the energy into HA's statistics at the hours it was used", async () => {
    await until(() => ha.rows("meter2mqtt:texas_energy_export").length === 48, 15_000, "48 export hours in HA");
    expect(haSums(ha, "meter2mqtt:texas_energy_import")).toEqual(sums([d1, d2], "import"));
    expect(haSums(ha, "meter2mqtt:texas_energy_export")).toEqual(sums([d1, d2], "export"));
    expect(ha.errors).toEqual([]);
  });

  it("a revised day dropped in the watched folder is archived and re-imported into HA with corrected sums", async () => {
    const revised = {
      day: "2025-06-14",
      rows: smtDay({
        day: "2025-06-14",
        channels: ["Consumption", "Surplus Generation"],
        revision: "06/17/2025 08:00:00",
        override: (c, i) => (c === "Consumption" && i === 50 ? "4.444" : undefined),
      }),
    };
    writeFileSync(join(dir, "drop", "IntervalData.csv"), smtCsv(revised.rows));
    const want = sums([revised, d2], "import");
    await until(
      () => JSON.stringify(haSums(ha, "meter2mqtt:texas_energy_import")) === JSON.stringify(want),
      20_000,
      "the revised sums in HA",
    );
    const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
    expect(
      db
        .prepare(
          "SELECT revisions FROM intervals_current WHERE start = '2025-06-14T17:30:00.000Z' AND direction = 'import'",
        )
        .get(),
    ).toEqual({
      revisions: 2,
    });
    db.close();
  });

  it("stops on SIGTERM and never printed a secret", async () => {
    bridge.child.kill("SIGTERM");
    expect(await bridge.exit).toBe(0);
    const log = bridge.output();
    expect(log).toContain("meter2mqtt");
    expect(log).not.toContain(dovecot.password);
    expect(log).not.toContain(ha.token);
  });

  it("`meter2mqtt import` reads a folder of downloads, reports a bad row by file and line, and updates HA", async () => {
    const files = join(dir, "downloads");
    mkdirSync(files);
    const days = ["2025-07-01", "2025-07-02", "2025-07-03"].map((day) => ({ day, rows: smtDay({ day }) }));
    days.forEach((d, i) => {
      const lines = smtCsv(d.rows).split("\n");
      if (i === 1) lines[5] = lines[5]!.replace(",A,", ",Q,");
      writeFileSync(join(files, `IntervalData_${d.day}.csv`), lines.join("\n"));
    });
    writeFileSync(join(files, "notes.txt"), "not a csv");
    const config = join(dir, "import.yaml");
    writeFileSync(
      config,
      [
        `archive: {path: ${join(dir, "import.sqlite")}}`,
        `homeassistant: {statistics: true, url: "${ha.url}", token: ${ha.token}}`,
        `meters: [{id: downloads, type: smt, folder: ${files}}]`,
        "",
      ].join("\n"),
    );
    const run = spawnCli(["import", "--config", config, files]);
    expect(await run.exit).toBe(0);
    const out = run.output();
    expect(out).toContain(
      `rejected ${join(files, "IntervalData_2025-07-02.csv")}:6: ESTIMATED_ACTUAL "Q" is neither A nor E`,
    );
    expect(out).toContain("[3/3]");
    expect(out).toContain("imported 3 file(s) for downloads: 287 intervals, 287 new revision(s), 1 row(s) rejected");
    expect(out).toContain("statistics meter2mqtt:downloads_energy_import: 72 hour(s) sent");
    const again = spawnCli(["import", "--config", config, files]);
    expect(await again.exit).toBe(0);
    expect(again.output()).toContain("287 intervals, 0 new revision(s)");
    expect(again.output()).toContain("statistics meter2mqtt:downloads_energy_import: 0 hour(s) sent");
  });
});
