/**
 * SmartHub end to end with real parts, the CLI as its own process each time: `meter2mqtt run` against the local
 * portal (a two-factor account with a NET meter and COST) publishing to mosquitto and sending HA statistics to the
 * enforcing stand-in; then `meter2mqtt backfill` of a year (eight 45-day windows) killed halfway with SIGKILL and
 * run again: it goes on from the window it had not finished and stores and sends nothing twice.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { dayIn } from "../src/sources/smarthub/windows.js";
import { type CliProcess, spawnCli } from "./helpers/bridge.js";
import { type FakeHa, startFakeHa } from "./helpers/fake-ha.js";
import { type FakeSmarthub, startFakeSmarthub } from "./helpers/fake-smarthub.js";
import { type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";

const PASSWORD = "correct horse battery";
const SECRET = "KRUGS4ZAON2XAZLSEBZWKY3SMV2CA4DBONZWK";
const round6 = (v: number) => Math.round(v * 1e6) / 1e6;

/** HA's running sums of one statistic against the portal's hourly values. */
function expectedSums(fake: FakeSmarthub, key: "import" | "export" | "cost") {
  let sum = 0;
  return [...fake.hourly()]
    .sort((a, b) => a[0] - b[0])
    .map(([start, v]) => {
      sum = round6(sum + v[key]);
      return { start, sum };
    });
}
const haSums = (ha: FakeHa, id: string) => ha.rows(id).map((r) => ({ start: r.start, sum: round6(r.sum!) }));

describe("SmartHub end to end", () => {
  let dir: string;
  let ha: FakeHa;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-smarthub-e2e-"));
    ha = await startFakeHa();
  });
  afterAll(async () => {
    await ha.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe("meter2mqtt run", () => {
    let broker: Mosquitto;
    let sub: Collector;
    let portal: FakeSmarthub;
    let bridge: CliProcess;

    beforeAll(async () => {
      [broker, portal] = await Promise.all([
        startMosquitto(),
        startFakeSmarthub({ password: PASSWORD, totpSecret: SECRET, flow: "NET", intervalMinutes: 15, price: 0.12 }),
      ]);
      sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#"]);
      const config = join(dir, "run.yaml");
      writeFileSync(
        config,
        [
          `mqtt: {url: "${broker.url}"}`,
          `archive: {path: ${join(dir, "run.sqlite")}}`,
          `homeassistant: {statistics: true, url: "${ha.url}", token: ${ha.token}}`,
          "meters:",
          "  - id: coop",
          "    name: Co-op house",
          "    type: smarthub",
          `    base_url: ${portal.url}`,
          "    username: member@example.com",
          `    password: "${PASSWORD}"`,
          `    totp_secret: ${SECRET}`,
          "",
        ].join("\n"),
      );
      bridge = spawnCli(["run", "--config", config]);
    }, 60_000);

    afterAll(async () => {
      if (process.env.E2E_LOG) console.log(bridge?.output());
      if (bridge && bridge.child.exitCode === null) bridge.child.kill("SIGKILL");
      await sub?.close();
      await Promise.all([broker?.stop(), portal?.close()]);
    });

    it("logs in with the two-factor code, publishes the last full day and sends energy and cost to HA", async () => {
      const id = (s: string) => `meter2mqtt:coop_${s}`;
      await until(() => ha.rows(id("cost")).length > 0, 20_000, "cost statistics in HA");
      expect(portal.logins).toEqual([{ ok: true, twoFactorCode: expect.stringMatching(/^\d{6}$/) }]);
      // Discovered from user-data; the first answer PENDING, then the data.
      expect(portal.requests.map((r) => r.path).slice(0, 2)).toEqual([
        "/services/oauth/auth/v2",
        "/services/secured/user-data",
      ]);
      expect(haSums(ha, id("energy_import"))).toEqual(expectedSums(portal, "import"));
      expect(haSums(ha, id("energy_export"))).toEqual(expectedSums(portal, "export"));
      expect(haSums(ha, id("cost"))).toEqual(expectedSums(portal, "cost"));
      expect(ha.metadata(id("cost"))).toMatchObject({ unit_of_measurement: "USD", unit_class: null });
      expect(ha.errors).toEqual([]);

      const yesterday = dayIn(Date.now() - 86_400_000, "America/New_York");
      const day = [...portal.expected().values()].filter((s) => dayIn(s.start, "America/New_York") === yesterday);
      const kwh = (dir: string) => round6(day.filter((s) => s.direction === dir).reduce((a, s) => a + s.kwh, 0));
      const state = await sub.waitFor(
        (m) =>
          m.topic === "meter2mqtt/coop/state" &&
          m.payload.includes(`"last_day":"${yesterday}"`) &&
          m.payload.includes(`"energy_import_last_day_kwh":${kwh("import")}`),
        20_000,
      );
      expect(JSON.parse(state.payload)).toMatchObject({
        last_day: yesterday,
        energy_import_last_day_kwh: kwh("import"),
        energy_export_last_day_kwh: kwh("export"),
      });
      await until(
        () =>
          sub.messages.some((m) => m.topic === "meter2mqtt/coop/state" && m.payload.includes('"import_status":"ok"')),
        10_000,
        "status ok",
      );
      const discovery = JSON.parse(
        (
          await sub.waitFor(
            (m) => m.topic === "homeassistant/sensor/meter2mqtt_coop/energy_import_last_day_kwh/config",
            10_000,
          )
        ).payload,
      );
      expect(discovery).toMatchObject({
        unit_of_measurement: "kWh",
        device: { name: "Co-op house", manufacturer: "NISC SmartHub", serial_number: "1ND8000000001, 1ND9000000001" },
      });
    });

    it("stops on SIGTERM and never printed a secret", async () => {
      bridge.child.kill("SIGTERM");
      expect(await bridge.exit).toBe(0);
      const log = bridge.output();
      expect(log).toContain("account 900000001, service location 70001 (from the portal's user-data)");
      for (const secret of [PASSWORD, SECRET, ha.token, "token-1"]) expect(log).not.toContain(secret);
    });
  });

  describe("meter2mqtt backfill", () => {
    it("resumes a year's backfill where it was killed, and imports nothing twice", async () => {
      // Answers at the first ask here (the PENDING round trip is the client's test): eight windows stay quick.
      const portal = await startFakeSmarthub({ password: PASSWORD, price: 0.1, pending: 0 });
      try {
        const config = join(dir, "backfill.yaml");
        writeFileSync(
          config,
          [
            `archive: {path: ${join(dir, "backfill.sqlite")}}`,
            `homeassistant: {statistics: true, url: "${ha.url}", token: ${ha.token}}`,
            "meters:",
            "  - id: coop_year",
            "    type: smarthub",
            `    base_url: ${portal.url}`,
            "    username: member@example.com",
            `    password: "${PASSWORD}"`,
            "    account: '900000001'",
            "    service_location: '70001'",
            "",
          ].join("\n"),
        );
        const args = [
          "backfill",
          "--config",
          config,
          "--meter",
          "coop_year",
          "--start",
          "2025-01-01",
          "--end",
          "2025-12-26",
        ];
        // Killed while it waits for the fifth window.
        const first = spawnCli(args);
        const windowStarts = new Set<number>();
        portal.onPoll = (p) => {
          windowStarts.add(p.start);
          if (windowStarts.size < 5) return undefined;
          first.child.kill("SIGKILL");
          return "hold";
        };
        await first.exit;
        expect(first.child.signalCode).toBe("SIGKILL");
        expect(first.output()).toMatch(/\[4\/8\] 2025-05-16…2025-06-29: 1080 intervals, 1080 new\n/);
        const halfway = [...portal.expected().values()].length;
        expect(halfway).toBe(180 * 24 - 1);
        const hoursInHa = ha.rows("meter2mqtt:coop_year_energy_import").length;
        expect(hoursInHa).toBe(halfway);

        portal.onPoll = undefined;
        const second = spawnCli(args);
        expect(await second.exit).toBe(0);
        const out = second.output();
        expect(out).toContain(
          "backfill coop_year: 4 window(s) fetched, 4 imported before; 4321 intervals, 4321 new revision(s)",
        );
        expect(out).toMatch(/\[1\/8\] 2025-01-01…2025-02-14 imported before\n/);
        expect(out).toMatch(/\[8\/8\] 2025-11-12…2025-12-26: 1080 intervals, 1080 new\n/);

        // The portal: each window answered once; the first four were not asked for again.
        const complete = portal.polls.filter((p) => p.status === "COMPLETE").map((p) => p.start);
        expect(complete).toHaveLength(8);
        expect(new Set(complete).size).toBe(8);

        // The archive: every hour of the 360 days once (one hour fewer in March, one more in November), each with
        // one revision, holding exactly the served energy and cost; one import per window.
        const db = openArchiveReadOnly(join(dir, "backfill.sqlite"));
        try {
          const rows = db
            .prepare(
              "SELECT start, energy_kwh AS kwh, cost, revisions FROM intervals_current WHERE meter_id = 'coop_year'",
            )
            .all() as { start: string; kwh: number; cost: number; revisions: number }[];
          expect(rows).toHaveLength(360 * 24);
          expect(rows.every((r) => r.revisions === 1)).toBe(true);
          const served = portal.expected();
          for (const r of rows) {
            const s = served.get(`${Date.parse(r.start)}|import`);
            expect([r.kwh, r.cost], r.start).toEqual([s?.kwh, s?.cost]);
          }
          expect(db.prepare("SELECT count(*) AS n FROM interval_imports WHERE meter_id = 'coop_year'").get()).toEqual({
            n: 8,
          });
        } finally {
          db.close();
        }

        // HA: every hour sent once over both runs, and the sums run on across the kill.
        for (const stat of ["energy_import", "cost"] as const) {
          const id = `meter2mqtt:coop_year_${stat}`;
          const sent = ha.commands
            .filter(
              (c) =>
                c.type === "recorder/import_statistics" && (c.metadata as { statistic_id: string }).statistic_id === id,
            )
            .flatMap((c) => (c.stats as { start: string }[]).map((s) => s.start));
          expect(sent, id).toHaveLength(360 * 24);
          expect(new Set(sent).size, id).toBe(sent.length);
          expect(haSums(ha, id)).toEqual(expectedSums(portal, stat === "cost" ? "cost" : "import"));
        }
        expect(ha.errors).toEqual([]);
      } finally {
        await portal.close();
      }
    }, 60_000);
  });
});
