/**
 * A SmartHub usage poll answer (`POST /services/secured/utility-usage/poll`, status COMPLETE) → Intervals, as a
 * pure function of the JSON and the co-op's time zone.
 *
 * The answer, as recorded at Cobb EMC and described for NOVEC (see README, "NISC SmartHub"):
 *   {"status": "COMPLETE", "data": {"ELECTRIC": [entry…]}}
 *   entry: {type: USAGE | COST | TIME_OF_USE | …, timeFrame, meters: [{meterNumber, seriesId, flowDirection,
 *           isNetMeter}], series: [{name: <seriesId>, meterNumber, data: [{x, y}]}], xToOrderedInterval: {"<x>":
 *           {interval: {start, end}}}, estimatedSeries, meterToChartData: {"Meter{… flowDirection=FORWARD …
 *           seriesId='…'}": points}}
 *
 * - `x` is the co-op's wall clock written as if it were UTC (a request for local midnight EDT, 04:00Z, answers
 *   with x = 00:00Z), or in newer portals a label like "2026-03-26 14:00" whose xToOrderedInterval entry holds
 *   that wall time. Each point is mapped to the instant it means in the co-op's zone: the hour clocks skip in
 *   spring has no instant (a point there carries energy of the hour after it and is added to it; an empty one is
 *   dropped), and the hour they repeat in autumn comes as two points with the same x, daylight time first.
 * - A point lasts until the next one: 15 or 60 minutes (a co-op answers HOURLY with either), or a day. The length
 *   is xToOrderedInterval's when the portal gives it, else the most common spacing of the points.
 * - `y` is kWh in the interval for USAGE, money for COST. Flow directions: FORWARD is energy taken from the grid,
 *   RETURN energy delivered to it, NET both (negative is export). A location with a NET meter also lists the
 *   FORWARD channel of the same meter, which is not what crossed the grid: only NET is read then.
 * - TIME_OF_USE repeats USAGE split by rate period, and is not read.
 */
import type { IANAZone } from "luxon";
import { wallToUtc, zoneOf } from "../../intervals/time.js";
import { checkTime, checkValue } from "../../model/plausible.js";
import type { Interval } from "../../model/types.js";

export const SMARTHUB_TIMEZONE = "America/New_York";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

export type Flow = "FORWARD" | "NET" | "RETURN";
const FLOWS = new Set<string>(["FORWARD", "NET", "RETURN"]);

export interface SmarthubInterval extends Interval {
  /** The portal's series (meter number) the energy came from; several when they were added up. */
  series: string[];
}

export interface DecodeResult {
  /** status of the answer: COMPLETE, PENDING, FAILED… ("" when it has none). */
  status: string;
  intervals: SmarthubInterval[];
  /** Points or series that could not be used, each with the reason. */
  rejected: string[];
  /** What was read or left out on purpose (no rejection): the minutes per point, series ignored and why. */
  notes: string[];
  /** Meter numbers of the series read. */
  meters: string[];
  /** Whether the answer has COST entries (not every co-op gives cost). */
  hasCost: boolean;
}

export interface DecodeOptions {
  meterId: string;
  timezone?: string;
  /** What the shared value check (src/model/plausible.ts) takes as now; the system clock by default. */
  now?: number;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined =>
  typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;

interface MeterInfo {
  key: string;
  meterNumber: string;
  flow: Flow | undefined;
  /** The flowDirection as written, for the message when it is not one we know. */
  flowText: string | undefined;
}

/** One point read off a series, before it is placed in time. */
interface Point {
  series: string;
  flow: Flow;
  /** Wall clock as if UTC, ms. */
  wall: number;
  /** Wall clock end when the portal gives it (xToOrderedInterval). */
  wallEnd?: number;
  y: number | null;
  estimated: boolean;
  where: string;
}

/** A label "2026-03-26 14:00" (or with seconds, or ISO with T) read as a wall time. */
function parseLabel(label: string): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2})?$/.exec(label.trim());
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}T${m[2]}${m[3] ?? ":00"}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

/** flowDirection of a seriesId from meterToChartData's keys (Java's toString of the meter), where meters[] is scrubbed. */
function flowsFromChartKeys(entry: Obj): Map<string, string> {
  const out = new Map<string, string>();
  const chart = entry.meterToChartData;
  if (!isObject(chart)) return out;
  for (const key of Object.keys(chart)) {
    const flow = /flowDirection=([A-Z_]+)/.exec(key)?.[1];
    const series = /seriesId='([^']*)'/.exec(key)?.[1] ?? /meterNumber='([^']*)'/.exec(key)?.[1];
    if (flow && series) out.set(series, flow);
  }
  return out;
}

function metersOf(entry: Obj): Map<string, MeterInfo> {
  const fromChart = flowsFromChartKeys(entry);
  const out = new Map<string, MeterInfo>();
  for (const m of Array.isArray(entry.meters) ? entry.meters : []) {
    if (!isObject(m)) continue;
    const meterNumber = text(m.meterNumber) ?? text(m.seriesId);
    const key = text(m.seriesId) ?? meterNumber;
    if (!key || !meterNumber) continue;
    let flowText = text(m.flowDirection);
    if (!flowText || !FLOWS.has(flowText)) flowText = fromChart.get(key) ?? flowText;
    out.set(key, {
      key,
      meterNumber,
      flowText,
      flow: flowText && FLOWS.has(flowText) ? (flowText as Flow) : flowText === undefined ? "FORWARD" : undefined,
    });
  }
  return out;
}

/** The x values the portal marks as estimated for a series, whatever container it uses (map or list of series). */
function estimatedOf(entry: Obj, key: string): Set<string> {
  const out = new Set<string>();
  const est = entry.estimatedSeries;
  const take = (points: unknown): void => {
    const list = isObject(points) && Array.isArray(points.data) ? points.data : points;
    if (!Array.isArray(list)) return;
    for (const p of list) {
      const x = isObject(p) ? text(p.x) : text(p);
      if (x !== undefined) out.add(x);
    }
  };
  if (isObject(est)) take(est[key]);
  else if (Array.isArray(est))
    for (const s of est) if (isObject(s) && (text(s.name) === key || text(s.meterNumber) === key)) take(s);
  return out;
}

/** The most frequent value (the smaller one of a tie), or undefined for none. */
function mode(values: number[]): number | undefined {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: number | undefined;
  let bestCount = 0;
  for (const [v, c] of counts)
    if (c > bestCount || (c === bestCount && best !== undefined && v < best)) [best, bestCount] = [v, c];
  return best;
}

/**
 * The most common spacing of the distinct wall times, or undefined with fewer than two. Spacings of whole quarter
 * hours count first: a stray point off the grid would otherwise win a tie in a short answer.
 */
function commonSpacing(walls: number[]): number | undefined {
  const sorted = [...new Set(walls)].sort((a, b) => a - b);
  const diffs = sorted.slice(1).map((w, i) => w - (sorted[i] as number));
  const round = diffs.filter((d) => d % (15 * MINUTE_MS) === 0);
  return mode(round.length > 0 ? round : diffs);
}

const FRAME_LENGTH: Record<string, number> = { HOURLY: HOUR_MS, DAILY: DAY_MS };

interface EntryPoints {
  points: Point[];
  length?: number;
}

/** The points of one entry's series that are read, with the length of a point. */
function entryPoints(
  entry: Obj,
  label: string,
  meters: Map<string, MeterInfo>,
  rejected: string[],
  notes: string[],
  now: number,
): EntryPoints {
  const xmap = isObject(entry.xToOrderedInterval) ? entry.xToOrderedInterval : {};
  const series = (Array.isArray(entry.series) ? entry.series : []).filter(isObject);
  const netPresent = [...meters.values()].some((m) => m.flow === "NET");
  const points: Point[] = [];
  const lengths: number[] = [];
  for (const s of series) {
    const key = text(s.name) ?? text(s.meterNumber) ?? "";
    const meter = meters.get(key) ?? meters.get(text(s.meterNumber) ?? "");
    // A portal that lists no meters (a plain mock, an older co-op) has FORWARD usage.
    const flow: Flow | undefined = meter ? meter.flow : meters.size === 0 ? "FORWARD" : undefined;
    const name = meter?.key ?? key;
    if (!meter && meters.size > 0) {
      rejected.push(`${label} series "${key}": not among the entry's meters (${[...meters.keys()].join(", ")})`);
      continue;
    }
    if (!flow) {
      rejected.push(`${label} series "${name}": unknown flowDirection "${meter?.flowText ?? ""}"`);
      continue;
    }
    if (netPresent && flow === "FORWARD") {
      notes.push(`${label} series "${name}" (FORWARD) not read: the NET meter gives what crossed the grid`);
      continue;
    }
    const estimated = estimatedOf(entry, name);
    const data = Array.isArray(s.data) ? s.data : [];
    data.forEach((p, i) => {
      const where = `${label} series "${name}" point ${i}`;
      if (!isObject(p)) {
        rejected.push(`${where}: not an object`);
        return;
      }
      const xText = text(p.x);
      const slot = xText !== undefined ? xmap[xText] : undefined;
      const interval = isObject(slot) && isObject(slot.interval) ? slot.interval : undefined;
      const start = typeof interval?.start === "number" ? interval.start : undefined;
      const end = typeof interval?.end === "number" ? interval.end : undefined;
      const wall = typeof p.x === "number" ? p.x : (start ?? (typeof p.x === "string" ? parseLabel(p.x) : undefined));
      if (wall === undefined || !Number.isFinite(wall)) {
        rejected.push(`${where}: x ${JSON.stringify(p.x)} is not a time`);
        return;
      }
      const badTime = checkTime(wall, now) ?? pointEnd(start, end, wall, now);
      if (badTime) {
        rejected.push(`${where}: x ${badTime}`);
        return;
      }
      if (p.y !== null && (typeof p.y !== "number" || !Number.isFinite(p.y))) {
        rejected.push(`${where}: y ${JSON.stringify(p.y)} is not a number`);
        return;
      }
      const point: Point = { series: name, flow, wall, y: p.y as number | null, estimated: false, where };
      if (xText !== undefined && estimated.has(xText)) point.estimated = true;
      if (end !== undefined && start !== undefined && end > start) {
        point.wallEnd = wall + (end - start);
        lengths.push(end - start);
      }
      points.push(point);
    });
  }
  const fromSpacing = commonSpacing(points.map((p) => p.wall));
  const fromMap = mode(lengths);
  const length = fromMap ?? fromSpacing ?? FRAME_LENGTH[text(entry.timeFrame) ?? ""];
  return { points, length };
}

/** Why the end the portal gives for a point is not a sane time, or undefined. */
function pointEnd(start: number | undefined, end: number | undefined, wall: number, now: number): string | undefined {
  if (start === undefined || end === undefined || end <= start) return undefined;
  return checkTime(wall + (end - start), now);
}

/** Wall times → instants in one zone, remembered: the series of an answer (USAGE, COST, NET's channels) share them. */
interface WallZone {
  /** The instants the zone's clocks show `wall` at: none when they skip it, two when they repeat it. */
  instants(wall: number): number[];
  /** The first of them or, when clocks skip `wall`, the instant they jump over it. */
  firstInstant(wall: number): number;
}

function wallZone(zone: IANAZone): WallZone {
  const memo = new Map<number, number[]>();
  const instants = (wall: number): number[] => {
    let at = memo.get(wall);
    if (!at) {
      at = wallToUtc(zone, wall);
      memo.set(wall, at);
    }
    return at;
  };
  return {
    instants,
    firstInstant: (wall) => instants(wall)[0] ?? wall - zone.offset(wall - DAY_MS) * MINUTE_MS,
  };
}

interface Placed {
  start: number;
  end: number;
  /** Added to an interval of the same start rather than standing alone (a phantom or off-grid point). */
  folded: boolean;
}

/**
 * The instants of one series' points, in order. `seen` counts the points at each (aligned) wall time of the series:
 * the second one at a repeated wall time is the second pass of the clocks.
 */
function place(zone: WallZone, p: Point, length: number, seen: Map<string, number>): Placed | string {
  const wallLength = p.wallEnd !== undefined ? p.wallEnd - p.wall : length;
  if (wallLength >= DAY_MS) {
    const key = `${p.series}|${p.wall}`;
    if (seen.has(key)) return `a second point for ${new Date(p.wall).toISOString().slice(0, 10)}`;
    seen.set(key, 1);
    return { start: zone.firstInstant(p.wall), end: zone.firstInstant(p.wall + wallLength), folded: false };
  }
  // Off the grid of the series' length (a stray point the portal adds on the day a meter is connected): added to
  // the interval it falls in.
  const aligned = DAY_MS % wallLength === 0 ? p.wall - (((p.wall % wallLength) + wallLength) % wallLength) : p.wall;
  const key = `${p.series}|${aligned}`;
  const offGrid = aligned !== p.wall;
  const at = zone.instants(aligned);
  if (at.length === 0) {
    const start = zone.firstInstant(aligned);
    return { start, end: start + wallLength, folded: true };
  }
  if (offGrid) {
    const start = at[0] as number;
    return { start, end: start + wallLength, folded: true };
  }
  const n = seen.get(key) ?? 0;
  seen.set(key, n + 1);
  const start = at[n];
  if (start === undefined) return `a second point for ${new Date(p.wall).toISOString().slice(0, 16)} (wall clock)`;
  return { start, end: start + wallLength, folded: false };
}

const clean = (v: number): number => Math.round(v * 1e9) / 1e9;

/** Decodes one poll answer; see the module comment. Never throws on a bad answer: it says what it could not use. */
export function decodePoll(answer: unknown, opts: DecodeOptions): DecodeResult {
  const zone = wallZone(zoneOf(opts.timezone ?? SMARTHUB_TIMEZONE));
  const now = opts.now ?? Date.now();
  const out: DecodeResult = { status: "", intervals: [], rejected: [], notes: [], meters: [], hasCost: false };
  if (!isObject(answer)) {
    out.rejected.push("the answer is not a JSON object");
    return out;
  }
  out.status = text(answer.status) ?? "";
  if (out.status !== "" && out.status !== "COMPLETE") {
    out.rejected.push(`the poll answered ${out.status}, not COMPLETE: it holds no usage yet`);
    return out;
  }
  const data = isObject(answer.data) ? answer.data : undefined;
  const electric = data && Array.isArray(data.ELECTRIC) ? data.ELECTRIC.filter(isObject) : undefined;
  if (!electric) {
    out.rejected.push("the answer has no data.ELECTRIC list");
    return out;
  }
  for (const industry of Object.keys(data ?? {}))
    if (industry !== "ELECTRIC") out.notes.push(`data.${industry} not read (electric only)`);

  const usage = electric.filter((e) => e.type === "USAGE");
  const cost = electric.filter((e) => e.type === "COST");
  for (const e of electric)
    if (e.type !== "USAGE" && e.type !== "COST" && e.type !== "TIME_OF_USE")
      out.notes.push(`entry of type ${String(e.type)} not read`);
  out.hasCost = cost.length > 0;

  const byKey = new Map<string, SmarthubInterval>();
  const keyOf = (start: number, direction: string) => `${start}|${direction}`;
  const meters = new Map<string, MeterInfo>();
  let length: number | undefined;

  usage.forEach((entry, ei) => {
    const label = usage.length > 1 ? `USAGE entry ${ei}` : "USAGE";
    const entryMeters = metersOf(entry);
    for (const [k, m] of entryMeters) meters.set(k, m);
    const read = entryPoints(entry, label, entryMeters, out.rejected, out.notes, now);
    if (read.points.length === 0) return;
    if (read.length === undefined) {
      out.rejected.push(`${label}: one point and no timeFrame, so the length of an interval is unknown`);
      return;
    }
    length ??= read.length;
    const seen = new Map<string, number>();
    for (const p of read.points) {
      const placed = place(zone, p, read.length, seen);
      if (typeof placed === "string") {
        out.rejected.push(`${p.where}: ${placed}`);
        continue;
      }
      if (placed.folded && (p.y === null || p.y === 0)) continue;
      const badKwh =
        p.y === null
          ? undefined
          : checkValue("interval_energy_kwh_per_hour", p.y, (placed.end - placed.start) / HOUR_MS);
      if (badKwh) {
        out.rejected.push(`${p.where}: y ${badKwh}`);
        continue;
      }
      if (p.flow === "FORWARD" && p.y !== null && p.y < 0) {
        out.rejected.push(`${p.where}: negative usage ${p.y} on a FORWARD meter`);
        continue;
      }
      const parts: { direction: "import" | "export"; kwh: number | null }[] =
        p.flow === "NET"
          ? // Both directions at every point, so a revision that turns import into export clears the other side.
            [
              { direction: "import", kwh: p.y === null ? null : Math.max(p.y, 0) },
              { direction: "export", kwh: p.y === null ? null : Math.max(-p.y, 0) },
            ]
          : p.flow === "RETURN"
            ? // Co-ops write delivered energy as positive or as negative numbers; either way it is export.
              [{ direction: "export", kwh: p.y === null ? null : Math.abs(p.y) }]
            : [{ direction: "import", kwh: p.y }];
      for (const part of parts) {
        const k = keyOf(placed.start, part.direction);
        const have = byKey.get(k);
        if (!have) {
          byKey.set(k, {
            meterId: opts.meterId,
            start: placed.start,
            end: placed.end,
            energyKwh: part.kwh,
            direction: part.direction,
            quality: part.kwh === null ? "missing" : p.estimated ? "estimated" : "actual",
            series: [p.series],
          });
          continue;
        }
        if (have.end !== placed.end) {
          out.rejected.push(`${p.where}: overlaps an interval of another length at the same time`);
          continue;
        }
        // Several meters of one direction at the location (or a folded point): one interval, their sum.
        if (part.kwh !== null) have.energyKwh = clean((have.energyKwh ?? 0) + part.kwh);
        if (have.quality === "missing" && part.kwh !== null) have.quality = "actual";
        if (p.estimated && have.quality === "actual") have.quality = "estimated";
        if (!have.series.includes(p.series)) have.series.push(p.series);
      }
    }
  });

  cost.forEach((entry, ei) => {
    const label = cost.length > 1 ? `COST entry ${ei}` : "COST";
    // A COST entry may list no meters of its own: its series are those of USAGE.
    const own = metersOf(entry);
    const known = own.size > 0 ? own : meters;
    const read = entryPoints(entry, label, known, out.rejected, out.notes, now);
    const pointLength = read.length ?? length;
    if (read.points.length === 0) return;
    if (pointLength === undefined) {
      out.rejected.push(`${label}: the length of an interval is unknown`);
      return;
    }
    const seen = new Map<string, number>();
    for (const p of read.points) {
      const placed = place(zone, p, pointLength, seen);
      if (typeof placed === "string") {
        out.rejected.push(`${p.where}: ${placed}`);
        continue;
      }
      if (p.y === null || (placed.folded && p.y === 0)) continue;
      const badCost = checkValue("interval_cost_per_hour", p.y, (placed.end - placed.start) / HOUR_MS);
      if (badCost) {
        out.rejected.push(`${p.where}: y ${badCost}`);
        continue;
      }
      const imp = byKey.get(keyOf(placed.start, "import"));
      const exp = byKey.get(keyOf(placed.start, "export"));
      // The cost goes with the energy it is for: a NET point that exported carries its credit on the export side.
      const target =
        p.flow === "RETURN"
          ? exp
          : p.flow === "NET" && exp && (exp.energyKwh ?? 0) > 0 && !((imp?.energyKwh ?? 0) > 0)
            ? exp
            : imp;
      if (target) {
        if (target.end !== placed.end) {
          out.rejected.push(`${p.where}: cost of an interval of another length`);
          continue;
        }
        target.cost = clean((target.cost ?? 0) + p.y);
        continue;
      }
      // Cost without usage: kept, on an interval without a reading, so the money is not lost.
      const direction = p.flow === "RETURN" ? "export" : "import";
      byKey.set(keyOf(placed.start, direction), {
        meterId: opts.meterId,
        start: placed.start,
        end: placed.end,
        energyKwh: null,
        direction,
        quality: "missing",
        cost: p.y,
        series: [p.series],
      });
    }
  });

  out.intervals = [...byKey.values()].sort(
    (a, b) => a.start - b.start || (a.direction === b.direction ? 0 : a.direction === "import" ? -1 : 1),
  );
  out.meters = [...new Set([...meters.values()].map((m) => m.meterNumber))];
  if (length !== undefined) out.notes.unshift(`${length / MINUTE_MS}-minute points`);
  if (usage.length === 0) out.notes.push("no USAGE entry");
  return out;
}

/** The kWh and money of every interval, summed; what tests and the decode summary compare. */
export function totals(intervals: readonly Interval[]): { importKwh: number; exportKwh: number; cost: number } {
  let importKwh = 0;
  let exportKwh = 0;
  let cost = 0;
  for (const i of intervals) {
    if (i.direction === "import") importKwh += i.energyKwh ?? 0;
    else exportKwh += i.energyKwh ?? 0;
    cost += i.cost ?? 0;
  }
  return { importKwh: clean(importKwh), exportKwh: clean(exportKwh), cost: clean(cost) };
}
