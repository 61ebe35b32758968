/**
 * Soak test (issue 14), not part of `npm test`: `npm run soak -- [MINUTES] [TELEGRAMS_PER_S]` (defaults 2 and 2).
 *
 * Runs the bridge (`meter2mqtt run`, its own process) against a real mosquitto with a DSMR meter on a socat
 * pseudo-terminal and a load configured, while, every minute:
 *   - the broker is restarted (down 4 s),
 *   - the broker hangs (SIGSTOP for 12 s, then SIGCONT),
 *   - the meter's USB device vanishes for 3 s and comes back (a flapping pty),
 * and, all along, hostile MQTT publishers send bursts of `online` on homeassistant/status, bad and oversized
 * payloads on the load's mode/set, and a forged retained load state from the year 9999.
 *
 * Prints the bridge's RSS over time, the messages it published per telegram, and the readings lost from the
 * archive (every telegram written while the device was there must be archived: the script exits 1 otherwise).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "mqtt";
import { openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { dsmr5Telegram, simulate } from "../src/sources/dsmr/build.js";
import { startBridge } from "../test/helpers/bridge.js";
import { startMosquitto } from "../test/helpers/mosquitto.js";
import { startPtyPair } from "../test/helpers/pty.js";

const minutes = Number(process.argv[2] ?? 2);
const rate = Number(process.argv[3] ?? 2);
if (!(minutes > 0) || !(rate > 0 && rate <= 50)) {
  process.stderr.write("usage: npm run soak -- [MINUTES > 0] [TELEGRAMS_PER_SECOND 1..50]\n");
  process.exit(2);
}
const durationMs = minutes * 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const iso = (ms: number) => new Date(ms).toISOString();
const say = (line: string) => process.stdout.write(`${line}\n`);

function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "m2m-soak-"));
  const broker = await startMosquitto();
  const pty = await startPtyPair(dir);
  // One state per telegram at most; meter time advances a second per telegram whatever the rate.
  const total = Math.ceil((durationMs / 1000) * rate) + 100;
  const states = simulate(Date.UTC(2026, 0, 5, 6, 0, 0), total, 1);
  const bridge = startBridge(dir, [
    "mqtt:",
    `  url: ${broker.url}`,
    "archive:",
    `  path: ${join(dir, "archive.sqlite")}`,
    "  interval: 0",
    "meters:",
    `  - {id: p1, name: Soak, type: dsmr, port: ${pty.device}, baud: 115200, timeout: 10}`,
    "loads:",
    "  - {id: boiler, meter: p1, power_w: 2000, on_delay: 5, off_delay: 5}",
    "",
  ]);
  const pid = bridge.child.pid as number;
  const started = Date.now();
  const out = (): string => bridge.output();
  const count = (re: RegExp): number => out().match(re)?.length ?? 0;
  const waitFor = async (what: () => boolean, ms: number): Promise<boolean> => {
    const end = Date.now() + ms;
    while (!what()) {
      if (Date.now() > end) return false;
      await sleep(50);
    }
    return true;
  };
  if (!(await waitFor(() => /\bopen\b/.test(out()), 30_000)))
    throw new Error(`the bridge did not open the meter:\n${out()}`);

  // ── the meter ──
  const written: number[] = [];
  let paused = false;
  /** After the device came back: the same telegram again and again until the bridge says it reads again. */
  let probing: (() => boolean) | undefined;
  let next = 0;
  let stop = false;
  const meter = (async () => {
    const every = 1000 / rate;
    let at = Date.now();
    while (!stop && next < states.length) {
      if (!paused) {
        const s = states[next] as (typeof states)[number];
        try {
          await pty.write(dsmr5Telegram(s));
          // The archive keys readings by the meter's time: a telegram repeated while probing is stored once.
          if (!probing || probing()) {
            probing = undefined;
            written.push(s.time);
            next++;
          }
        } catch {
          // The device is gone: this telegram was never sent; the next attempt sends it.
        }
      }
      at += every;
      await sleep(Math.max(0, at - Date.now()));
    }
  })();

  // ── hostile publishers ──
  const hostile = connect(broker.url, { reconnectPeriod: 500, clientId: "soak-hostile" });
  hostile.on("error", () => {});
  let hostileSent = 0;
  const forge = () =>
    hostile.publish(
      "meter2mqtt/loads/boiler/state",
      JSON.stringify({ state: "off", mode: "auto", reason: "min_off", since: "9999-12-31T00:00:00.000Z" }),
      { retain: true, qos: 1 },
    );
  hostile.on("connect", forge);
  const flood = setInterval(() => {
    if (!hostile.connected) return;
    for (let i = 0; i < 50; i++) hostile.publish("homeassistant/status", "online");
    for (let i = 0; i < 50; i++) hostile.publish("meter2mqtt/loads/boiler/mode/set", `bad\n${i} FORGED LINE`);
    hostile.publish("meter2mqtt/loads/boiler/mode/set", Buffer.alloc(200_000, 0x41));
    hostileSent += 101;
  }, 1000);

  // ── the surroundings: one cycle a minute ──
  const events: string[] = [];
  const at = (label: string) => events.push(`${Math.round((Date.now() - started) / 1000)} s ${label}`);
  const surroundings = (async () => {
    while (!stop && Date.now() - started < durationMs - 20_000) {
      const cycle = Date.now();
      const until = async (offsetS: number) => {
        while (!stop && Date.now() - cycle < offsetS * 1000) await sleep(100);
      };
      await until(8);
      if (stop) break;
      at("broker stopped");
      await broker.stop();
      await sleep(4000);
      await broker.restart();
      at("broker restarted");
      await until(22);
      if (stop) break;
      at("broker hangs (SIGSTOP)");
      broker.signal("SIGSTOP");
      await sleep(12_000);
      broker.signal("SIGCONT");
      at("broker goes on (SIGCONT)");
      await until(44);
      if (stop) break;
      // Device gone: the meter pauses (its telegrams would go nowhere); once the device is back it repeats one
      // telegram until the bridge reads again (it retries with backoff), then goes on.
      paused = true;
      const reopened = count(/back after/g);
      await pty.vanish();
      at("device vanished");
      await sleep(3000);
      await pty.reappear();
      at("device back");
      probing = () => count(/back after/g) > reopened;
      paused = false;
      await waitFor(() => probing === undefined, 60_000);
      at("bridge reads the device again");
      await until(60);
    }
  })();

  // ── what it costs ──
  say(`soak: ${minutes} min, ${rate} telegram(s)/s, bridge pid ${pid}, broker ${broker.url}`);
  say("   time  RSS MB  telegrams");
  const rss: number[] = [];
  const sample = () => {
    const mb = rssMb(pid);
    if (mb !== undefined) rss.push(mb);
    say(
      `${String(Math.round((Date.now() - started) / 1000)).padStart(5)} s  ${String(mb ?? "?").padStart(6)}  ${written.length}`,
    );
  };
  sample();
  const sampler = setInterval(sample, Math.max(5000, Math.min(30_000, durationMs / 12)));
  await sleep(Math.max(0, durationMs - (Date.now() - started)));
  stop = true;
  clearInterval(sampler);
  clearInterval(flood);
  await surroundings;
  await meter;
  broker.signal("SIGCONT");
  sample();
  // Let the last telegrams be read before the end.
  await sleep(2000);

  const stopAt = Date.now();
  bridge.child.kill("SIGTERM");
  const code = await bridge.exit;
  const stopMs = Date.now() - stopAt;
  hostile.end(true);

  const db = openArchiveReadOnly(join(dir, "archive.sqlite"));
  const archived = new Set(
    (db.prepare("SELECT time FROM readings WHERE meter_id = 'p1'").all() as { time: string }[]).map((r) => r.time),
  );
  db.close();
  const lost = written.filter((t) => !archived.has(iso(t)));
  const stats =
    /(\d+) message\(s\) published this run \((\d+) meter state\(s\), (\d+) discovery config\(s\)\), (\d+) reconnect\(s\), (\d+) stall\(s\) noticed, (\d+) "online" from Home Assistant answered by (\d+) re-send\(s\)/.exec(
      out(),
    );
  const warnings = count(/ WARN /g);
  const forged = out()
    .split("\n")
    .filter((l) => /^FORGED|^\d+ FORGED/.test(l)).length;

  say("");
  say("events:");
  for (const e of events) say(`  ${e}`);
  say("");
  say(`telegrams written:           ${written.length}`);
  say(`readings lost from archive:  ${lost.length}${lost.length ? ` (first: ${iso(lost[0] as number)})` : ""}`);
  if (stats) {
    const [, messages, statesSent, discovery, reconnects, stalls, online, resends] = stats.map(Number);
    say(`messages published:          ${messages} (${statesSent} meter states, ${discovery} discovery)`);
    say(
      `messages per telegram:       ${((messages as number) / written.length).toFixed(3)} (meter states alone ${((statesSent as number) / written.length).toFixed(3)})`,
    );
    say(`reconnects / stalls noticed: ${reconnects} / ${stalls}`);
    say(`HA "online" received:        ${online}, answered by ${resends} re-send(s)`);
  } else say("messages published:          (the bridge did not log its totals)");
  say(`hostile messages sent:       ${hostileSent}`);
  say(`warnings logged:             ${warnings}; forged log lines: ${forged}`);
  say(`RSS MB min / max / last:     ${Math.min(...rss)} / ${Math.max(...rss)} / ${rss.at(-1)}`);
  say(`SIGTERM to exit:             ${stopMs} ms, exit ${code}`);

  await pty.stop();
  await broker.stop();
  if (process.env.SOAK_LOG) say(out());
  rmSync(dir, { recursive: true, force: true });
  return lost.length === 0 && code === 0 && forged === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`soak: ${err.message}\n`);
    process.exit(1);
  },
);
