/**
 * `meter2mqtt import` streams a CSV and stores it a chunk at a time: the archive must end up the same as with one
 * chunk, the file be recorded as imported once (after its last chunk, with the counts of the whole file), every
 * rejected row be reported with its line, and a second import change nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { importFile } from "../src/sources/smt/files.js";
import { smtCsv, smtDay } from "./helpers/smt.js";

const dir = mkdtempSync(join(tmpdir(), "m2m-smt-stream-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DAYS = ["2024-11-01", "2024-11-02", "2024-11-03", "2024-11-04"];
const target = { meterId: "texas", timezone: "America/Chicago" };

async function imported(name: string, chunk: number, times = 1) {
  const csv = join(dir, "days.csv");
  const rows = DAYS.flatMap((day) => smtDay({ day, channels: ["Consumption", "Surplus Generation"] }));
  // A bad row in the middle: reported by line, the others stored.
  const text = smtCsv(rows).split("\n");
  text.splice(300, 0, "'10443720000000001,11/02/2024,11/03/2024 07:41:02,10:00,10:15,1..2,A,Consumption");
  // A row the CSV reader takes but the archive's value check refuses (a day years ahead): reported by line too.
  text.splice(500, 0, "'10443720000000001,11/05/2099,11/06/2099 07:41:02,10:00,10:15,0.25,A,Consumption");
  writeFileSync(csv, text.join("\n"));
  const path = join(dir, `${name}.sqlite`);
  const archive = new Archive({ enabled: true, path, interval: 0 });
  await archive.start();
  const pipeline = new IntervalPipeline(archive, new Bus());
  const reports = [];
  for (let i = 0; i < times; i++) reports.push(await importFile(pipeline, target, csv, { chunk }));
  await archive.stop();
  const db = openArchiveReadOnly(path);
  const current = db
    .prepare("SELECT start, direction, energy_kwh, quality FROM intervals_current ORDER BY start, direction")
    .all();
  const imports = db.prepare("SELECT origin, intervals, revisions, errors FROM interval_imports").all();
  db.close();
  return { reports, current, imports };
}

describe("SMT import in chunks", () => {
  it("stores the same intervals as one chunk, records the file once, and a second import changes nothing", async () => {
    const whole = await imported("whole", 1_000_000);
    const chunked = await imported("chunked", 37, 2);
    expect(whole.current.length).toBe(2 * (96 + 96 + 100 + 96));
    expect(chunked.current).toEqual(whole.current);
    const [first, again] = chunked.reports;
    expect(first?.intervals).toBe(whole.reports[0]?.intervals);
    expect(first?.revisions).toBe(whole.current.length);
    expect(first?.errors.map((e) => e.line)).toEqual([301, 501]);
    expect(first?.errors[1]?.reason).toMatch(/^texas: interval not stored, /);
    expect(again?.revisions).toBe(0);
    // The file is recorded once, with what the whole of it held, however many parts it was stored in.
    expect(chunked.imports).toHaveLength(1);
    expect(chunked.imports).toEqual([
      { origin: expect.any(String), intervals: whole.current.length, revisions: whole.current.length, errors: 2 },
    ]);
    expect(whole.imports).toEqual([{ ...(chunked.imports[0] as object), origin: expect.any(String) }]);
  });
});
