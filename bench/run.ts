/**
 * `npm run bench`: prints figures, asserts nothing (timed assertions fail on a busy machine).
 *   1. DSMR decode rate (framer + decoder) for a DSMR 5 and a Fluvius telegram.
 *   2. Latency from the last byte of a telegram written into a pseudo-terminal to its state message
 *      at an MQTT subscriber, over 1,000 telegrams, through the real bridge process and mosquitto;
 *      and that process's peak RSS.
 *   3. Archive write rate and the main thread's longest stall while the worker writes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dsmr5Telegram, fluviusTelegram, simulate } from "../src/sources/dsmr/build.js";
import { decodeTelegram } from "../src/sources/dsmr/decode.js";
import { TelegramFramer } from "../src/sources/dsmr/framer.js";
import { collect, startMosquitto } from "../test/helpers/mosquitto.js";
import { startPtyPair } from "../test/helpers/pty.js";
import { benchArchive } from "./archive.js";
import { benchArchiveScale } from "./archive-scale.js";
import { benchEncrypted } from "./dsmr-encrypted.js";
import { benchRaven } from "./raven.js";
import { benchSmarthub } from "./smarthub.js";
import { benchSmt } from "./smt.js";
import { benchTariffs } from "./tariffs.js";

const ROOT = join(import.meta.dirname, "..");
const print = (label: string, value: string): void => console.log(`${label.padEnd(52)} ${value}`);

function decodeRate(name: string, telegrams: Buffer[]): void {
  const framer = new TelegramFramer();
  const run = (ms: number): number => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      for (const t of telegrams) {
        for (const ev of framer.push(t)) {
          if ("frame" in ev) {
            const r = decodeTelegram(ev.frame);
            if (!r.ok) throw new Error(r.reason);
            n++;
          }
        }
      }
    }
    return n / ((performance.now() - t0) / 1000);
  };
  run(300); // warm-up: let the JIT settle
  const rates = [run(1000), run(1000), run(1000)].sort((a, b) => a - b);
  const bytes = telegrams.reduce((a, t) => a + t.length, 0) / telegrams.length;
  print(
    `decode ${name} (${Math.round(bytes)} B/telegram)`,
    `${Math.round(rates[1]!).toLocaleString("en")} telegrams/s (median of 3; ${(rates[1]! / 1300).toFixed(0)}× dsmr_parser's ~1,300/s)`,
  );
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function latency(count: number): Promise<void> {
  let broker: Awaited<ReturnType<typeof startMosquitto>>;
  try {
    broker = await startMosquitto();
  } catch (err) {
    print("latency pty → MQTT subscriber", `skipped: ${(err as Error).message.split("\n")[0]}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "m2m-bench-"));
  const pty = await startPtyPair(dir);
  const sub = await collect(broker.url, "meter2mqtt/p1/state");
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    `log_level: warn
mqtt: {url: "${broker.url}", min_interval: {energy: 0, power: 0, demand: 0, voltage: 0, current: 0}}
archive: {path: "${join(dir, "a.sqlite")}", interval: 0, enabled: ${process.env.BENCH_ARCHIVE !== "off"}}
meters: [{id: p1, type: dsmr, port: "${pty.device}", baud: 115200}]
`,
  );
  // The built bridge, as users run it (npm run bench builds first).
  const bridge: ChildProcess = spawn(process.execPath, ["bin/meter2mqtt.js", "run", "--config", config], {
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    const states = simulate(Date.UTC(2026, 10, 21, 0, 0, 0), count + 20, 1);
    const telegrams = states.map((s) => dsmr5Telegram(s));
    const times = states.map((s) => new Date(s.time).toISOString());
    const arrived = new Map<string, number>();
    const waiters = new Map<string, () => void>();
    sub.messages.length = 0;
    const poll = setInterval(() => {}, 1000);
    // Watch arrivals as they come rather than scanning: the collector keeps every message.
    const seen = { n: 0 };
    const check = (): void => {
      for (; seen.n < sub.messages.length; seen.n++) {
        const m = sub.messages[seen.n]!;
        const t = (JSON.parse(m.payload) as { time?: string }).time;
        if (t && !arrived.has(t)) {
          arrived.set(t, performance.now());
          waiters.get(t)?.();
        }
      }
    };
    const ticker = setInterval(check, 0);
    // Wait for the port to be open: repeat the first telegram until its state arrives.
    const startBy = Date.now() + 30_000;
    while (!arrived.has(times[0]!)) {
      if (Date.now() > startBy) throw new Error("the bridge did not publish within 30 s");
      await pty.write(telegrams[0]!);
      await new Promise((r) => setTimeout(r, 200));
    }
    const lat: number[] = [];
    for (let i = 1; i < telegrams.length; i++) {
      const got = new Promise<void>((r) => waiters.set(times[i]!, r));
      await pty.write(telegrams[i]!);
      const sent = performance.now();
      await Promise.race([got, new Promise((r) => setTimeout(r, 2000))]);
      check();
      const at = arrived.get(times[i]!);
      if (i > 20 && at !== undefined) lat.push(at - sent);
      // Meters send every 1–10 s; 20 ms apart keeps the bench short without queueing telegrams.
      await new Promise((r) => setTimeout(r, 20));
    }
    clearInterval(ticker);
    clearInterval(poll);
    lat.sort((a, b) => a - b);
    print(
      `latency pty → MQTT subscriber (${lat.length} telegrams)`,
      `p50 ${percentile(lat, 50).toFixed(2)} ms, p90 ${percentile(lat, 90).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms, max ${lat.at(-1)!.toFixed(2)} ms; ${lat.filter((x) => x > 5).length} over 5 ms (${telegrams.length - 21 - lat.length} missing)`,
    );
    const status = readFileSync(`/proc/${bridge.pid}/status`, "utf8");
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    if (hwm) print("bridge process peak RSS (VmHWM)", `${(Number(hwm) / 1024).toFixed(1)} MiB`);
  } finally {
    bridge.kill("SIGTERM");
    await new Promise((r) => bridge.once("exit", r));
    await sub.close();
    await pty.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Issue 13's figures (bench/archive-scale.ts); alone with BENCH_ONLY=archive-scale. */
async function archiveAtScale(): Promise<void> {
  for (const [k, v] of Object.entries(await benchArchiveScale())) print(`archive at scale: ${k}`, v);
}

async function main(): Promise<void> {
  console.log(`meter2mqtt benchmarks — node ${process.version}, ${process.platform}/${process.arch}\n`);
  if (process.env.BENCH_ONLY === "archive-scale") return archiveAtScale();
  const states = simulate(Date.UTC(2026, 10, 21, 11), 500, 1, true);
  if (!process.env.BENCH_ONLY || process.env.BENCH_ONLY === "decode")
    decodeRate(
      "DSMR 5",
      states.map((s) => dsmr5Telegram(s)),
    );
  if (!process.env.BENCH_ONLY || process.env.BENCH_ONLY === "decode")
    decodeRate(
      "Fluvius e-MUCS",
      states.map((s) => fluviusTelegram(s)),
    );
  if (!process.env.BENCH_ONLY || process.env.BENCH_ONLY === "decode")
    for (const [k, v] of Object.entries(benchEncrypted())) print(k, v);
  if (!process.env.BENCH_ONLY || process.env.BENCH_ONLY === "decode")
    for (const [k, v] of Object.entries((await import("./han.js")).benchHan())) print(k, v);
  if (process.env.BENCH_ONLY !== "decode") await latency(1000);
  if (process.env.BENCH_ONLY === "latency") return;
  for (const [k, v] of Object.entries(await benchRaven())) print(`raven ${k}`, String(v));
  for (const [k, v] of Object.entries(await benchSmt())) print(`smt ${k}`, String(v));
  for (const [k, v] of Object.entries(await benchSmarthub())) print(`smarthub ${k}`, String(v));
  for (const [k, v] of Object.entries(benchTariffs())) print(`tariffs ${k}`, v);
  const archive = await benchArchive();
  for (const [k, v] of Object.entries(archive)) print(`archive ${k}`, String(v));
  print("bench process peak RSS", `${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB`);
  if (!process.env.BENCH_ONLY) await archiveAtScale();
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
