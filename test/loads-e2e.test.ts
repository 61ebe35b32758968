/**
 * The load advisor end to end: Belgian telegrams written into a pseudo-terminal (the sun coming up, a cloud
 * passing twice, a kettle drawing a peak, then the cable going quiet) and the bridge, running as its own process,
 * publishing its recommendations on a real mosquitto. The table below says, telegram by telegram, what each load
 * is recommended and why; the bridge must change each recommendation at exactly the telegram the table says.
 *
 * The telegrams play a closed loop: each one's grid power counts the loads as the previous row recommended them
 * (the relays follow the advice), and the meter's own quarter-hour register (1-0:1.4.0) integrates the import.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { parseConfig } from "../src/config/load.js";
import { createDeriver } from "../src/derived/index.js";
import { advisedLoad, LoadAdvisor } from "../src/loads/index.js";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { fluviusTelegram, type MeterState } from "../src/sources/dsmr/build.js";
import { decodeTelegram } from "../src/sources/dsmr/decode.js";
import { ManualClock } from "../src/util/clock.js";
import { type CliProcess, startBridge } from "./helpers/bridge.js";
import { recordingLog } from "./helpers/log.js";
import { type Collected, type Collector, collect, type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const START = Date.UTC(2026, 5, 15, 10, 30, 0); // 12:30 in Brussels, the start of a quarter-hour
const STEP_S = 10;
const HOUSE_W = 300;
const FAIL_SAFE_S = 5;

const LOADS_YAML = `
peak_guard:
  - {meter: home, limit_w: 2500}
loads:
  - {id: boiler, name: Boiler, meter: home, power_w: 2000, priority: 1, off_import_w: 300,
     on_delay: 30, off_delay: 30, peak_guard: true, fail_safe: "off", fail_safe_after: ${FAIL_SAFE_S}}
  - id: ev
    name: EV charger
    meter: home
    power_w: 1400
    priority: 2
    on_surplus_w: 1500
    off_import_w: 300
    on_delay: 20
    off_delay: 20
    min_off: 60
    peak_guard: true
    fail_safe: hold
    fail_safe_after: ${FAIL_SAFE_S}
    command: {topic: shellies/ev/relay/0/command, payload_on: "on", payload_off: "off"}
`;
const POWER = { boiler: 2000, ev: 1400 };

/**
 * One row per telegram, 10 s apart from 10:30:00Z: solar production, the kettle, and what the bridge must then
 * recommend (state, reason, seconds left on a countdown). This month's peak is 2800 W, over the 2500 W floor.
 */
const TABLE: { pv: number; kettle?: number; boiler: string; ev: string }[] = [
  { pv: 1000, boiler: "off no_surplus", ev: "off no_surplus" }, // 10:30:00, 700 W exported
  { pv: 2600, boiler: "off on_delay 30", ev: "off no_surplus" }, // the sun comes up: 2300 W, enough for the boiler
  { pv: 2700, boiler: "off on_delay 20", ev: "off no_surplus" },
  { pv: 2800, boiler: "off on_delay 10", ev: "off no_surplus" },
  { pv: 2900, boiler: "on surplus", ev: "off no_surplus" }, // 10:30:40
  { pv: 3000, boiler: "on surplus", ev: "off no_surplus" }, // 700 W left over the boiler's 2000
  { pv: 3700, boiler: "on surplus", ev: "off no_surplus" }, // 1400 W left: short of the EV's 1500
  { pv: 3900, boiler: "on surplus", ev: "off on_delay 20" },
  { pv: 4000, boiler: "on surplus", ev: "off on_delay 10" },
  { pv: 4000, boiler: "on surplus", ev: "on surplus" }, // 10:31:30
  { pv: 4000, boiler: "on surplus", ev: "on surplus" }, // 300 W exported with both on
  { pv: 2000, boiler: "on surplus", ev: "on off_delay 20" }, // a cloud: 1700 W imported; the EV goes first
  { pv: 4000, boiler: "on surplus", ev: "on surplus" }, // it passed: the delay starts over next time
  { pv: 2200, boiler: "on surplus", ev: "on off_delay 20" }, // another one
  { pv: 2200, boiler: "on surplus", ev: "on off_delay 10" },
  { pv: 4000, boiler: "on surplus", ev: "on surplus" }, // 20 s of cloud, and no switching
  // 10:32:40, a 2500 W kettle as the sun dims: 3700 W imported would make the quarter 3135 W, over this month's
  // peak of 2800. The guard sheds the EV at once (the boiler's off delay has only begun).
  { pv: 2500, kettle: 2500, boiler: "on off_delay 30", ev: "off peak_guard" },
  { pv: 2500, kettle: 2500, boiler: "on off_delay 20", ev: "off no_surplus" },
  { pv: 2500, boiler: "on surplus", ev: "off no_surplus" }, // the kettle is done
  { pv: 4000, boiler: "on surplus", ev: "off min_off 30" }, // surplus again; the EV was off only 30 s ago
  { pv: 4000, boiler: "on surplus", ev: "off min_off 20" },
  { pv: 4000, boiler: "on surplus", ev: "off min_off 10" },
  { pv: 4000, boiler: "on surplus", ev: "on surplus" }, // 10:33:40
  { pv: 2500, boiler: "on surplus", ev: "on off_delay 20" }, // 10:33:50, and then the cable goes quiet
];
/** After FAIL_SAFE_S without a telegram: the boiler's fail-safe is off, the EV's is to hold its state. */
const FAIL_SAFE = { boiler: "off no_data", ev: "on no_data" };

const timeOf = (i: number): number => START + i * STEP_S * 1000;
const iso = (t: number): string => new Date(t).toISOString();

/** The meter's view of each row; the loads draw as the row before recommended. */
function meterStates(): { state: MeterState; netW: number }[] {
  const out: { state: MeterState; netW: number }[] = [];
  let importKwh = 3456.789;
  let exportKwh = 1234.567;
  let quarterWs = 0;
  TABLE.forEach((row, i) => {
    const before = TABLE[i - 1];
    const loadsW = (before?.boiler.startsWith("on") ? POWER.boiler : 0) + (before?.ev.startsWith("on") ? POWER.ev : 0);
    const netW = HOUSE_W + loadsW + (row.kettle ?? 0) - row.pv;
    const imp = Math.max(0, netW);
    const exp = Math.max(0, -netW);
    if (i > 0) {
      // The registers count each row's power over the 10 s that led up to it.
      importKwh += (imp * STEP_S) / 3_600_000;
      exportKwh += (exp * STEP_S) / 3_600_000;
      quarterWs += imp * STEP_S;
    }
    out.push({
      netW,
      state: {
        time: timeOf(i),
        importT1: 1000,
        importT2: importKwh - 1000,
        exportT1: 500,
        exportT2: exportKwh - 500,
        tariff: 1,
        phaseImportW: [imp, 0, 0],
        phaseExportW: [exp, 0, 0],
        voltage: [231.2, 230.8, 229.9],
        // The meter's running quarter-hour: energy since 10:30 over the whole 15 minutes.
        quarterHourW: Math.round(quarterWs / 900),
        monthPeakW: 2800,
        monthPeakAt: Date.UTC(2026, 5, 3, 17, 45),
      },
    });
  });
  return out;
}
const STATES = meterStates();
const TELEGRAMS = STATES.map(({ state }) => fluviusTelegram(state));

/** The table as the state each load is in after each telegram, for comparing with what was published. */
const expected = (id: "boiler" | "ev") => TABLE.map((row, i) => `${iso(timeOf(i))} ${row[id]}`);

describe("the scenario", () => {
  it("gives the table's recommendations when replayed in-process through decode, derive and the advisor", () => {
    const cfg = parseConfig({
      meters: [{ id: "home", type: "dsmr", port: "/dev/null", timezone: "Europe/Brussels" }],
      ...(parseYaml(LOADS_YAML) as object),
    });
    const clock = new ManualClock(START);
    const advisor = new LoadAdvisor(cfg.loads.map(advisedLoad), { home: 2500 }, { clock, log: recordingLog().log });
    const derive = createDeriver([{ id: "home", timezone: "Europe/Brussels" }]);
    const seen = { boiler: [] as string[], ev: [] as string[] };
    TELEGRAMS.forEach((telegram, i) => {
      const decoded = decodeTelegram(telegram, { timezone: "Europe/Brussels" });
      if (!decoded.ok) throw new Error(decoded.reason);
      clock.advance(timeOf(i) - clock.now());
      advisor.onReading(derive({ meterId: "home", time: decoded.telegram.time!, values: decoded.telegram.values }));
      for (const s of advisor.snapshots()) {
        const text = `${iso(timeOf(i))} ${s.on ? "on" : "off"} ${s.reason}${s.delayS > 0 ? ` ${s.delayS}` : ""}`;
        seen[s.id as "boiler" | "ev"].push(text);
      }
    });
    expect(seen.boiler).toEqual(expected("boiler"));
    expect(seen.ev).toEqual(expected("ev"));
  });
});

describe("load advisor: telegrams in a pseudo-terminal to recommendations on mosquitto", () => {
  let dir: string;
  let broker: Mosquitto;
  let pty: PtyPair;
  let sub: Collector;
  let bridge: CliProcess;
  const log = (): string => bridge.output();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-loads-e2e-"));
    broker = await startMosquitto();
    pty = await startPtyPair(dir);
    sub = await collect(broker.url, ["meter2mqtt/#", "homeassistant/#", "shellies/#"]);
    bridge = startBridge(dir, [
      "mqtt:",
      `  url: ${broker.url}`,
      "  min_interval: {energy: 0, power: 0, demand: 0, voltage: 0, current: 0}",
      "archive:",
      `  path: ${join(dir, "archive.sqlite")}`,
      "  interval: 0",
      "meters:",
      `  - {id: home, name: Home, type: dsmr, port: ${pty.device}, baud: 115200, timezone: Europe/Brussels}`,
      LOADS_YAML,
    ]);
    await sub.waitFor((m) => m.topic === "meter2mqtt/bridge/state" && m.payload === "online", 20_000);
    await until(() => /\bopen\b/.test(log()), 10_000, "the port to be opened");
  }, 60_000);

  afterAll(async () => {
    if (process.env.E2E_LOG) {
      console.log(log());
      for (const m of sub.messages)
        if (/^(meter2mqtt\/loads\/|shellies\/|homeassistant\/select\/)/.test(m.topic)) console.log(m.topic, m.payload);
    }
    bridge?.kill();
    await sub?.close();
    await pty?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const stateTopic = (id: string) => `meter2mqtt/loads/${id}/state`;
  const body = (m: Collected) => JSON.parse(m.payload) as Record<string, unknown>;
  const text = (m: Collected) => {
    const s = body(m);
    return `${s.state} ${s.reason}${(s.delay_s as number) > 0 ? ` ${s.delay_s}` : ""}`;
  };
  /** Per telegram, the load's state: the newest message evaluated at or before it (messages go out on change). */
  function timeline(id: string): string[] {
    const msgs = sub.messages.filter((m) => m.topic === stateTopic(id) && body(m).time !== undefined);
    return TABLE.map((_, i) => {
      const t = timeOf(i);
      const last = msgs.filter((m) => Date.parse(body(m).time as string) <= t).at(-1);
      return `${iso(t)} ${last ? text(last) : "(nothing)"}`;
    });
  }

  it("announces each load's entities", async () => {
    for (const [component, key] of [
      ["binary_sensor", "recommended"],
      ["select", "mode"],
      ["sensor", "reason"],
      ["sensor", "delay_remaining"],
    ])
      for (const id of ["boiler", "ev"])
        await sub.waitFor((m) => m.topic === `homeassistant/${component}/meter2mqtt_load_${id}/${key}/config`, 10_000);
  });

  it("changes each recommendation at exactly the telegram the table says", async () => {
    for (const t of TELEGRAMS) await pty.write(t);
    // Both loads' last change: every message before it on the same topic has arrived (MQTT keeps their order).
    const last = TABLE.length - 1;
    await sub.waitFor((m) => m.topic === stateTopic("ev") && body(m).time === iso(timeOf(last)), 20_000);
    await sub.waitFor((m) => m.topic === stateTopic("boiler") && body(m).time === iso(timeOf(18)), 5_000);
    expect(timeline("boiler")).toEqual(expected("boiler"));
    expect(timeline("ev")).toEqual(expected("ev"));
    // The EV's relay is not in Home Assistant: it got its commands directly, once per change.
    expect(sub.messages.filter((m) => m.topic === "shellies/ev/relay/0/command").map((m) => m.payload)).toEqual([
      "off",
      "on",
      "off",
      "on",
    ]);
  }, 30_000);

  it("publishes the derived quantities the decisions came from", async () => {
    const kettle = await sub.waitFor(
      (m) => m.topic === "meter2mqtt/home/state" && body(m).time === iso(timeOf(16)),
      5_000,
    );
    // 93 W drawn so far this quarter (the meter's 1-0:1.4.0), + 3700 W for the 740 s left of 900.
    expect(body(kettle)).toMatchObject({
      power_net_w: 3700,
      power_surplus_w: 0,
      demand_quarter_hour_w: 93,
      demand_quarter_hour_projected_w: 3135,
      demand_month_peak_w: 2800,
    });
    const first = await sub.waitFor((m) => m.topic === "meter2mqtt/home/state" && body(m).time === iso(START), 5_000);
    expect(body(first)).toMatchObject({ power_net_w: -700, power_surplus_w: 700 });
  });

  it("goes to each load's fail-safe state when the telegrams stop", async () => {
    const boiler = await sub.waitFor((m) => m.topic === stateTopic("boiler") && body(m).reason === "no_data", 15_000);
    const ev = await sub.waitFor((m) => m.topic === stateTopic("ev") && body(m).reason === "no_data", 5_000);
    expect([text(boiler), text(ev)]).toEqual([FAIL_SAFE.boiler, FAIL_SAFE.ev]);
    // Stamped on the meter's time carried on by the bridge's clock: the last telegram's, plus the silence.
    const silence = Date.parse(body(boiler).time as string) - timeOf(TABLE.length - 1);
    expect(silence).toBeGreaterThanOrEqual(FAIL_SAFE_S * 1000);
    expect(silence).toBeLessThan(FAIL_SAFE_S * 1000 + 10_000);
    expect(log()).toMatch(/no grid power for 5 s: boiler, ev to their fail-safe state/);
  }, 20_000);

  it("archives the derived quantities, and exits cleanly", async () => {
    bridge.child.kill("SIGTERM");
    expect(await bridge.exit).toBe(0);
    const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
    const row = db
      .prepare("SELECT power_surplus_w, demand_quarter_hour_projected_w FROM readings WHERE time = ?")
      .get(iso(timeOf(16)));
    const rows = (db.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n;
    db.close();
    expect(row).toEqual({ power_surplus_w: 0, demand_quarter_hour_projected_w: 3135 });
    expect(rows).toBe(TABLE.length);
  });
});
