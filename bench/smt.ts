/**
 * Smart Meter Texas figures for `npm run bench` (the lead wires benchSmt into bench/run.ts):
 *   - the CSV parse rate alone (a year of daily files, parsed in memory);
 *   - a year of daily emails (365 messages, 35,040 intervals with both DST days) appended to a real Dovecot,
 *     fetched over IMAP and imported into a real archive, then sent as HA statistics to the local stand-in.
 * Prints nothing itself and asserts nothing: timings on a busy machine are figures, not pass/fail.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bus } from "../src/bus.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import { Archive } from "../src/outputs/archive/index.js";
import { archiveStatistics, StatisticsOutput } from "../src/outputs/statistics/index.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { SmtSource } from "../src/sources/smt/index.js";
import type { Logger } from "../src/util/log.js";
import { startDovecot } from "../test/helpers/dovecot.js";
import { startFakeHa } from "../test/helpers/fake-ha.js";
import { csvAttachment, SMT_SENDER, smtCsv, smtDay, smtEmail } from "../test/helpers/smt.js";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** The 365 local days of 2024-03-01 … 2025-02-28: one spring-forward and one fall-back day, 35,040 intervals. */
function yearOfDays(): string[] {
  const out: string[] = [];
  for (let t = Date.UTC(2024, 2, 1); out.length < 365; t += 86_400_000)
    out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

function parseRate(csvs: string[]): { rowsPerS: number; mbPerS: number } {
  let rows = 0;
  let bytes = 0;
  const pass = (): void => {
    for (const csv of csvs) {
      const r = parseSmtCsv(csv, { file: "bench.csv", meterId: "bench" });
      rows += r.intervals.length + r.skippedGapRows;
      bytes += csv.length;
    }
  };
  pass(); // warm-up
  rows = 0;
  bytes = 0;
  const t0 = performance.now();
  let passes = 0;
  while (performance.now() - t0 < 2000 || passes < 2) {
    pass();
    passes++;
  }
  const s = (performance.now() - t0) / 1000;
  return { rowsPerS: rows / s, mbPerS: bytes / s / 1e6 };
}

export async function benchSmt(): Promise<Record<string, string | number>> {
  const out: Record<string, string | number> = {};
  const days = yearOfDays();
  const csvs = days.map((day) => smtCsv(smtDay({ day })));
  const rate = parseRate(csvs);
  out["CSV parse rate"] = `${Math.round(rate.rowsPerS).toLocaleString("en")} rows/s (${rate.mbPerS.toFixed(1)} MB/s)`;

  const dir = mkdtempSync(join(tmpdir(), "m2m-bench-smt-"));
  let dovecot: Awaited<ReturnType<typeof startDovecot>> | undefined;
  const ha = await startFakeHa();
  const archive = new Archive({ enabled: true, path: join(dir, "a.sqlite"), interval: 0 }, { log: quiet });
  try {
    try {
      dovecot = await startDovecot();
    } catch (err) {
      out["year of emails"] = `skipped: ${(err as Error).message.split("\n")[0]}`;
      return out;
    }
    await dovecot.appendMany(
      days.map((day, i) => ({
        raw: smtEmail({ date: new Date(`${day}T17:00:00Z`), attachments: [csvAttachment(csvs[i]!)], id: day }),
        date: new Date(`${day}T17:00:00Z`),
      })),
    );
    await archive.start();
    const bus = new Bus();
    const pipeline = new IntervalPipeline(archive, bus);
    const source = new SmtSource(
      {
        id: "bench",
        type: "smt",
        timezone: "America/Chicago",
        check_at: "11:30",
        recheck_minutes: 60,
        imap: {
          host: dovecot.host,
          port: dovecot.port,
          tls: false,
          user: dovecot.user,
          password: dovecot.password,
          sender: SMT_SENDER,
          mailbox: "INBOX",
        },
      },
      bus,
      { intervals: pipeline, log: quiet },
    );
    const t0 = performance.now();
    const r = await source.checkNow();
    const s = (performance.now() - t0) / 1000;
    await source.stop();
    if (r.error) throw new Error(r.error);
    out["year of emails fetched + imported"] =
      `${r.emails} emails, ${r.intervals.toLocaleString("en")} intervals in ${s.toFixed(2)} s (${Math.round(r.intervals / s).toLocaleString("en")} intervals/s)`;

    const statistics = new StatisticsOutput(
      { url: ha.url, token: ha.token },
      archiveStatistics(archive),
      [{ id: "bench" }],
      { log: quiet },
    );
    const t1 = performance.now();
    const sent = await statistics.sync(["bench"]);
    const s1 = (performance.now() - t1) / 1000;
    out["year of hourly statistics to HA stand-in"] =
      `${sent.reduce((a, x) => a + x.sent, 0).toLocaleString("en")} rows in ${s1.toFixed(2)} s`;
    return out;
  } finally {
    await archive.stop().catch(() => {});
    await dovecot?.stop();
    await ha.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Run alone: `npx tsx bench/smt.ts`.
if (import.meta.url === `file://${process.argv[1]}`) {
  benchSmt().then(
    (r) => {
      for (const [k, v] of Object.entries(r)) console.log(`smt ${k}`.padEnd(52), v);
      process.exit(0);
    },
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
