/**
 * Hourly energy from the archive's current intervals into Home Assistant's long-term statistics, as external
 * statistics (`meter2mqtt:<meter>_energy_import`): rows on the UTC hour with `state` (the hour's kWh) and `sum`
 * (the running total the Energy dashboard subtracts). Energy measured yesterday lands at the hours it was used.
 *
 * What was sent is recorded in the archive (statistics_imported). A sync sends from the first hour whose energy
 * differs from what was recorded (new hours, or a revised day) to the newest hour, with the sums recomputed from
 * there; the sum carried in is the one Home Assistant holds for the hour before, so an adjustment made in HA is kept.
 * Hours recorded as sent that HA no longer has (a database restored from an older backup) are sent again.
 * A meter whose intervals carry a cost (SmartHub) gets `meter2mqtt:<meter>_cost` the same way, in its currency.
 */
import type { BookedHour, HourRow } from "../../intervals/types.js";
import { type HaClient, takesMeanType } from "./ha.js";

const HOUR_MS = 3_600_000;
const WEEK_MS = 7 * 24 * HOUR_MS;
/** Rows per recorder/import_statistics call: a year of hours in nine calls, each well under HA's message limit. */
export const CHUNK_ROWS = 1000;
export const SOURCE = "meter2mqtt";

export interface StatisticTarget {
  meterId: string;
  /** What the statistic counts: energy of one direction (kWh), or the meter's cost (`<meter>_cost`, SmartHub). */
  direction: "import" | "export" | "cost";
  /** Name shown in HA's statistics pickers. */
  name: string;
  /** The unit of a cost statistic (ISO 4217, like USD); the Energy dashboard reads it as money. */
  currency?: string;
}

/** What a sync needs from the archive (the worker answers; see IntervalStore). */
export interface StatisticsArchive {
  hourly(meterId: string, direction: "import" | "export"): Promise<HourRow[]>;
  /** Hours with a cost, in millionths of the currency (`microKwh` holds them); only needed for cost targets. */
  hourlyCost?(meterId: string): Promise<HourRow[]>;
  booked(statisticId: string): Promise<BookedHour[]>;
  book(statisticId: string, from: number, rows: BookedHour[], at: string): Promise<void>;
}

export interface SyncResult {
  statisticId: string;
  /** Rows sent this time; 0 when HA already had everything. */
  sent: number;
  /** First hour sent, UTC ms. */
  from?: number;
  /** Sum carried in from HA's hour before `from`, kWh. */
  base?: number;
}

/** HA's rule for external statistic ids: `<domain>:<object>`, lowercase slugs, no `__`, no `_` at either end. */
export const STATISTIC_ID = /^(?!.+__)(?!_)[\da-z_]+(?<!_):(?!_)[\da-z_]+(?<!_)$/;

export function statisticId(meterId: string, direction: "import" | "export" | "cost"): string {
  // Meter ids may hold `__` or start with `_`, which HA refuses in a statistic id.
  const object = (direction === "cost" ? `${meterId}_cost` : `${meterId}_energy_${direction}`)
    .replace(/_+/g, "_")
    .replace(/^_|_$/g, "");
  return `${SOURCE}:${object}`;
}

/** HA parses ISO 8601 with an offset; `+00:00` is what its own API writes. */
const haTime = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "+00:00");
const round6 = (micro: number): number => micro / 1e6;

/** The first local hour that is new or differs from what was sent, or undefined when nothing changed. */
export function firstDifference(local: readonly HourRow[], booked: readonly BookedHour[]): number | undefined {
  const sent = new Map(booked.map((b) => [b.hour, b.stateMicro]));
  for (const l of local) if (sent.get(l.hour) !== l.microKwh) return l.hour;
  return undefined;
}

export function metadata(target: StatisticTarget, haVersion: string): Record<string, unknown> {
  const id = statisticId(target.meterId, target.direction);
  const cost = target.direction === "cost";
  const unit = cost ? (target.currency ?? "USD") : "kWh";
  const common = { has_sum: true, name: target.name, source: SOURCE, statistic_id: id, unit_of_measurement: unit };
  // HA before 2025.11 rejects the keys it does not know; from 2026.11 it requires mean_type and unit_class.
  // Money has no unit class (HA converts no currency), so a cost statistic's is null.
  return takesMeanType(haVersion)
    ? { ...common, mean_type: 0, unit_class: cost ? null : "energy" }
    : { has_mean: false, ...common };
}

type HaRow = { start: number | string; sum?: number | null };

async function haRows(
  client: HaClient,
  id: string,
  from: number,
  to?: number,
): Promise<{ start: number; sum: number }[]> {
  const message: Record<string, unknown> = {
    type: "recorder/statistics_during_period",
    start_time: haTime(from),
    statistic_ids: [id],
    period: "hour",
    types: ["sum"],
  };
  if (to !== undefined) message.end_time = haTime(to);
  const result = await client.command<Record<string, HaRow[]>>(message);
  return (result?.[id] ?? [])
    .map((r) => ({ start: typeof r.start === "number" ? r.start : Date.parse(r.start), sum: r.sum ?? Number.NaN }))
    .filter((r) => Number.isFinite(r.start) && Number.isFinite(r.sum))
    .sort((a, b) => a.start - b.start);
}

/** Brings one statistic up to date; see the module comment. */
export async function syncStatistic(
  archive: StatisticsArchive,
  client: HaClient,
  target: StatisticTarget,
  now: () => number,
): Promise<SyncResult> {
  const id = statisticId(target.meterId, target.direction);
  const local =
    target.direction === "cost"
      ? ((await archive.hourlyCost?.(target.meterId)) ?? [])
      : await archive.hourly(target.meterId, target.direction);
  const booked = await archive.booked(id);
  if (local.length === 0) return { statisticId: id, sent: 0 };
  let from = firstDifference(local, booked);
  const lastBooked = booked.at(-1)?.hour;
  const probe = Math.min(from ?? Number.POSITIVE_INFINITY, lastBooked ?? Number.POSITIVE_INFINITY);
  if (!Number.isFinite(probe)) return { statisticId: id, sent: 0 };

  // A week before the first hour to send: the sum to continue from, and whether HA still has what we sent.
  const near = await haRows(client, id, probe - WEEK_MS);
  const have = new Set(near.map((r) => r.start));
  const lost = booked.find((b) => b.hour >= probe - WEEK_MS && !have.has(b.hour));
  if (lost && (from === undefined || lost.hour < from)) from = lost.hour;
  if (from === undefined) return { statisticId: id, sent: 0 };

  const until = from;
  let before = near.filter((r) => r.start < until).at(-1);
  const first = local[0] as HourRow;
  if (!before && first.hour < from) {
    // Our earlier hours are more than a week back (a gap in the data): find HA's last one before `from`.
    before = (await haRows(client, id, first.hour - WEEK_MS, from)).at(-1);
    // HA has none of them (its statistics were cleared): start over from our first hour.
    if (!before) from = first.hour;
  }
  const baseMicro = before ? Math.round(before.sum * 1e6) : 0;

  const rows: BookedHour[] = [];
  let sum = baseMicro;
  for (const l of local) {
    if (l.hour < from) continue;
    sum += l.microKwh;
    rows.push({ hour: l.hour, stateMicro: l.microKwh, sumMicro: sum });
  }
  const meta = metadata(target, client.haVersion);
  let sent = 0;
  try {
    for (let i = 0; i < rows.length; i += CHUNK_ROWS) {
      const chunk = rows.slice(i, i + CHUNK_ROWS);
      await client.command({
        type: "recorder/import_statistics",
        metadata: meta,
        stats: chunk.map((r) => ({ start: haTime(r.hour), state: round6(r.stateMicro), sum: round6(r.sumMicro) })),
      });
      sent += chunk.length;
    }
  } finally {
    // What HA took is recorded even when a later chunk failed: the next sync goes on from there.
    if (sent > 0) await archive.book(id, from, rows.slice(0, sent), new Date(now()).toISOString());
  }
  return { statisticId: id, sent, from, base: round6(baseMicro) };
}
