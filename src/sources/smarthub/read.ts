/**
 * A SmartHub poll answer read from its bytes as they come, for answers too long to hold as one string and one tree
 * of objects (a 100 MB file of years of quarter hours took over 1 GB that way). The whole text is checked to be JSON
 * as JSON.parse checks it, and only what decodePollParts reads is kept: each series' points in typed arrays, the
 * x → interval map in typed arrays, the few small fields of each entry as they are. The rest (meterToChartData's
 * copies of the points, baseSeries, TIME_OF_USE's points once the entry turns out to be one…) is checked and let go.
 * Duplicate names are read as JSON.parse reads them: the last one counts.
 */
import { Column } from "../../util/column.js";
import { type PointList, type PollEntry, type PollParts, type PollSeries, type Slot, slotOf } from "./decode.js";

export type ReadPoll =
  | { kind: "empty" }
  | { kind: "answer"; parts: PollParts | undefined }
  | { kind: "error"; message: string; html: boolean };

/** Reads an answer from its bytes; never throws on bad JSON (the error says where it is), only on a failed read. */
export async function readPoll(input: AsyncIterable<Buffer>): Promise<ReadPoll> {
  const reader = new PollReader();
  try {
    for await (const chunk of input) reader.feed(chunk);
    return reader.finish();
  } catch (err) {
    if (err instanceof NotJson) return { kind: "error", message: err.message, html: reader.html };
    throw err;
  }
}

class NotJson extends Error {}

/** The label x's of an answer ("2026-03-26 14:00"), each text kept once for the series and the slots that name it. */
class Labels {
  private readonly ids = new Map<string, number>();
  readonly texts: string[] = [];

  id(label: string): number {
    let id = this.ids.get(label);
    if (id === undefined) {
      id = this.texts.push(label) - 1;
      this.ids.set(label, id);
    }
    return id;
  }
}

/** The points of one series as read: x and y in typed arrays; a label x, a null y or an odd point noted aside. */
class PointColumns implements PointList {
  length = 0;
  /** x, or the label's number for a label. */
  private readonly x = new Column("f64");
  private readonly y = new Column("f64");
  /** 1: x is a label; 2: y is null; 4: not an {x, y} of numbers or labels (in odd, as written). */
  private readonly flags = new Column("u8");
  private odd: Map<number, unknown> | undefined;

  constructor(private readonly labels: Labels) {}

  push(p: unknown): void {
    const i = this.length++;
    if (typeof p === "object" && p !== null && !Array.isArray(p)) {
      const { x, y } = p as Record<string, unknown>;
      if ((typeof x === "number" || typeof x === "string") && (y === null || typeof y === "number")) {
        let f = 0;
        if (typeof x === "number") this.x.set(i, x);
        else {
          this.x.set(i, this.labels.id(x));
          f |= 1;
        }
        if (y === null) f |= 2;
        else this.y.set(i, y);
        this.flags.set(i, f);
        return;
      }
    }
    this.odd ??= new Map();
    this.odd.set(i, p);
    this.flags.set(i, 4);
  }

  at(i: number): unknown {
    const f = this.flags.get(i);
    if (f & 4) return this.odd?.get(i);
    return { x: f & 1 ? this.labels.texts[this.x.get(i)] : this.x.get(i), y: f & 2 ? null : this.y.get(i) };
  }
}

/** Where the digits starting at i end. */
function digits(buf: Buffer, i: number, end: number): number {
  let j = i;
  while (j < end && (buf[j] as number) >= 0x30 && (buf[j] as number) <= 0x39) j++;
  return j;
}

/** xToOrderedInterval: numeric x (the usual) in typed arrays, looked up by binary search; labels in a Map. */
class SlotMap {
  private count = 0;
  /** The numeric keys; NaN on rows of labels, which sort last and are never looked up there. */
  private readonly keys = new Column("f64");
  private readonly starts = new Column("f64");
  private readonly ends = new Column("f64");
  private order: Uint32Array | undefined;
  /** Slots of label keys: their row in starts and ends (keys NaN there). */
  private readonly labelRows = new Map<string, number>();

  constructor(private readonly labels: Labels) {}

  private static numeric(key: string): number | undefined {
    const v = Number(key);
    return key !== "" && Number.isFinite(v) && String(v) === key ? v : undefined;
  }

  set(key: string, slot: Slot | undefined): void {
    const v = SlotMap.numeric(key);
    let i: number;
    if (v === undefined) {
      const label = this.labels.texts[this.labels.id(key)] as string;
      i = this.labelRows.get(label) ?? this.count++;
      this.labelRows.set(label, i);
      this.keys.set(i, Number.NaN);
    } else {
      i = this.count++;
      this.keys.set(i, v);
    }
    this.starts.set(i, slot?.start ?? Number.NaN);
    this.ends.set(i, slot?.end ?? Number.NaN);
    this.order = undefined;
  }

  get(x: string): Slot | undefined {
    const v = SlotMap.numeric(x);
    if (v === undefined) {
      const row = this.labelRows.get(x);
      return row === undefined ? undefined : this.slot(row);
    }
    const order = this.sorted();
    const { keys } = this;
    // The last of equal keys: a name given twice counts with its last value.
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys.get(order[mid] as number) <= v) lo = mid + 1;
      else hi = mid;
    }
    const i = order[lo - 1];
    if (i === undefined || keys.get(i) !== v) return undefined;
    return this.slot(i);
  }

  private slot(i: number): Slot | undefined {
    const start = this.starts.get(i);
    const end = this.ends.get(i);
    if (Number.isNaN(start) && Number.isNaN(end)) return undefined;
    return { start: Number.isNaN(start) ? undefined : start, end: Number.isNaN(end) ? undefined : end };
  }

  private sorted(): Uint32Array {
    if (this.order) return this.order;
    const order = new Uint32Array(this.count - this.labelRows.size);
    let inOrder = true;
    let n = 0;
    for (let i = 0; i < this.count; i++) {
      if (Number.isNaN(this.keys.get(i))) continue;
      if (n > 0 && this.keys.get(i) <= this.keys.get(order[n - 1] as number)) inOrder = false;
      order[n++] = i;
    }
    const { keys } = this;
    if (!inOrder) order.sort((a, b) => keys.get(a) - keys.get(b) || a - b);
    this.order = order;
    return order;
  }
}

interface EntryRead {
  type: unknown;
  timeFrame: unknown;
  meters: unknown;
  estimatedSeries: unknown;
  chart: Record<string, true> | undefined;
  xmap: SlotMap | undefined;
  series: PollSeries[];
}

const OBJ = 0;
const ARR = 1;
const PRIM = 2;

// What a value is to the reader.
const R_SKIP = 0;
const R_ROOT = 1;
const R_DATA = 2;
const R_ELECTRIC = 3;
const R_ENTRY = 4;
const R_SERIES_LIST = 5;
const R_SERIES = 6;
const R_POINTS = 7;
const R_XMAP = 8;
const R_CHART = 9;
const R_BUILD = 10;

// Where a value built whole goes.
const T_STATUS = 0;
const T_ENTRY = 1;
const T_SLOT = 2;
const T_SERIES = 3;
const T_POINT = 4;

// What the reader expects next.
const ST_VALUE = 0;
const ST_ARR_FIRST = 1;
const ST_OBJ_FIRST = 2;
const ST_KEY = 3;
const ST_COLON = 4;
const ST_AFTER = 5;
const ST_DONE = 6;

const ENTRY_FIELDS = new Set(["type", "timeFrame", "meters", "estimatedSeries"]);

class PollReader {
  html = false;
  private seen = false;
  private started = false;
  private rest: Buffer | undefined;
  /** Offset in the file of the buffer being read. */
  private base = 0;
  private state = ST_VALUE;
  private depth = 0;
  private readonly kinds: number[] = [];
  private readonly roles: number[] = [];
  private readonly keys: (string | undefined)[] = [];
  /** The containers of the value being built whole, outermost first. */
  private readonly building: unknown[] = [];
  private target = T_STATUS;
  private targetKey = "";
  // The last string scanned: whether it has escapes, whether it is all ASCII.
  private escaped = false;
  private ascii = true;

  private root: { status: unknown; industries: Record<string, true> | undefined; electric: EntryRead[] | undefined } = {
    status: undefined,
    industries: undefined,
    electric: undefined,
  };
  private rootIsObject = false;
  private readonly labels = new Labels();
  private entry: EntryRead | undefined;
  private series: { name: unknown; meterNumber: unknown; points: PointList } | undefined;

  feed(chunk: Buffer): void {
    let buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    let from = 0;
    if (!this.started) {
      if (buf.length < 3) {
        this.rest = buf;
        return;
      }
      this.started = true;
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
        buf = buf.subarray(3);
        this.base = 3;
      }
    }
    from = this.run(buf, false);
    this.base += from;
    this.rest = from < buf.length ? Buffer.from(buf.subarray(from)) : undefined;
  }

  finish(): ReadPoll {
    if (this.rest) {
      let buf = this.rest;
      if (!this.started && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
        buf = buf.subarray(3);
        this.base = 3;
      }
      this.started = true;
      this.run(buf, true);
    }
    if (!this.seen) return { kind: "empty" };
    if (this.state !== ST_DONE) throw this.cut(this.base + (this.rest?.length ?? 0));
    if (!this.rootIsObject) return { kind: "answer", parts: undefined };
    const { status, industries, electric } = this.root;
    return {
      kind: "answer",
      parts: {
        status,
        industries: Object.keys(industries ?? {}),
        electric: electric?.map(
          (e): PollEntry => ({
            type: e.type,
            timeFrame: e.timeFrame,
            meters: e.meters,
            estimatedSeries: e.estimatedSeries,
            chartKeys: e.chart ? Object.keys(e.chart) : [],
            slot: (x) => e.xmap?.get(x),
            series: e.series,
          }),
        ),
      },
    };
  }

  private cut(bytes: number): NotJson {
    return new NotJson(`the file ends in the middle of the answer, after ${bytes} bytes (cut off while saving?)`);
  }

  private fail(at: number, what: string): NotJson {
    return new NotJson(`${what} at byte ${this.base + at}`);
  }

  private unexpected(buf: Buffer, at: number): NotJson {
    const c = buf[at] as number;
    const shown = c >= 0x20 && c < 0x7f ? `"${String.fromCharCode(c)}"` : `byte 0x${c.toString(16).padStart(2, "0")}`;
    return this.fail(at, `unexpected ${shown}`);
  }

  /** Reads tokens from buf; returns where an unfinished token starts (buf.length when none). */
  private run(buf: Buffer, final: boolean): number {
    const n = buf.length;
    let pos = 0;
    while (pos < n) {
      const c = buf[pos] as number;
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        pos++;
        continue;
      }
      if (!this.seen) {
        this.seen = true;
        this.html = c === 0x3c;
      }
      const state = this.state;
      if (state === ST_AFTER) {
        const top = this.kinds[this.depth - 1];
        if (c === 0x2c) this.state = top === OBJ ? ST_KEY : ST_VALUE;
        else if ((c === 0x7d && top === OBJ) || (c === 0x5d && top === ARR)) this.close();
        else throw this.fail(pos, top === OBJ ? `expected "," or "}"` : `expected "," or "]"`);
        pos++;
        continue;
      }
      if (state === ST_COLON) {
        if (c !== 0x3a) throw this.fail(pos, `expected ":"`);
        this.state = ST_VALUE;
        pos++;
        continue;
      }
      if (state === ST_OBJ_FIRST || state === ST_KEY) {
        if (c === 0x7d && state === ST_OBJ_FIRST) {
          this.close();
          pos++;
          continue;
        }
        if (c !== 0x22) throw this.fail(pos, "expected a name in quotes");
        const end = this.scanString(buf, pos, final);
        if (end < 0) return pos;
        this.key(buf, pos, end);
        this.state = ST_COLON;
        pos = end;
        continue;
      }
      if (state === ST_DONE) throw this.fail(pos, "more after the end of the answer");
      if (c === 0x5d && state === ST_ARR_FIRST) {
        this.close();
        pos++;
        continue;
      }
      if (c === 0x7b || c === 0x5b) {
        this.open(c === 0x7b ? OBJ : ARR);
        pos++;
        continue;
      }
      let end: number;
      if (c === 0x22) end = this.scanString(buf, pos, final);
      else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) end = this.scanNumber(buf, pos, final);
      else if (c === 0x74) end = this.literal(buf, pos, "true", final);
      else if (c === 0x66) end = this.literal(buf, pos, "false", final);
      else if (c === 0x6e) end = this.literal(buf, pos, "null", final);
      else throw this.unexpected(buf, pos);
      if (end < 0) return pos;
      this.primitive(buf, pos, end);
      pos = end;
    }
    return n;
  }

  /** End of the string starting at pos (after its closing quote), or -1 when it goes on in the next chunk. */
  private scanString(buf: Buffer, pos: number, final: boolean): number {
    const n = buf.length;
    let escaped = false;
    let ascii = true;
    for (let i = pos + 1; i < n; i++) {
      const b = buf[i] as number;
      if (b === 0x22) {
        this.escaped = escaped;
        this.ascii = ascii;
        return i + 1;
      }
      if (b === 0x5c) {
        escaped = true;
        const e = buf[i + 1];
        if (e === undefined) break;
        if (e === 0x75) {
          if (i + 5 >= n) break;
          for (let h = i + 2; h < i + 6; h++) {
            const d = buf[h] as number;
            if (!((d >= 0x30 && d <= 0x39) || (d >= 0x41 && d <= 0x46) || (d >= 0x61 && d <= 0x66)))
              throw this.fail(h, "bad \\u escape in a string");
          }
          i += 5;
        } else if (
          e === 0x22 ||
          e === 0x5c ||
          e === 0x2f ||
          e === 0x62 ||
          e === 0x66 ||
          e === 0x6e ||
          e === 0x72 ||
          e === 0x74
        )
          i++;
        else throw this.fail(i, "bad escape in a string");
      } else if (b < 0x20) throw this.fail(i, "a control character in a string");
      else if (b >= 0x80) ascii = false;
    }
    if (final) throw this.cut(this.base + n);
    return -1;
  }

  private scanNumber(buf: Buffer, pos: number, final: boolean): number {
    const n = buf.length;
    let end = pos;
    while (end < n) {
      const b = buf[end] as number;
      if ((b >= 0x30 && b <= 0x39) || b === 0x2e || b === 0x2d || b === 0x2b || b === 0x65 || b === 0x45) end++;
      else break;
    }
    if (end === n && !final) return -1;
    let i = pos;
    if (buf[i] === 0x2d) i++;
    if (buf[i] === 0x30) i++;
    else if (i < end && (buf[i] as number) >= 0x31 && (buf[i] as number) <= 0x39) i = digits(buf, i, end);
    else throw this.fail(i, "a number without digits");
    if (buf[i] === 0x2e && i < end) {
      const j = digits(buf, i + 1, end);
      if (j === i + 1) throw this.fail(i + 1, "a number without digits after its point");
      i = j;
    }
    if (i < end && (buf[i] === 0x65 || buf[i] === 0x45)) {
      i++;
      if (i < end && (buf[i] === 0x2b || buf[i] === 0x2d)) i++;
      const j = digits(buf, i, end);
      if (j === i) throw this.fail(i, "a number without digits in its exponent");
      i = j;
    }
    if (i !== end) throw this.unexpected(buf, i);
    return end;
  }

  private literal(buf: Buffer, pos: number, word: string, final: boolean): number {
    for (let k = 0; k < word.length; k++) {
      const b = buf[pos + k];
      if (b === undefined) {
        if (final) throw this.cut(this.base + pos + k);
        return -1;
      }
      if (b !== word.charCodeAt(k)) throw this.unexpected(buf, pos + k);
    }
    return pos + word.length;
  }

  /** The text of the string token [s, e) (quotes included). */
  private text(buf: Buffer, s: number, e: number): string {
    if (!this.escaped) return buf.toString(this.ascii ? "latin1" : "utf8", s + 1, e - 1);
    return JSON.parse(buf.toString("utf8", s, e)) as string;
  }

  private key(buf: Buffer, s: number, e: number): void {
    const top = this.depth - 1;
    const role = this.roles[top];
    if (role === R_SKIP) return;
    const key = this.text(buf, s, e);
    if (role === R_CHART) {
      (this.entry as EntryRead).chart![key] = true;
      return;
    }
    if (role === R_DATA) this.root.industries![key] = true;
    this.keys[top] = key;
  }

  /** What a value starting now is to the reader, its parent told by the stack. */
  private roleOf(kind: number): number {
    const d = this.depth;
    if (d === 0) {
      this.rootIsObject = kind === OBJ;
      return kind === OBJ ? R_ROOT : R_SKIP;
    }
    const parent = this.roles[d - 1];
    if (parent === R_SKIP || parent === R_BUILD || parent === R_CHART) return parent === R_BUILD ? R_BUILD : R_SKIP;
    const key = this.keys[d - 1] as string;
    switch (parent) {
      case R_ROOT:
        if (key === "status") return this.build(T_STATUS, key);
        if (key !== "data") return R_SKIP;
        this.root.industries = kind === OBJ ? Object.create(null) : undefined;
        this.root.electric = undefined;
        return kind === OBJ ? R_DATA : R_SKIP;
      case R_DATA:
        if (key !== "ELECTRIC") return R_SKIP;
        this.root.electric = kind === ARR ? [] : undefined;
        return kind === ARR ? R_ELECTRIC : R_SKIP;
      case R_ELECTRIC:
        if (kind !== OBJ) return R_SKIP;
        this.entry = {
          type: undefined,
          timeFrame: undefined,
          meters: undefined,
          estimatedSeries: undefined,
          chart: undefined,
          xmap: undefined,
          series: [],
        };
        this.root.electric!.push(this.entry);
        return R_ENTRY;
      case R_ENTRY: {
        const entry = this.entry as EntryRead;
        if (ENTRY_FIELDS.has(key)) return this.build(T_ENTRY, key);
        if (key === "meterToChartData") {
          entry.chart = kind === OBJ ? Object.create(null) : undefined;
          return kind === OBJ ? R_CHART : R_SKIP;
        }
        if (key === "xToOrderedInterval") {
          entry.xmap = kind === OBJ ? new SlotMap(this.labels) : undefined;
          return kind === OBJ ? R_XMAP : R_SKIP;
        }
        if (key === "series") {
          entry.series = [];
          return kind === ARR ? R_SERIES_LIST : R_SKIP;
        }
        return R_SKIP;
      }
      case R_XMAP:
        return this.build(T_SLOT, key);
      case R_SERIES_LIST:
        if (kind !== OBJ) return R_SKIP;
        this.series = { name: undefined, meterNumber: undefined, points: new PointColumns(this.labels) };
        (this.entry as EntryRead).series.push(this.series);
        return R_SERIES;
      case R_SERIES: {
        const series = this.series as PollSeries;
        if (key === "name" || key === "meterNumber") return this.build(T_SERIES, key);
        if (key !== "data") return R_SKIP;
        series.points = new PointColumns(this.labels);
        if (kind !== ARR) series.points = { length: 0, at: () => undefined };
        return kind === ARR ? R_POINTS : R_SKIP;
      }
      case R_POINTS:
        return this.build(T_POINT, "");
      default:
        return R_SKIP;
    }
  }

  private build(target: number, key: string): number {
    this.target = target;
    this.targetKey = key;
    return R_BUILD;
  }

  /** A value built whole is complete: it goes where it was asked for. */
  private deliver(value: unknown): void {
    switch (this.target) {
      case T_STATUS:
        this.root.status = value;
        break;
      case T_ENTRY:
        (this.entry as unknown as Record<string, unknown>)[this.targetKey] = value;
        break;
      case T_SLOT:
        (this.entry as EntryRead).xmap?.set(this.targetKey, slotOf(value));
        break;
      case T_SERIES:
        (this.series as unknown as Record<string, unknown>)[this.targetKey] = value;
        break;
      case T_POINT:
        ((this.series as PollSeries).points as PointColumns).push(value);
        break;
    }
  }

  /** Adds a value to the container being built (its parent), or delivers it when it is the whole value. */
  private attach(value: unknown, whole: boolean): void {
    const b = this.building;
    if (b.length === 0) {
      if (whole) this.deliver(value);
      return;
    }
    const parent = b[b.length - 1];
    if (Array.isArray(parent)) parent.push(value);
    else {
      const key = this.keys[this.depth - 1] as string;
      if (key === "__proto__")
        Object.defineProperty(parent, key, { value, writable: true, enumerable: true, configurable: true });
      else (parent as Record<string, unknown>)[key] = value;
    }
  }

  private open(kind: number): void {
    const role = this.roleOf(kind);
    if (role === R_BUILD) {
      const value = kind === OBJ ? {} : [];
      this.attach(value, false);
      this.building.push(value);
    }
    const d = this.depth++;
    this.kinds[d] = kind;
    this.roles[d] = role;
    this.keys[d] = undefined;
    this.state = kind === OBJ ? ST_OBJ_FIRST : ST_ARR_FIRST;
  }

  private close(): void {
    const d = --this.depth;
    if (this.roles[d] === R_BUILD) {
      const value = this.building.pop();
      if (this.building.length === 0) this.deliver(value);
    }
    this.state = this.depth === 0 ? ST_DONE : ST_AFTER;
  }

  private primitive(buf: Buffer, s: number, e: number): void {
    const role = this.roleOf(PRIM);
    if (role === R_BUILD) {
      const c = buf[s];
      const value =
        c === 0x22
          ? this.text(buf, s, e)
          : c === 0x74
            ? true
            : c === 0x66
              ? false
              : c === 0x6e
                ? null
                : Number(buf.toString("latin1", s, e));
      this.attach(value, true);
    }
    this.state = this.depth === 0 ? ST_DONE : ST_AFTER;
  }
}
