/**
 * `meter2mqtt export`: readings and intervals from a real archive as CSV and line protocol, limited to local days of
 * the meter, in-process and through the CLI.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { exportRange, writeExport } from "../src/export/index.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { smtCsv, smtDay } from "./helpers/smt.js";

const ROOT = join(import.meta.dirname, "..");
const T0 = Date.parse("2025-03-29T22:00:00Z"); // 23:00 on the 29th in Amsterdam (CET)

async function collect(fn: (out: PassThrough) => Promise<number>): Promise<{ n: number; text: string }> {
  const out = new PassThrough();
  let text = "";
  out.on("data", (d: Buffer) => (text += d.toString()));
  const n = await fn(out);
  return { n, text };
}

describe("export", () => {
  let dir: string;
  let path: string;
  const intervals = parseSmtCsv(smtCsv(smtDay({ day: "2024-11-03", estimated: [5] })), {
    file: "t",
    meterId: "texas",
  }).intervals;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-export-"));
    path = join(dir, "a.sqlite");
    const archive = new Archive({ enabled: true, path, interval: 0 });
    await archive.start();
    // Every 15 minutes for 4 hours across the spring change: 23:00 CET to 04:00 CEST.
    for (let i = 0; i < 16; i++)
      archive.add({
        meterId: "home",
        time: T0 + i * 900_000,
        values: { energy_import_kwh: 100 + i / 4, power_import_w: 1000, gas_at: "2025-03-29T21:55:00Z" },
      });
    await new IntervalPipeline(archive, new Bus()).ingest({
      meterId: "texas",
      timezone: "America/Chicago",
      intervals,
      receivedAt: Date.parse("2024-11-04T15:00:00Z"),
    });
    await archive.flush();
    await archive.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("readings as CSV: the columns the meter has, in catalogue order, only the local days asked for", async () => {
    const db = openArchiveReadOnly(path);
    const range = exportRange("Europe/Amsterdam", "2025-03-30", "2025-03-30");
    expect(range).toEqual({ from: Date.parse("2025-03-29T23:00:00Z"), to: Date.parse("2025-03-30T22:00:00Z") });
    const meter = { id: "home", timezone: "Europe/Amsterdam" };
    const { n, text } = await collect((out) => writeExport(db, meter, "readings", "csv", range, out));
    db.close();
    const lines = text.trim().split("\n");
    expect(lines[0]).toBe("time,energy_import_kwh,power_import_w,gas_at");
    expect(n).toBe(12);
    expect(lines[1]).toBe("2025-03-29T23:00:00.000Z,101,1000,2025-03-29T21:55:00Z");
    expect(lines.at(-1)).toBe("2025-03-30T01:45:00.000Z,103.75,1000,2025-03-29T21:55:00Z");
  });

  it("readings and intervals as line protocol, the same points the live output writes", async () => {
    const db = openArchiveReadOnly(path);
    const all = exportRange("UTC");
    const r = await collect((out) => writeExport(db, { id: "home", timezone: "UTC" }, "readings", "line", all, out));
    expect(r.text.split("\n")[0]).toBe(`meter2mqtt,meter=home energy_import_kwh=100,power_import_w=1000 ${T0}`);
    const i = await collect((out) =>
      writeExport(db, { id: "texas", timezone: "America/Chicago" }, "intervals", "line", all, out, "m"),
    );
    db.close();
    const lines = i.text.trim().split("\n");
    // The autumn day: 100 quarter hours.
    expect(lines).toHaveLength(100);
    expect(lines[5]).toBe(
      `m_interval,direction=import,meter=texas energy_kwh=${intervals[5]?.energyKwh},estimated=1 ${intervals[5]?.start}`,
    );
  });

  it("the CLI writes intervals as CSV to a file", () => {
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        archive: { path },
        meters: [{ id: "texas", type: "smt", folder: dir, timezone: "America/Chicago" }],
      }),
    );
    const file = join(dir, "out.csv");
    const r = spawnSync(
      process.execPath,
      ["--import", "tsx", "src/cli.ts", "export", "--config", config, "--from", "2024-11-03", "--output", file],
      { cwd: ROOT, encoding: "utf8" },
    );
    expect(r.stderr).toBe("texas: 100 interval(s) exported\n");
    expect(r.status).toBe(0);
    const lines = readFileSync(file, "utf8").trim().split("\n");
    expect(lines[0]).toBe("start,end,day,direction,energy_kwh,quality,cost,revised_at,received_at");
    expect(lines).toHaveLength(101);
    expect(lines[1]).toMatch(/^2024-11-03T05:00:00\.000Z,2024-11-03T05:15:00\.000Z,2024-11-03,import,[\d.]+,actual,,/);
    expect(lines[6]).toContain(",estimated,");
  }, 20_000);
});
