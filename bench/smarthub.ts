/**
 * NISC SmartHub figures (`npx tsx bench/smarthub.ts`, or benchSmarthub from bench/run.ts once the lead wires it):
 *   - the poll answer decode rate: a 45-day window of 15-minute NET points with COST, as the portal answers it;
 *   - a year's backfill (2025-01-01 … 2025-12-26: eight windows, 8,640 hourly intervals with cost) from the local
 *     portal into a real archive and HA's statistics through the local stand-in, as `meter2mqtt backfill` runs it.
 * Asserts nothing: timings on a busy machine are figures, not pass/fail.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
