/**
 * NISC SmartHub figures (`npx tsx bench/smarthub.ts`, or benchSmarthub from bench/run.ts once the lead wires it):
 *   - the poll answer decode rate: a 45-day window of 15-minute NET points with COST, as the portal answers it;
 *   - `meter2mqtt decode --format smarthub-json` of a ~100 MB poll answer (7.6 years of 15-minute NET points with
 *     COST, written once into the cache under the system's temp folder): peak RSS and time, in a process of its own;
 *   - a year's backfill (2025-01-01 … 2025-12-26: eight windows, 8,640 hourly intervals with cost) from the local
 *     portal into a real archive and HA's statistics through the local stand-in, as `meter2mqtt backfill` runs it.
 * Asserts nothing: timings on a busy machine are figures, not pass/fail.
 */
import { spawnSync } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { runBackfill } from "../src/sources/smarthub/backfill.js";
import { decodePoll } from "../src/sources/smarthub/decode.js";
import { setLogLevel } from "../src/util/log.js";
import { startFakeHa } from "../test/helpers/fake-ha.js";
import { startFakeSmarthub } from "../test/helpers/fake-smarthub.js";

function decodeRate(answer: unknown, points: number): number {
  const pass = () => decodePoll(answer, { meterId: "bench", timezone: "America/New_York" });
  pass();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 2000 || n < 3) {
    pass();
    n++;
  }
  return (n * points) / ((performance.now() - t0) / 1000);
}

const ROOT = join(import.meta.dirname, "..");
const CACHE = join(tmpdir(), "meter2mqtt-bench-cache");

/**
 * A ~100 MB poll answer, generated once into the cache: the fake portal's NET + COST answers of 30-day windows from
 * 2018 on, their series joined into one answer as a portal would give it for the whole span.
 */
async function bigAnswer(): Promise<string> {
  const path = join(CACHE, "smarthub-poll-100mb.json");
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  const portal = await startFakeSmarthub({ flow: "NET", intervalMinutes: 15, price: 0.11 });
  const tmp = `${path}.part`;
  const out = createWriteStream(tmp);
  const write = async (text: string): Promise<void> => {
    if (!out.write(text)) await new Promise<void>((r) => out.once("drain", () => r()));
  };
  try {
    const first = Date.parse("2018-01-01T05:00:00Z");
    const windows = Array.from({ length: 93 }, (_, i) => first + i * 30 * 86_400_000);
    type Entry = { type: string; series: { data: unknown[] }[]; xToOrderedInterval: Record<string, unknown> };
    const entriesOf = (start: number): Entry[] =>
      (portal.answer(start, start + 30 * 86_400_000).data as { ELECTRIC: Entry[] }).ELECTRIC;
    const shape = entriesOf(first);
    await write('{"data":{"ELECTRIC":[');
    for (const [ei, entry] of shape.entries()) {
      const { series, xToOrderedInterval: _x, ...head } = entry;
      await write(`${ei > 0 ? "," : ""}${JSON.stringify(head).slice(0, -1)},"series":[`);
      for (const [si, s] of series.entries()) {
        const { data: _d, ...meta } = s;
        await write(`${si > 0 ? "," : ""}${JSON.stringify(meta).slice(0, -1)},"data":[`);
        for (const [wi, w] of windows.entries()) {
          const points = JSON.stringify((entriesOf(w)[ei] as Entry).series[si]?.data ?? []).slice(1, -1);
          await write(`${wi > 0 && points ? "," : ""}${points}`);
        }
        await write("]}");
      }
      await write('],"xToOrderedInterval":{');
      for (const [wi, w] of windows.entries())
        await write(
          `${wi > 0 ? "," : ""}${JSON.stringify((entriesOf(w)[ei] as Entry).xToOrderedInterval).slice(1, -1)}`,
        );
      await write("}}");
    }
    await write(']},"status":"COMPLETE"}\n');
    await new Promise<void>((resolve, reject) => out.end((err?: Error) => (err ? reject(err) : resolve())));
  } finally {
    await portal.close();
  }
  renameSync(tmp, path);
  return path;
}

/** Peak RSS of `meter2mqtt decode --format smarthub-json` of the big answer, stdout to /dev/null. */
export async function decodeRss(): Promise<Record<string, string>> {
  const file = await bigAnswer();
  // The built CLI (npm run bench builds first) when it is at least as new as the sources, else the sources via tsx.
  const built = [
    "cli",
    "util/column",
    "sources/smarthub/cli",
    "sources/smarthub/decode",
    "sources/smarthub/read",
  ].every((m) => {
    const dist = join(ROOT, "dist", `${m}.js`);
    return existsSync(dist) && statSync(dist).mtimeMs >= statSync(join(ROOT, "src", `${m}.ts`)).mtimeMs;
  });
  // Every process of the command (the CLI may run itself again with a smaller heap) says its peak RSS as it exits.
  const report = `data:text/javascript,process.on("exit",()=>process.stderr.write("RSS "+process.resourceUsage().maxRSS+"\\n"))`;
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      "--import",
      report,
      ...(built ? ["bin/meter2mqtt.js"] : ["--import", "tsx", "src/cli.ts"]),
      "decode",
      "--format",
      "smarthub-json",
      file,
    ],
    { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "ignore", "pipe"], maxBuffer: 64 << 20 },
  );
  const s = (performance.now() - t0) / 1000;
  const rss = [...r.stderr.matchAll(/^RSS (\d+)$/gm)].map((m) => Number(m[1]));
  const label = `decode a ~100 MB poll answer: peak RSS (${built ? "built CLI" : "sources via tsx"})`;
  if (r.status !== 0 || rss.length === 0)
    return { [label]: `failed (exit ${r.status}): ${r.stderr.trim().split("\n").slice(-3).join(" ")}` };
  const rejected = r.stderr.split("\n").filter((l) => l.startsWith("rejected")).length;
  return {
    [label]: `${(Math.max(...rss) / 1024).toFixed(0)} MiB (aim < 200 MB), ${s.toFixed(1)} s; ${(statSync(file).size / 1e6).toFixed(0)} MB file, ${rejected} rejected`,
  };
}

export async function benchSmarthub(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const net = await startFakeSmarthub({ flow: "NET", intervalMinutes: 15, price: 0.11 });
  try {
    const start = Date.parse("2025-01-01T05:00:00Z");
    const answer = net.answer(start, start + 45 * 86_400_000);
    const points = 45 * 96 * 2 * 2;
    const bytes = JSON.stringify(answer).length;
    out["decode a 45-day 15-min NET answer with COST"] =
      `${Math.round(decodeRate(answer, points)).toLocaleString("en")} points/s (${(bytes / 1e6).toFixed(1)} MB answer, ${points.toLocaleString("en")} points)`;
  } finally {
    await net.close();
  }

  Object.assign(out, await decodeRss());

  const dir = mkdtempSync(join(tmpdir(), "m2m-bench-smarthub-"));
  const portal = await startFakeSmarthub({ price: 0.1 });
  const ha = await startFakeHa();
  try {
    const config = join(dir, "c.yaml");
    writeFileSync(
      config,
      [
        `archive: {path: ${join(dir, "a.sqlite")}}`,
        `homeassistant: {statistics: true, url: "${ha.url}", token: ${ha.token}}`,
        "meters:",
        `  - {id: coop, type: smarthub, base_url: "${portal.url}", username: member@example.com, password: "correct horse battery"}`,
      ].join("\n"),
    );
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    setLogLevel("error");
    const t0 = performance.now();
    const code = await runBackfill(
      ["--config", config, "--start", "2025-01-01", "--end", "2025-12-26"],
      // The portal's first answer is PENDING; asked again after 50 ms here instead of the real second.
      { client: { pollDelaysMs: [50, 100, 200] }, out: sink, err: sink },
    );
    const s = (performance.now() - t0) / 1000;
    const hours = ha.rows("meter2mqtt:coop_energy_import").length;
    out["backfill a year: 8 windows, PENDING once each"] =
      `${s.toFixed(1)} s (exit ${code}; ${portal.expected().size.toLocaleString("en")} intervals, ${hours.toLocaleString("en")} hours × 2 statistics to HA)`;
  } finally {
    setLogLevel("info");
    await portal.close();
    await ha.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [k, v] of Object.entries(await benchSmarthub())) console.log(`${k.padEnd(52)} ${v}`);
}
