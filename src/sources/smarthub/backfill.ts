/**
 * `meter2mqtt backfill [--config FILE] [--meter ID] --start YYYY-MM-DD --end YYYY-MM-DD`: a SmartHub meter's history
 * from the portal into the archive, in windows of at most 45 days, with a progress bar; then (after each window)
 * Home Assistant's statistics brought up to date when they are configured.
 *
 * Each window is stored with its origin in one transaction, so a backfill that was stopped (killed, a network that
 * went away, a login refused halfway) is run again with the same dates and goes on with the first window it had not
 * finished. Windows reaching into the last refetch_days days are always read again: the co-op may still revise them.
 */
import { parseArgs } from "node:util";
import { addonOptionsFound, loadAddonConfig } from "../../addon/index.js";
import { Bus } from "../../bus.js";
import { ConfigError, loadConfig } from "../../config/load.js";
import type { SmarthubMeterConfig } from "../../config/schema.js";
import { IntervalPipeline } from "../../intervals/pipeline.js";
import { Archive } from "../../outputs/archive/index.js";
import { archiveStatistics, StatisticsOutput } from "../../outputs/statistics/index.js";
import { BACKFILL_USAGE } from "../../usage.js";
import { type Clock, systemClock } from "../../util/clock.js";
import { createLogger } from "../../util/log.js";
import { Progress } from "../../util/progress.js";
import type { SmarthubClientOptions } from "./client.js";
import { SmarthubError } from "./client.js";
import { clientFor, resolveTarget } from "./index.js";
import { addDays, dayIn, importWindow, splitWindows, windowOrigin } from "./windows.js";

export { BACKFILL_USAGE };

const DAY = /^\d{4}-\d{2}-\d{2}$/;

export interface BackfillDeps {
  clock?: Clock;
  /** Client settings beyond the configuration (tests shorten the delays). */
  client?: Partial<SmarthubClientOptions>;
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  err?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

function validDay(day: string | undefined, flag: string): string {
  if (day === undefined) throw new ConfigError(`backfill: ${flag} YYYY-MM-DD is required\n\n${BACKFILL_USAGE}`);
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (!DAY.test(day) || !Number.isFinite(ms) || new Date(ms).toISOString().slice(0, 10) !== day)
    throw new ConfigError(`backfill: ${flag} expects a date YYYY-MM-DD (got ${JSON.stringify(day)})`);
  return day;
}

export async function runBackfill(args: string[], deps: BackfillDeps = {}): Promise<number> {
  const out = deps.out ?? process.stdout;
  const err = deps.err ?? process.stderr;
  const clock = deps.clock ?? systemClock;
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      meter: { type: "string", short: "m" },
      start: { type: "string" },
      end: { type: "string" },
    },
    strict: true,
  });
  const start = validDay(values.start, "--start");
  let end = validDay(values.end, "--end");
  if (end < start) throw new ConfigError(`backfill: --end ${end} is before --start ${start}`);

  const { config } =
    values.config === undefined && addonOptionsFound() ? await loadAddonConfig() : loadConfig(values.config);
  const hubs = config.meters.filter((m): m is SmarthubMeterConfig => m.type === "smarthub");
  const meter = values.meter ? hubs.find((m) => m.id === values.meter) : hubs.length === 1 ? hubs[0] : undefined;
  if (!meter)
    throw new ConfigError(
      values.meter
        ? `backfill: no SmartHub meter "${values.meter}" in the configuration (smarthub meters: ${hubs.map((m) => m.id).join(", ") || "none"})`
        : `backfill: ${hubs.length === 0 ? "configure a meter of type smarthub" : "pass --meter, there are several smarthub meters"}`,
    );
  if (!config.archive.enabled) throw new ConfigError("backfill: the archive is disabled (archive.enabled: false)");

  const today = dayIn(clock.now(), meter.timezone);
  if (end > today) {
    err.write(`backfill: the portal has nothing after today; reading up to ${today}\n`);
    end = today;
    if (end < start) throw new ConfigError(`backfill: --start ${start} is in the future`);
  }
  // Days the co-op may still revise: read again however often the backfill runs.
  const settled = addDays(today, -meter.refetch_days - 1);

  const log = createLogger(`smarthub:${meter.id}`);
  const client = clientFor(meter, { clock, log, ...deps.client });
  const archive = new Archive(config.archive);
  await archive.start();
  archive.upsertMeter({ id: meter.id, name: meter.name, type: meter.type });
  const pipeline = new IntervalPipeline(archive, new Bus(), { clock });
  const ha = config.homeassistant;
  const statistics =
    ha.statistics && ha.url && ha.token
      ? new StatisticsOutput({ url: ha.url, token: ha.token }, archiveStatistics(archive), [
          { id: meter.id, name: meter.name, currency: meter.currency },
        ])
      : undefined;
  const totals = { windows: 0, skipped: 0, intervals: 0, revisions: 0, rejected: 0, importKwh: 0, cost: 0 };
  const sent = new Map<string, number>();
  let statisticsFailed = false;
  let code = 0;
  /** HA being away does not stop the backfill: the archive is what matters, HA catches up at the next sync. */
  const syncStatistics = async (print: (line: string) => void): Promise<void> => {
    if (!statistics || statisticsFailed) return;
    try {
      for (const s of await statistics.sync([meter.id]))
        sent.set(s.statisticId, (sent.get(s.statisticId) ?? 0) + s.sent);
    } catch (e) {
      statisticsFailed = true;
      code = 1;
      print(`statistics not sent: ${(e as Error).message}; the bridge (or the next backfill) sends them later`);
    }
  };
  try {
    const { target } = await resolveTarget(meter, client, log);
    const windows = splitWindows(start, end);
    out.write(
      `backfill ${meter.id}: ${start} to ${end} from ${client.host} (account ${target.account}, location ${target.serviceLocation}), ${windows.length} window(s)\n`,
    );
    const progress = new Progress(err, windows.length, "windows");
    for (const w of windows) {
      const label = `${w.from}…${w.to}`;
      if (w.to <= settled && (await pipeline.imported(meter.id, windowOrigin(target, w)))) {
        totals.skipped++;
        progress.tick(`${label} imported before`);
        continue;
      }
      const r = await importWindow(client, pipeline, target, w, () => clock.now());
      totals.windows++;
      totals.intervals += r.intervals;
      totals.revisions += r.revisions;
      totals.rejected += r.rejected.length;
      totals.importKwh += r.importKwh;
      totals.cost += r.cost;
      for (const why of r.rejected.slice(0, 5)) progress.print(`rejected ${why}`);
      if (r.rejected.length > 5) progress.print(`… and ${r.rejected.length - 5} more rejected point(s)`);
      // After each window, so a backfill stopped halfway leaves HA with what the archive has, and a resumed one
      // sends only the hours after it.
      if (r.revisions > 0) await syncStatistics((line) => progress.print(line));
      progress.tick(`${label}: ${r.intervals} intervals, ${r.revisions} new`);
    }
    progress.finish();
    // Hours stored by a run that was stopped before it could send them.
    await syncStatistics((line) => err.write(`${line}\n`));
  } catch (e) {
    code = 1;
    const message = e instanceof SmarthubError ? e.message : (e as Error).message;
    err.write(`\nbackfill stopped: ${message}\n`);
    if (totals.windows > 0 || totals.skipped > 0)
      err.write("what was fetched is kept; run the same command again to go on from there\n");
  } finally {
    client.close();
    await archive.stop();
  }
  out.write(
    `backfill ${meter.id}: ${totals.windows} window(s) fetched, ${totals.skipped} imported before; ${totals.intervals} intervals, ${totals.revisions} new revision(s), ${totals.rejected} point(s) rejected; ${round3(totals.importKwh)} kWh imported${totals.cost ? `, ${round3(totals.cost)} ${meter.currency}` : ""}\n`,
  );
  for (const [id, n] of sent) out.write(`statistics ${id}: ${n} hour(s) sent\n`);
  return code;
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;
