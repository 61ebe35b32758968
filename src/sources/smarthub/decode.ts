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
 *
 * decodePoll takes the parsed answer (the live poller); decodePollParts takes what is read of it (PollParts), which
 * a long saved answer gives without being held whole (src/sources/smarthub/read.ts). Both run the one merge below.
 */
import type { IANAZone } from "luxon";
import { wallToUtc, zoneOf } from "../../intervals/time.js";
import { checkTime, checkValue } from "../../model/plausible.js";
import type { Interval } from "../../model/types.js";
import { Column } from "../../util/column.js";

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

/** The points of one series, each as the JSON has it ({x, y, …} or anything else the portal wrote). */
export interface PointList {
  readonly length: number;
  at(i: number): unknown;
}

/** One object of an entry's series list: what is read of it. */
export interface PollSeries {
  name: unknown;
  meterNumber: unknown;
  points: PointList;
}

/** xToOrderedInterval[x].interval: its start and end where they are numbers. */
export interface Slot {
  start?: number;
  end?: number;
}

/** What is read of one object of data.ELECTRIC: the whole entry in memory, or the parts a file reader kept of it. */
export interface PollEntry {
  type: unknown;
  timeFrame: unknown;
  meters: unknown;
  estimatedSeries: unknown;
  /** The keys of meterToChartData ([] when it is not an object). */
  chartKeys: readonly string[];
  /** xToOrderedInterval's slot for an x, undefined when it has none. */
  slot(x: string): Slot | undefined;
  /** The series that are objects, in order. */
  series: readonly PollSeries[];
}

/** What is read of an answer that is a JSON object. */
export interface PollParts {
  status: unknown;
  /** The keys of data, in the order of Object.keys; [] when data is not an object. */
  industries: readonly string[];
  /** The objects of data.ELECTRIC; undefined when it is not a list. */
  electric: readonly PollEntry[] | undefined;
}

const arrayPoints = (list: readonly unknown[]): PointList => ({ length: list.length, at: (i) => list[i] });
const NO_POINTS: PointList = { length: 0, at: () => undefined };

/** The slot of an xToOrderedInterval value. */
export function slotOf(slot: unknown): Slot | undefined {
  const interval = isObject(slot) && isObject(slot.interval) ? slot.interval : undefined;
  if (!interval) return undefined;
  return {
    start: typeof interval.start === "number" ? interval.start : undefined,
    end: typeof interval.end === "number" ? interval.end : undefined,
  };
}

/** The parts of an answer held in memory, or undefined when it is not a JSON object. */
export function pollParts(answer: unknown): PollParts | undefined {
  if (!isObject(answer)) return undefined;
  const data = isObject(answer.data) ? answer.data : undefined;
  const electric = data && Array.isArray(data.ELECTRIC) ? data.ELECTRIC.filter(isObject) : undefined;
  return {
    status: answer.status,
    industries: Object.keys(data ?? {}),
    electric: electric?.map((e): PollEntry => {
      const xmap = isObject(e.xToOrderedInterval) ? e.xToOrderedInterval : {};
      return {
        type: e.type,
        timeFrame: e.timeFrame,
        meters: e.meters,
        estimatedSeries: e.estimatedSeries,
        chartKeys: isObject(e.meterToChartData) ? Object.keys(e.meterToChartData) : [],
        slot: (x) => slotOf(xmap[x]),
        series: (Array.isArray(e.series) ? e.series : []).filter(isObject).map((s) => ({
          name: s.name,
          meterNumber: s.meterNumber,
          points: Array.isArray(s.data) ? arrayPoints(s.data) : NO_POINTS,
        })),
      };
    }),
  };
}

interface MeterInfo {
  key: string;
  meterNumber: string;
  flow: Flow | undefined;
  /** The flowDirection as written, for the message when it is not one we know. */
  flowText: string | undefined;
}

/** A label "2026-03-26 14:00" (or with seconds, or ISO with T) read as a wall time. */
function parseLabel(label: string): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2})?$/.exec(label.trim());
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}T${m[2]}${m[3] ?? ":00"}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

/** flowDirection of a seriesId from meterToChartData's keys (Java's toString of the meter), where meters[] is scrubbed. */
function flowsFromChartKeys(entry: PollEntry): Map<string, string> {
  const out = new Map<string, string>();
  for (const key of entry.chartKeys) {
    const flow = /flowDirection=([A-Z_]+)/.exec(key)?.[1];
    const series = /seriesId='([^']*)'/.exec(key)?.[1] ?? /meterNumber='([^']*)'/.exec(key)?.[1];
    if (flow && series) out.set(series, flow);
  }
  return out;
}

function metersOf(entry: PollEntry): Map<string, MeterInfo> {
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
function estimatedOf(entry: PollEntry, key: string): Set<string> {
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
function mode(values: Iterable<number>): number | undefined {
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
function commonSpacing(walls: Float64Array): number | undefined {
  const sorted = Float64Array.from(walls).sort();
  const diffs: number[] = [];
  const round: number[] = [];
  for (let i = 1; i < sorted.length; i++) {
    const d = (sorted[i] as number) - (sorted[i - 1] as number);
    if (d === 0) continue;
    diffs.push(d);
    if (d % (15 * MINUTE_MS) === 0) round.push(d);
  }
  return mode(round.length > 0 ? round : diffs);
}

const FRAME_LENGTH: Record<string, number> = { HOURLY: HOUR_MS, DAILY: DAY_MS };

/**
 * The points of one entry's series that are read, column by column (a long answer has hundreds of thousands): the
 * series, wall clock as if UTC (ms), the wall clock end when the portal gives it (NaN if not), y (NaN for null),
 * whether estimated, and the point's index in its series (for messages).
 */
class EntryPoints {
  count = 0;
  readonly names: string[] = [];
  readonly flows: Flow[] = [];
  readonly series: Uint32Array;
  readonly wall: Float64Array;
  readonly wallEnd: Float64Array;
  readonly y: Float64Array;
  readonly estimated: Uint8Array;
  readonly index: Uint32Array;
  length: number | undefined;

  constructor(
    readonly label: string,
    capacity: number,
  ) {
    this.series = new Uint32Array(capacity);
    this.wall = new Float64Array(capacity);
    this.wallEnd = new Float64Array(capacity);
    this.y = new Float64Array(capacity);
    this.estimated = new Uint8Array(capacity);
    this.index = new Uint32Array(capacity);
  }

  where(k: number): string {
    return `${this.label} series "${this.names[this.series[k] as number]}" point ${this.index[k]}`;
  }
}

/** The points of one entry's series that are read, with the length of a point. */
function entryPoints(
  entry: PollEntry,
  label: string,
  meters: Map<string, MeterInfo>,
  rejected: string[],
  notes: string[],
  now: number,
): EntryPoints {
  const netPresent = [...meters.values()].some((m) => m.flow === "NET");
  // Which series are read, and why not the others (said in the order of the series, with their points' messages).
  const reads = entry.series.map((s): { name: string; flow: Flow } | { rejected: string } | { note: string } => {
    const key = text(s.name) ?? text(s.meterNumber) ?? "";
    const meter = meters.get(key) ?? meters.get(text(s.meterNumber) ?? "");
    // A portal that lists no meters (a plain mock, an older co-op) has FORWARD usage.
    const flow: Flow | undefined = meter ? meter.flow : meters.size === 0 ? "FORWARD" : undefined;
    const name = meter?.key ?? key;
    if (!meter && meters.size > 0)
      return { rejected: `${label} series "${key}": not among the entry's meters (${[...meters.keys()].join(", ")})` };
    if (!flow) return { rejected: `${label} series "${name}": unknown flowDirection "${meter?.flowText ?? ""}"` };
    if (netPresent && flow === "FORWARD")
      return { note: `${label} series "${name}" (FORWARD) not read: the NET meter gives what crossed the grid` };
    return { name, flow };
  });
  const out = new EntryPoints(
    label,
    entry.series.reduce((n, s, si) => n + ("flow" in (reads[si] as object) ? s.points.length : 0), 0),
  );
  const lengths: number[] = [];
  for (const [si, s] of entry.series.entries()) {
    const read = reads[si] as (typeof reads)[number];
    if ("rejected" in read) {
      rejected.push(read.rejected);
      continue;
    }
    if ("note" in read) {
      notes.push(read.note);
      continue;
    }
    const { name, flow } = read;
    const sn = out.names.length;
    out.names.push(name);
    out.flows.push(flow);
    const estimated = estimatedOf(entry, name);
    const data = s.points;
    const pointAt = (i: number) => `${label} series "${name}" point ${i}`;
    for (let i = 0; i < data.length; i++) {
      const p = data.at(i);
      if (!isObject(p)) {
        rejected.push(`${pointAt(i)}: not an object`);
        continue;
      }
      const xText = text(p.x);
      const slot = xText !== undefined ? entry.slot(xText) : undefined;
      const start = slot?.start;
      const end = slot?.end;
      const wall = typeof p.x === "number" ? p.x : (start ?? (typeof p.x === "string" ? parseLabel(p.x) : undefined));
      if (wall === undefined || !Number.isFinite(wall)) {
        rejected.push(`${pointAt(i)}: x ${JSON.stringify(p.x)} is not a time`);
        continue;
      }
      const badTime = checkTime(wall, now) ?? pointEnd(start, end, wall, now);
      if (badTime) {
        rejected.push(`${pointAt(i)}: x ${badTime}`);
        continue;
      }
      if (p.y !== null && (typeof p.y !== "number" || !Number.isFinite(p.y))) {
        rejected.push(`${pointAt(i)}: y ${JSON.stringify(p.y)} is not a number`);
        continue;
      }
      const k = out.count++;
      out.series[k] = sn;
      out.wall[k] = wall;
      out.y[k] = p.y === null ? Number.NaN : p.y;
      out.index[k] = i;
      out.estimated[k] = xText !== undefined && estimated.has(xText) ? 1 : 0;
      out.wallEnd[k] = Number.NaN;
      if (end !== undefined && start !== undefined && end > start) {
        out.wallEnd[k] = wall + (end - start);
        lengths.push(end - start);
      }
    }
  }
  const fromSpacing = commonSpacing(out.wall.subarray(0, out.count));
  const fromMap = mode(lengths);
  out.length = fromMap ?? fromSpacing ?? FRAME_LENGTH[text(entry.timeFrame) ?? ""];
  return out;
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

/** Wall times (and hours) remembered at most: enough for the series of a window to share them. */
const WALL_MEMO = 20_000;

/**
 * A zone's offset, asked of luxon (Intl, some microseconds) once per hour of the answer: the offset at an hour's
 * first and last millisecond, the same unless the clocks change in that hour (then asked for every instant).
 */
function hourlyOffsets(zone: IANAZone): Pick<IANAZone, "offset"> {
  const hours = new Map<number, number>();
  return {
    offset(ts: number): number {
      const hour = Math.floor(ts / HOUR_MS);
      let o = hours.get(hour);
      if (o === undefined) {
        const first = zone.offset(hour * HOUR_MS);
        o = first === zone.offset(hour * HOUR_MS + HOUR_MS - 1) ? first : Number.NaN;
        if (hours.size >= WALL_MEMO) hours.clear();
        hours.set(hour, o);
      }
      return Number.isNaN(o) ? zone.offset(ts) : o;
    },
  };
}

function wallZone(luxonZone: IANAZone): WallZone {
  const zone = hourlyOffsets(luxonZone);
  const memo = new Map<number, number[]>();
  const instants = (wall: number): number[] => {
    let at = memo.get(wall);
    if (!at) {
      at = wallToUtc(zone, wall);
      if (memo.size >= WALL_MEMO) memo.clear();
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
 * The instants of point k of an entry, in order. `seen` counts the points at each (aligned) wall time of each series
 * (by name):
 * the second one at a repeated wall time is the second pass of the clocks.
 */
function place(
  zone: WallZone,
  pts: EntryPoints,
  k: number,
  length: number,
  seen: Map<string, NumberMap>,
): Placed | string {
  const wall = pts.wall[k] as number;
  const wallEnd = pts.wallEnd[k] as number;
  const sn = pts.series[k] as number;
  const name = pts.names[sn] as string;
  let mine = seen.get(name);
  if (!mine) {
    mine = new NumberMap();
    seen.set(name, mine);
  }
  const wallLength = Number.isNaN(wallEnd) ? length : wallEnd - wall;
  if (wallLength >= DAY_MS) {
    if (mine.get(wall) !== -1) return `a second point for ${new Date(wall).toISOString().slice(0, 10)}`;
    mine.set(wall, 1);
    return { start: zone.firstInstant(wall), end: zone.firstInstant(wall + wallLength), folded: false };
  }
  // Off the grid of the series' length (a stray point the portal adds on the day a meter is connected): added to
  // the interval it falls in.
  const aligned = DAY_MS % wallLength === 0 ? wall - (((wall % wallLength) + wallLength) % wallLength) : wall;
  const offGrid = aligned !== wall;
  const at = zone.instants(aligned);
  if (at.length === 0) {
    const start = zone.firstInstant(aligned);
    return { start, end: start + wallLength, folded: true };
  }
  if (offGrid) {
    const start = at[0] as number;
    return { start, end: start + wallLength, folded: true };
  }
  const n = Math.max(mine.get(aligned), 0);
  mine.set(aligned, n + 1);
  const start = at[n];
  if (start === undefined) return `a second point for ${new Date(wall).toISOString().slice(0, 16)} (wall clock)`;
  return { start, end: start + wallLength, folded: false };
}

const clean = (v: number): number => Math.round(v * 1e9) / 1e9;

type Direction = "import" | "export";
type Quality = "actual" | "estimated" | "missing";
const QUALITIES: readonly Quality[] = ["actual", "estimated", "missing"];
const ACTUAL = 0;
const ESTIMATED = 1;
const MISSING = 2;

const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);

/**
 * Numbers → non-negative integers in typed arrays (open addressing): a Map of hundreds of thousands of times (not
 * small integers, so each key a heap number of its own) took several times the room and left its old tables behind.
 */
class NumberMap {
  private keys = new Float64Array(1024);
  private values = new Int32Array(1024).fill(-1);
  private size = 0;

  /** The value of key, or -1. */
  get(key: number): number {
    const mask = this.keys.length - 1;
    for (let i = NumberMap.hash(key + 0) & mask; ; i = (i + 1) & mask) {
      const v = this.values[i] as number;
      if (v === -1 || this.keys[i] === key) return v;
    }
  }

  set(key: number, value: number): void {
    if ((this.size + 1) * 4 > this.keys.length * 3) this.grow();
    const mask = this.keys.length - 1;
    for (let i = NumberMap.hash(key + 0) & mask; ; i = (i + 1) & mask) {
      if (this.values[i] === -1) {
        this.keys[i] = key;
        this.values[i] = value;
        this.size++;
        return;
      }
      if (this.keys[i] === key) {
        this.values[i] = value;
        return;
      }
    }
  }

  private static hash(key: number): number {
    bits[0] = key;
    const h = Math.imul((words[0] as number) ^ Math.imul(words[1] as number, 0x9e3779b1), 0x85ebca6b);
    return (h ^ (h >>> 15)) >>> 0;
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Float64Array(keys.length * 2);
    this.values = new Int32Array(keys.length * 2).fill(-1);
    this.size = 0;
    for (let i = 0; i < keys.length; i++)
      if ((values[i] as number) >= 0) this.set(keys[i] as number, values[i] as number);
  }
}

/**
 * The intervals of an answer, column by column (energy and cost NaN where there is none), found by start and
 * direction; the series of each interval as an index into the distinct lists of series.
 */
class IntervalTable {
  count = 0;
  readonly start = new Column("f64");
  readonly end = new Column("f64");
  readonly energy = new Column("f64");
  readonly cost = new Column("f64");
  /** 0 import, 1 export. */
  readonly direction = new Column("u8");
  readonly quality = new Column("u8");
  readonly seriesList = new Column("u32");
  private readonly byStart = [new NumberMap(), new NumberMap()];
  private readonly lists: string[][] = [];
  private readonly listIds = new Map<string, number>();

  find(start: number, direction: Direction): number | undefined {
    const i = (this.byStart[direction === "import" ? 0 : 1] as NumberMap).get(start);
    return i === -1 ? undefined : i;
  }

  add(start: number, end: number, direction: Direction, energy: number, quality: number, series: string): number {
    const i = this.count++;
    this.start.set(i, start);
    this.end.set(i, end);
    this.energy.set(i, energy);
    this.cost.set(i, Number.NaN);
    this.direction.set(i, direction === "import" ? 0 : 1);
    this.quality.set(i, quality);
    this.seriesList.set(i, this.listId([series]));
    (this.byStart[direction === "import" ? 0 : 1] as NumberMap).set(start, i);
    return i;
  }

  /** The kWh of an interval, 0 for none. */
  energyOf(i: number | undefined): number {
    const e = i === undefined ? Number.NaN : this.energy.get(i);
    return Number.isNaN(e) ? 0 : e;
  }

  seriesOf(i: number): readonly string[] {
    return this.lists[this.seriesList.get(i)] as string[];
  }

  addSeries(i: number, series: string): void {
    const have = this.seriesOf(i);
    if (!have.includes(series)) this.seriesList.set(i, this.listId([...have, series]));
  }

  /** The intervals in order of start, import before export. */
  *sorted(meterId: string): Generator<SmarthubInterval> {
    const order = new Uint32Array(this.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    const { start, direction } = this;
    order.sort((a, b) => start.get(a) - start.get(b) || direction.get(a) - direction.get(b));
    for (const i of order) {
      const energy = this.energy.get(i);
      const cost = this.cost.get(i);
      const interval: SmarthubInterval = {
        meterId,
        start: start.get(i),
        end: this.end.get(i),
        energyKwh: Number.isNaN(energy) ? null : energy,
        direction: direction.get(i) === 0 ? "import" : "export",
        quality: QUALITIES[this.quality.get(i)] as Quality,
        series: [...this.seriesOf(i)],
      };
      if (!Number.isNaN(cost)) interval.cost = cost;
      yield interval;
    }
  }

  private listId(list: string[]): number {
    const key = list.join("\u0000");
    let id = this.listIds.get(key);
    if (id === undefined) {
      id = this.lists.push(list) - 1;
      this.listIds.set(key, id);
    }
    return id;
  }
}

/** A decoded answer whose intervals are given one by one, in order, rather than as one list. */
export interface DecodedPoll extends Omit<DecodeResult, "intervals"> {
  intervalCount: number;
  intervals(): Iterable<SmarthubInterval>;
}

/** Decodes one poll answer; see the module comment. Never throws on a bad answer: it says what it could not use. */
export function decodePoll(answer: unknown, opts: DecodeOptions): DecodeResult {
  const decoded = decodePollParts(pollParts(answer), opts);
  return { ...decoded, intervals: [...decoded.intervals()] };
}

/**
 * decodePoll of an answer's parts (pollParts of one in memory, or what a file reader kept of a long one); undefined
 * when the answer is not a JSON object.
 */
export function decodePollParts(answer: PollParts | undefined, opts: DecodeOptions): DecodedPoll {
  const zone = wallZone(zoneOf(opts.timezone ?? SMARTHUB_TIMEZONE));
  const now = opts.now ?? Date.now();
  const table = new IntervalTable();
  const out: DecodedPoll = {
    status: "",
    rejected: [],
    notes: [],
    meters: [],
    hasCost: false,
    intervalCount: 0,
    intervals: () => table.sorted(opts.meterId),
  };
  if (!answer) {
    out.rejected.push("the answer is not a JSON object");
    return out;
  }
  out.status = text(answer.status) ?? "";
  if (out.status !== "" && out.status !== "COMPLETE") {
    out.rejected.push(`the poll answered ${out.status}, not COMPLETE: it holds no usage yet`);
    return out;
  }
  const electric = answer.electric;
  if (!electric) {
    out.rejected.push("the answer has no data.ELECTRIC list");
    return out;
  }
  for (const industry of answer.industries)
    if (industry !== "ELECTRIC") out.notes.push(`data.${industry} not read (electric only)`);

  const usage = electric.filter((e) => e.type === "USAGE");
  const cost = electric.filter((e) => e.type === "COST");
  for (const e of electric)
    if (e.type !== "USAGE" && e.type !== "COST" && e.type !== "TIME_OF_USE")
      out.notes.push(`entry of type ${String(e.type)} not read`);
  out.hasCost = cost.length > 0;

  const meters = new Map<string, MeterInfo>();
  let length: number | undefined;

  usage.forEach((entry, ei) => {
    const label = usage.length > 1 ? `USAGE entry ${ei}` : "USAGE";
    const entryMeters = metersOf(entry);
    for (const [k, m] of entryMeters) meters.set(k, m);
    const read = entryPoints(entry, label, entryMeters, out.rejected, out.notes, now);
    if (read.count === 0) return;
    if (read.length === undefined) {
      out.rejected.push(`${label}: one point and no timeFrame, so the length of an interval is unknown`);
      return;
    }
    length ??= read.length;
    const seen = new Map<string, NumberMap>();
    for (let k = 0; k < read.count; k++) {
      const placed = place(zone, read, k, read.length, seen);
      if (typeof placed === "string") {
        out.rejected.push(`${read.where(k)}: ${placed}`);
        continue;
      }
      const yk = read.y[k] as number;
      const y = Number.isNaN(yk) ? null : yk;
      if (placed.folded && (y === null || y === 0)) continue;
      const badKwh =
        y === null ? undefined : checkValue("interval_energy_kwh_per_hour", y, (placed.end - placed.start) / HOUR_MS);
      if (badKwh) {
        out.rejected.push(`${read.where(k)}: y ${badKwh}`);
        continue;
      }
      const sn = read.series[k] as number;
      const flow = read.flows[sn] as Flow;
      const series = read.names[sn] as string;
      const estimated = read.estimated[k] === 1;
      if (flow === "FORWARD" && y !== null && y < 0) {
        out.rejected.push(`${read.where(k)}: negative usage ${y} on a FORWARD meter`);
        continue;
      }
      const parts: { direction: Direction; kwh: number | null }[] =
        flow === "NET"
          ? // Both directions at every point, so a revision that turns import into export clears the other side.
            [
              { direction: "import", kwh: y === null ? null : Math.max(y, 0) },
              { direction: "export", kwh: y === null ? null : Math.max(-y, 0) },
            ]
          : flow === "RETURN"
            ? // Co-ops write delivered energy as positive or as negative numbers; either way it is export.
              [{ direction: "export", kwh: y === null ? null : Math.abs(y) }]
            : [{ direction: "import", kwh: y }];
      for (const part of parts) {
        const have = table.find(placed.start, part.direction);
        if (have === undefined) {
          table.add(
            placed.start,
            placed.end,
            part.direction,
            part.kwh ?? Number.NaN,
            part.kwh === null ? MISSING : estimated ? ESTIMATED : ACTUAL,
            series,
          );
          continue;
        }
        if (table.end.get(have) !== placed.end) {
          out.rejected.push(`${read.where(k)}: overlaps an interval of another length at the same time`);
          continue;
        }
        // Several meters of one direction at the location (or a folded point): one interval, their sum.
        const energy = table.energy.get(have);
        if (part.kwh !== null) table.energy.set(have, clean((Number.isNaN(energy) ? 0 : energy) + part.kwh));
        if (table.quality.get(have) === MISSING && part.kwh !== null) table.quality.set(have, ACTUAL);
        if (estimated && table.quality.get(have) === ACTUAL) table.quality.set(have, ESTIMATED);
        table.addSeries(have, series);
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
    if (read.count === 0) return;
    if (pointLength === undefined) {
      out.rejected.push(`${label}: the length of an interval is unknown`);
      return;
    }
    const seen = new Map<string, NumberMap>();
    for (let k = 0; k < read.count; k++) {
      const placed = place(zone, read, k, pointLength, seen);
      if (typeof placed === "string") {
        out.rejected.push(`${read.where(k)}: ${placed}`);
        continue;
      }
      const y = read.y[k] as number;
      if (Number.isNaN(y) || (placed.folded && y === 0)) continue;
      const badCost = checkValue("interval_cost_per_hour", y, (placed.end - placed.start) / HOUR_MS);
      if (badCost) {
        out.rejected.push(`${read.where(k)}: y ${badCost}`);
        continue;
      }
      const sn = read.series[k] as number;
      const flow = read.flows[sn] as Flow;
      const imp = table.find(placed.start, "import");
      const exp = table.find(placed.start, "export");
      // The cost goes with the energy it is for: a NET point that exported carries its credit on the export side.
      const target =
        flow === "RETURN"
          ? exp
          : flow === "NET" && exp !== undefined && table.energyOf(exp) > 0 && !(table.energyOf(imp) > 0)
            ? exp
            : imp;
      if (target !== undefined) {
        if (table.end.get(target) !== placed.end) {
          out.rejected.push(`${read.where(k)}: cost of an interval of another length`);
          continue;
        }
        const have = table.cost.get(target);
        table.cost.set(target, clean((Number.isNaN(have) ? 0 : have) + y));
        continue;
      }
      // Cost without usage: kept, on an interval without a reading, so the money is not lost.
      const i = table.add(
        placed.start,
        placed.end,
        flow === "RETURN" ? "export" : "import",
        Number.NaN,
        MISSING,
        read.names[sn] as string,
      );
      table.cost.set(i, y);
    }
  });

  out.intervalCount = table.count;
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
