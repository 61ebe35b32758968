/**
 * `meter2mqtt import [--config FILE] [--meter ID] [--mail] FILE|DIR…`: CSVs downloaded from the Smart Meter Texas
 * portal into the archive (idempotent: importing a file again changes nothing), optionally a check of the
 * mailbox now, then Home Assistant's statistics brought up to date when they are configured.
 */
import { parseArgs } from "node:util";
import { addonOptionsFound, loadAddonConfig } from "../../addon/index.js";
import { Bus } from "../../bus.js";
import { ConfigError, loadConfig } from "../../config/load.js";
import type { SmtMeterConfig } from "../../config/schema.js";
import { IntervalPipeline } from "../../intervals/pipeline.js";
import { Archive } from "../../outputs/archive/index.js";
import { archiveStatistics, StatisticsOutput } from "../../outputs/statistics/index.js";
import { IMPORT_USAGE } from "../../usage.js";
import { Progress } from "../../util/progress.js";
import { csvFiles, importFile } from "./files.js";
import { SmtSource } from "./index.js";

export { IMPORT_USAGE };

export async function runImport(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      meter: { type: "string", short: "m" },
      mail: { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length === 0 && !values.mail) {
    process.stderr.write(`import: name CSV files or folders, or --mail\n\n${IMPORT_USAGE}\n`);
    return 2;
  }
  const { config } =
    values.config === undefined && addonOptionsFound() ? await loadAddonConfig() : loadConfig(values.config);
  const smt = config.meters.filter((m): m is SmtMeterConfig => m.type === "smt");
  const meter = values.meter ? smt.find((m) => m.id === values.meter) : smt.length === 1 ? smt[0] : undefined;
  if (!meter)
    throw new ConfigError(
      values.meter
        ? `import: no Smart Meter Texas meter "${values.meter}" in the configuration (smt meters: ${smt.map((m) => m.id).join(", ") || "none"})`
        : `import: ${smt.length === 0 ? "configure a meter of type smt" : "pass --meter, there are several smt meters"}`,
    );
  if (!config.archive.enabled) throw new ConfigError("import: the archive is disabled (archive.enabled: false)");
  if (values.mail && !meter.imap) throw new ConfigError(`import --mail: meter ${meter.id} has no imap settings`);

  const files = await csvFiles(positionals).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(`import: cannot read ${err.path ?? ""}: ${err.code ?? err.message}`);
  });
  const archive = new Archive(config.archive);
  await archive.start();
  archive.upsertMeter({ id: meter.id, name: meter.name, type: meter.type });
  const bus = new Bus();
  const pipeline = new IntervalPipeline(archive, bus);
  const totals = { files: 0, intervals: 0, revisions: 0, rejected: 0, failed: 0 };
  let code = 0;
  try {
    const progress = new Progress(process.stderr, files.length, "files");
    const target = { meterId: meter.id, timezone: meter.timezone, esiid: meter.esiid };
    for (const file of files) {
      try {
        const r = await importFile(pipeline, target, file);
        totals.files++;
        totals.intervals += r.intervals;
        totals.revisions += r.revisions;
        totals.rejected += r.errors.length;
        for (const e of r.errors) progress.print(`rejected ${e.file}:${e.line}: ${e.reason}`);
        for (const w of r.warnings) progress.print(`warning ${w}`);
      } catch (err) {
        totals.failed++;
        progress.print(`cannot import ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      progress.tick(file);
    }
    progress.finish();
    if (files.length > 0)
      process.stdout.write(
        `imported ${totals.files} file(s) for ${meter.id}: ${totals.intervals} intervals, ${totals.revisions} new revision(s), ${totals.rejected} row(s) rejected\n`,
      );
    if (values.mail) {
      const source = new SmtSource(meter, bus, { intervals: pipeline });
      const r = await source.checkNow();
      await source.stop();
      if (r.error) {
        process.stderr.write(`mail: ${r.error}\n`);
        code = 1;
      } else
        process.stdout.write(
          `mail: ${r.emails} email(s), ${r.intervals} intervals, ${r.revisions} new revision(s), ${r.rejectedRows} row(s) rejected\n`,
        );
    }
    const ha = config.homeassistant;
    if (ha.statistics && ha.url && ha.token) {
      const statistics = new StatisticsOutput({ url: ha.url, token: ha.token }, archiveStatistics(archive), [
        { id: meter.id, name: meter.name },
      ]);
      try {
        for (const r of await statistics.sync([meter.id]))
          process.stdout.write(`statistics ${r.statisticId}: ${r.sent} hour(s) sent\n`);
      } catch (err) {
        process.stderr.write(`statistics not sent: ${(err as Error).message}\n`);
        code = 1;
      }
    }
  } finally {
    await archive.stop();
  }
  return totals.failed > 0 ? 1 : code;
}
