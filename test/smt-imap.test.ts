/**
 * Smart Meter Texas emails from a real Dovecot IMAP server on loopback into a real archive: normal and DST days, a
 * revised day, a surplus-generation day, another sender, a non-CSV attachment, a malformed row, the same email
 * twice; then the mailbox cursor, moving and flagging, TLS with the server's own certificate, a wrong password.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import type { SmtMeterConfig } from "../src/config/schema.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { SmtSource } from "../src/sources/smt/index.js";
import { type Dovecot, startDovecot } from "./helpers/dovecot.js";
import { recordingLog } from "./helpers/log.js";
import { csvAttachment, expectedTotals, type Row, SMT_SENDER, smtCsv, smtDay, smtEmail } from "./helpers/smt.js";

const ZONE = "America/Chicago";
const morning = (day: string): Date => new Date(`${day}T16:05:00Z`);

function meter(d: Dovecot, extra: Partial<NonNullable<SmtMeterConfig["imap"]>> = {}, id = "texas"): SmtMeterConfig {
  return {
    id,
    type: "smt",
    timezone: ZONE,
    check_at: "11:30",
    recheck_minutes: 60,
    imap: {
      host: d.host,
      port: d.port,
      tls: d.tls,
      user: d.user,
      password: d.password,
      sender: SMT_SENDER,
      mailbox: "INBOX",
      ...extra,
    },
  };
}

describe("Smart Meter Texas over IMAP", () => {
  let dir: string;
  let dovecot: Dovecot;
  let archive: Archive;
  let pipeline: IntervalPipeline;
  const bus = new Bus();
  const statuses: string[] = [];
  bus.subscribe("test", "reading", (r) => {
    if (typeof r.values.import_status === "string") statuses.push(r.values.import_status);
  });
  const db = () => openArchiveReadOnly(join(dir, "a.sqlite"));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-smt-imap-"));
    dovecot = await startDovecot();
    archive = new Archive({ enabled: true, path: join(dir, "a.sqlite"), interval: 0 });
    await archive.start();
    pipeline = new IntervalPipeline(archive, bus);
  });
  afterAll(async () => {
    await archive?.stop();
    await dovecot?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("imports a mailbox of daily emails; totals equal the CSV sums exactly; odd emails are skipped or reported", async () => {
    const days: { day: string; rows: Row[] }[] = [];
    const send = async (
      day: string,
      rows: Row[],
      extra: Parameters<typeof smtEmail>[0] = { date: morning(day), attachments: [] },
    ) => {
      const email = smtEmail({
        ...extra,
        date: extra.date ?? morning(day),
        attachments: [csvAttachment(smtCsv(rows)), ...extra.attachments],
      });
      return dovecot.append(email, { date: morning(day) });
    };
    const add = async (day: string, channels?: Row["channel"][]) => {
      const rows = smtDay({ day, channels });
      days.push({ day, rows });
      return send(day, rows);
    };
    const firstUid = await add("2024-03-09");
    await add("2024-03-10"); // spring forward
    await add("2024-11-02");
    await add("2024-11-03"); // fall back
    await add("2024-06-15", ["Consumption", "Surplus Generation"]);
    // Another sender with a perfectly good CSV: not ours.
    await dovecot.append(
      smtEmail({
        from: "billing@example-rep.test",
        date: morning("2024-06-16"),
        attachments: [csvAttachment(smtCsv(smtDay({ day: "2024-06-16" })))],
      }),
    );
    // The sender, but only a PDF.
    await dovecot.append(
      smtEmail({
        date: morning("2024-06-17"),
        attachments: [{ filename: "notice.pdf", contentType: "application/pdf", content: "%PDF-1.4 x" }],
      }),
    );
    // A malformed row on line 31 of the attachment, next to a PDF that is ignored.
    const bad = smtDay({ day: "2024-06-18" });
    const badCsv = smtCsv(bad).split("\n");
    badCsv[30] = badCsv[30]!.replace(/,(\.?\d+(?:\.\d+)?),A,/, ",1..2,A,");
    const badUid = await dovecot.append(
      smtEmail({
        date: morning("2024-06-19"),
        attachments: [
          csvAttachment(badCsv.join("\n")),
          { filename: "info.pdf", contentType: "application/pdf", content: "%PDF" },
        ],
      }),
    );
    days.push({ day: "2024-06-18", rows: bad.filter((_, i) => i !== 29) });
    // The first email again (forwarded to the same box, say).
    const dupUid = await send("2024-03-09", days[0]!.rows);

    const rec = recordingLog();
    const source = new SmtSource(meter(dovecot), bus, { intervals: pipeline, log: rec.log });
    const report = await source.checkNow();
    await source.stop();
    expect(report.error).toBeUndefined();
    // Five days, the malformed one, and the duplicate: 7 emails with CSVs.
    expect(report.emails).toBe(7);
    expect(report.rejectedRows).toBe(1);
    expect(report.intervals).toBe(96 + 92 + 96 + 100 + 192 + 95 + 96);
    // The duplicate brought nothing new.
    expect(report.revisions).toBe(96 + 92 + 96 + 100 + 192 + 95);
    const warnings = rec.at("warn").join("\n");
    expect(warnings).toContain(`INBOX/${badUid}/IntervalData.csv:31: USAGE_KWH "1..2" is not a number of kWh`);
    expect(warnings).toMatch(/has no CSV attachment \(only notice\.pdf\); skipped/);
    expect(statuses.at(-1)).toBe("ok, 1 row(s) rejected");

    const d = db();
    const { hourly, daily } = expectedTotals(days);
    const dayRows = d
      .prepare("SELECT day, import_kwh, export_kwh FROM intervals_daily WHERE meter_id = 'texas' ORDER BY day")
      .all();
    expect(dayRows).toEqual(
      days
        .map(({ day }) => ({
          day,
          import_kwh: daily.get(day)!.import / 1000,
          export_kwh: day === "2024-06-15" ? daily.get(day)!.export / 1000 : null,
        }))
        .sort((a, b) => (a.day < b.day ? -1 : 1)),
    );
    const hours = d
      .prepare("SELECT hour, import_kwh FROM intervals_hourly WHERE meter_id = 'texas' ORDER BY hour")
      .all() as {
      hour: string;
      import_kwh: number;
    }[];
    expect(hours.length).toBe(hourly.size);
    for (const h of hours) expect(h.import_kwh, h.hour).toBe(hourly.get(h.hour)!.import / 1000);
    // Nothing from the other sender's 2024-06-16.
    expect(d.prepare("SELECT count(*) AS n FROM interval_revisions WHERE day = '2024-06-16'").get()).toEqual({ n: 0 });
    const cursor = d.prepare("SELECT account, mailbox, uidvalidity, last_uid FROM imap_cursors").get() as Record<
      string,
      unknown
    >;
    expect(cursor).toMatchObject({ account: `${dovecot.user}@127.0.0.1`, mailbox: "INBOX", last_uid: dupUid });
    expect(Number(cursor.uidvalidity)).toBeGreaterThan(0);
    expect(d.prepare("SELECT count(*) AS n FROM interval_imports").get()).toEqual({ n: 7 });
    expect(firstUid).toBe(1);
    d.close();
  });

  it("reads only what is new; a revised day becomes current with the old values kept as history", async () => {
    const rec = recordingLog();
    const source = new SmtSource(meter(dovecot), bus, { intervals: pipeline, log: rec.log });
    expect(await source.checkNow()).toMatchObject({ emails: 0, intervals: 0 });
    const original = smtDay({ day: "2024-11-02" });
    const revised = smtDay({
      day: "2024-11-02",
      revision: "11/05/2024 09:12:40",
      override: (_c, i) => (i === 3 ? "3.21" : undefined),
    });
    await dovecot.append(
      smtEmail({ date: new Date("2024-11-05T16:00:00Z"), attachments: [csvAttachment(smtCsv(revised))] }),
    );
    const r = await source.checkNow();
    await source.stop();
    expect(r).toMatchObject({ emails: 1, intervals: 96, revisions: 1 });
    const d = db();
    expect(
      d
        .prepare(
          "SELECT energy_kwh, revisions FROM intervals_current WHERE meter_id = 'texas' AND start = '2024-11-02T05:45:00.000Z'",
        )
        .get(),
    ).toEqual({ energy_kwh: 3.21, revisions: 2 });
    const { daily } = expectedTotals([{ day: "2024-11-02", rows: revised }]);
    expect(
      d.prepare("SELECT import_kwh FROM intervals_daily WHERE meter_id = 'texas' AND day = '2024-11-02'").get(),
    ).toEqual({
      import_kwh: daily.get("2024-11-02")!.import / 1000,
    });
    expect(original[3]!.kwh).not.toBe("3.21");
    d.close();
  });

  it("reads the whole mailbox again after a UIDVALIDITY change, and that changes nothing", async () => {
    await pipeline.ingest({
      meterId: "texas",
      timezone: ZONE,
      intervals: [],
      receivedAt: Date.now(),
      cursor: {
        meterId: "texas",
        account: `${dovecot.user}@127.0.0.1`,
        mailbox: "INBOX",
        uidValidity: "1",
        lastUid: 99,
      },
    });
    const rec = recordingLog();
    const source = new SmtSource(meter(dovecot), bus, { intervals: pipeline, log: rec.log });
    const r = await source.checkNow();
    await source.stop();
    expect(r.emails).toBe(8);
    expect(r.revisions).toBe(0);
    expect(rec.at("warn").join("\n")).toMatch(/renumbered by the server \(new UIDVALIDITY\)/);
  });

  it("a wrong password is reported as such, without the password", async () => {
    const rec = recordingLog();
    const source = new SmtSource(meter(dovecot, { password: "not-the-password-42" }), bus, {
      intervals: pipeline,
      log: rec.log,
    });
    const r = await source.checkNow();
    await source.stop();
    expect(r.error).toMatch(/refused the login of meter .*app password/);
    expect(statuses.at(-1)).toMatch(/^error: /);
    const all = rec.lines.map((l) => l.text).join("\n") + statuses.join("\n");
    expect(all).not.toContain("not-the-password-42");
  });

  it("over TLS with the server's own certificate: moves imported emails to a folder, or flags them", async () => {
    const tls = await startDovecot({ tls: true });
    try {
      await tls.createMailbox("Processed");
      const rows = smtDay({ day: "2025-02-10" });
      await tls.append(smtEmail({ date: morning("2025-02-11"), attachments: [csvAttachment(smtCsv(rows))] }));
      const moved = new SmtSource(meter(tls, { ca: tls.ca, move_to: "Processed" }, "tls_move"), bus, {
        intervals: pipeline,
        log: recordingLog().log,
      });
      expect(await moved.checkNow()).toMatchObject({ emails: 1, intervals: 96 });
      await moved.stop();
      expect(await tls.list("INBOX")).toEqual([]);
      expect(await tls.list("Processed")).toHaveLength(1);

      await tls.append(
        smtEmail({ date: morning("2025-02-12"), attachments: [csvAttachment(smtCsv(smtDay({ day: "2025-02-11" })))] }),
      );
      const flagged = new SmtSource(meter(tls, { ca: tls.ca, flag: "$Meter2mqtt" }, "tls_flag"), bus, {
        intervals: pipeline,
        log: recordingLog().log,
      });
      expect(await flagged.checkNow()).toMatchObject({ emails: 1 });
      await flagged.stop();
      expect((await tls.list("INBOX"))[0]!.flags).toContain("$Meter2mqtt");

      // Without trusting the certificate the connection is refused.
      const untrusted = new SmtSource(meter(tls, {}, "tls_untrusted"), bus, {
        intervals: pipeline,
        log: recordingLog().log,
      });
      const r = await untrusted.checkNow();
      await untrusted.stop();
      expect(r.error).toMatch(/TLS|certificate|self.signed/i);
    } finally {
      await tls.stop();
    }
  });
});
