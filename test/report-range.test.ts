/**
 * The dates `report` and `export` take: real days and months, in order, a report at most about ten years. A bad one
 * is one line on stderr and exit 2, before anything is written (the calendar a report would fill, an --output file).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportRange } from "../src/export/index.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { DateRangeError, reportRange } from "../src/reports/index.js";
import { MAX_REPORT_DAYS } from "../src/reports/range.js";

const ROOT = join(import.meta.dirname, "..");
const AMS = "Europe/Amsterdam";
const NOW = Date.parse("2025-04-02T12:00:00Z");

describe("report ranges", () => {
  it("takes real days and months, and widens months", () => {
    expect(reportRange("daily", AMS, NOW, "2024-02-29", "2024-03-01")).toEqual({
      from: "2024-02-29",
      to: "2024-03-01",
    });
    expect(reportRange("daily", AMS, NOW, "2024-02", "2024-02")).toEqual({ from: "2024-02-01", to: "2024-02-29" });
    expect(reportRange("monthly", AMS, NOW, "2024-11", "2025-02")).toEqual({ from: "2024-11-01", to: "2025-02-28" });
    expect(reportRange("daily", AMS, NOW)).toEqual({ from: "2025-03-27", to: "2025-04-02" });
  });

  it.each([
    ["2024-02-30", "2024-03-01", /--from 2024-02-30: expected a day YYYY-MM-DD or a month YYYY-MM/],
    ["2023-02-29", undefined, /--from 2023-02-29/],
    ["2024-13", "2025-01", /--from 2024-13:/],
    ["2024-01-01", "2024-1-5", /--to 2024-1-5:/],
    ["0001-01-01", "9999-12-31", /--from 0001-01-01: .*years 1970–2199/],
    ["2025-03-02", "2025-03-01", /--from 2025-03-02 is after --to 2025-03-01/],
    ["1990-01-01", "2100-12-31", new RegExp(`40542 days; a report covers at most ${MAX_REPORT_DAYS}`)],
  ])("refuses --from %s --to %s", (from, to, message) => {
    const call = () => reportRange("daily", AMS, NOW, from, to);
    expect(call).toThrow(DateRangeError);
    expect(call).toThrow(message);
  });

  it("allows about ten years and no more", () => {
    expect(reportRange("daily", AMS, NOW, "2015-01-01", "2024-12-31").from).toBe("2015-01-01");
    expect(() => reportRange("monthly", AMS, NOW, "2010-01", "2024-12")).toThrow(DateRangeError);
  });
});

describe("export ranges", () => {
  it("takes local days and ISO times", () => {
    expect(exportRange(AMS, "2025-03-30", "2025-03-30")).toEqual({
      from: Date.parse("2025-03-29T23:00:00Z"),
      to: Date.parse("2025-03-30T22:00:00Z"),
    });
    expect(exportRange(AMS, "2025-03-30T01:00:00Z").from).toBe(Date.parse("2025-03-30T01:00:00Z"));
  });

  it.each([
    ["2024-13-45", undefined, /export: --from 2024-13-45: expected a day/],
    ["2024-02-30T00:00:00Z", undefined, /--from 2024-02-30T00:00:00Z/],
    [undefined, "2024-02-29T25:00:00Z", /--to 2024-02-29T25:00:00Z/],
    ["2025-03-02", "2025-03-01", /--from 2025-03-02 is not before --to 2025-03-01/],
  ])("refuses --from %s --to %s", (from, to, message) => {
    expect(() => exportRange(AMS, from, to)).toThrow(DateRangeError);
    expect(() => exportRange(AMS, from, to)).toThrow(message);
  });
});

describe("the CLI with a bad range", () => {
  let dir: string;
  let path: string;
  let config: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-range-"));
    path = join(dir, "a.sqlite");
    config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        archive: { path },
        meters: [{ id: "home", type: "dsmr", port: "/dev/null", timezone: AMS }],
        tariffs: { home: { meters: ["home"], currency: "EUR", import: 0.3 } },
      }),
    );
    const archive = new Archive({ enabled: true, path, interval: 0 });
    await archive.start();
    for (let i = 0; i < 8; i++)
      archive.add({ meterId: "home", time: NOW - i * 900_000, values: { energy_import_kwh: 100 - i / 4 } });
    await archive.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args, "--config", config], {
      cwd: ROOT,
      encoding: "utf8",
    });
  const snapshot = () => ({
    bytes: readFileSync(path).toString("base64"),
    wal: existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0,
  });

  it.each([
    [["report", "daily", "--from", "1900-01-01", "--to", "2100-12-31"], "report: --from 1900-01-01"],
    [["report", "daily", "--from", "0001-01-01", "--to", "9999-12-31"], "report: --from 0001-01-01"],
    [
      ["report", "daily", "--from", "2000-01-01", "--to", "2100-12-31"],
      "report: 2000-01-01 to 2100-12-31 is 36890 days",
    ],
    [["report", "monthly", "--from", "2024-02-30"], "report: --from 2024-02-30"],
    [["export", "--from", "2024-13-45"], "export: --from 2024-13-45"],
    [["export", "--from", "2025-04-02", "--to", "2025-04-01", "--output", "out.csv"], "export: --from 2025-04-02"],
  ])("%j: one line, exit 2, nothing written", (args, start) => {
    const before = snapshot();
    const r = run(args.map((a) => (a === "out.csv" ? join(dir, a) : a)));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(start);
    expect(snapshot()).toEqual(before);
    expect(existsSync(join(dir, "out.csv"))).toBe(false);
    const db = openArchiveReadOnly(path);
    expect(db.prepare("SELECT count(*) AS n FROM tariff_slots").get()).toEqual({ n: 0 });
    db.close();
  });

  it("export before the bridge ever ran: one line naming the archive's path, and no file made", () => {
    const missing = join(dir, "none.json");
    writeFileSync(
      missing,
      JSON.stringify({
        archive: { path: join(dir, "never.sqlite") },
        meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }],
      }),
    );
    const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", "export", "--config", missing], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toEqual([
      `meter2mqtt: export: there is no archive at ${join(dir, "never.sqlite")} (archive.path) yet: the bridge makes it when it first runs`,
    ]);
    expect(existsSync(join(dir, "never.sqlite"))).toBe(false);
  });
});
