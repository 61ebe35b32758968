/**
 * Smart Meter Texas interval CSV → Intervals, as a pure function of the text (and the zone).
 *
 * The format, as the portal download and the daily subscription email attach it:
 *   ESIID,USAGE_DATE,REVISION_DATE,USAGE_START_TIME,USAGE_END_TIME,USAGE_KWH,ESTIMATED_ACTUAL,CONSUMPTION_SURPLUSGENERATION
 *   '10000000000000001,06/15/2025,06/16/2025 07:41:02,00:00,00:15,.35,A,Consumption
 * ESIID with Excel's text-guard apostrophe; dates MM/DD/YYYY and times HH:MM in Central prevailing time; kWh without
 * a leading zero, blank when there is no reading; A actual / E estimated; Consumption (import) or Surplus Generation
 * (export). Each day has its own rows per channel: 96, but on the spring-forward day still 96 of which the 4 rows of
 * the skipped hour are blank, and on the fall-back day 100, where the first row of the repeated hour is labelled
 * `02:00,01:15`.
 *
 * So a row's start is taken as its end minus 15 minutes (that repairs the mislabelled row), a wall time the zone
 * skips is dropped when blank, and a wall time the zone repeats is the first pass (daylight time) the first time it
 * appears in its day and channel and the second pass (standard time) the second time.
 */
import { type Options, parse } from "csv-parse";
import { parse as parseSync } from "csv-parse/sync";
import { dayMinutes, wallToUtc, zoneOf } from "../../intervals/time.js";
import { checkValue } from "../../model/plausible.js";
import type { Interval } from "../../model/types.js";

export const SMT_HEADER = [
  "ESIID",
  "USAGE_DATE",
  "REVISION_DATE",
  "USAGE_START_TIME",
  "USAGE_END_TIME",
  "USAGE_KWH",
  "ESTIMATED_ACTUAL",
  "CONSUMPTION_SURPLUSGENERATION",
] as const;

export const SMT_TIMEZONE = "America/Chicago";
const SLOT_MIN = 15;
const SLOT_MS = SLOT_MIN * 60_000;

export interface SmtInterval extends Interval {
  esiid: string;
  /** USAGE_DATE as YYYY-MM-DD: the civil day in the meter's zone. */
  day: string;
}

/** A row that could not be used, pointing at its file and line (1-based, the header is line 1). */
export interface RowError {
  file: string;
  line: number;
  reason: string;
}

export interface SmtParseResult {
  intervals: SmtInterval[];
  errors: RowError[];
  /** Days whose interval count is not the day's length in 15-minute slots (a partial file). */
  warnings: string[];
  esiids: string[];
  /** Blank rows of the hour skipped in spring, dropped as expected. */
  skippedGapRows: number;
  /** Rows of another ESIID than the one configured. */
  otherEsiidRows: number;
}

export interface SmtParseOptions {
  /** Name used in errors. */
  file: string;
  meterId: string;
  timezone?: string;
  /** Only rows of this ESIID are read (an account may list several premises). */
  esiid?: string;
}

/** csv-parse options: one record per line whatever quotes a row holds (SMT never quotes), so a bad row stays one. */
export const CSV_OPTIONS: Options = {
  bom: true,
  quote: false,
  relax_column_count: true,
  skip_empty_lines: true,
  info: true,
};

interface Group {
  label: string;
  day: string;
  /**
   * How often each wall start was seen, by quarter of the day (0–95), for the repeated hour: 96 bytes a day and
   * channel, so that a file of decades stays small in memory.
   */
  seen: Uint8Array;
  intervals: number;
}

const DATE = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/;
const DATETIME = /^(\d{1,2})\/(\d{1,2})\/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?$/;
const TIME = /^(\d{1,2}):(\d{2})$/;
const KWH = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

const pad = (n: number): string => String(n).padStart(2, "0");
const unquote = (s: string): string => {
  const t = s.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).trim() : t;
};

function civil(y: number, m: number, d: number): number | undefined {
  const ms = Date.UTC(y, m - 1, d);
  const back = new Date(ms);
  return back.getUTCFullYear() === y && back.getUTCMonth() === m - 1 && back.getUTCDate() === d ? ms : undefined;
}

function minutes(text: string): number | undefined {
  const m = TIME.exec(text);
  if (!m) return undefined;
  const h = Number(m[1]);
  const min = Number(m[2]);
  return h < 24 && min < 60 ? h * 60 + min : undefined;
}

/** Reads records one at a time, so a file can be streamed; `finish()` checks the days seen. */
export class SmtCsvReader {
  readonly result: SmtParseResult = {
    intervals: [],
    errors: [],
    warnings: [],
    esiids: [],
    skippedGapRows: 0,
    otherEsiidRows: 0,
  };
  private readonly zone;
  private readonly timezone: string;
  private readonly groups = new Map<string, Group>();
  private header = false;
  private readonly revisionCache = new Map<string, string | undefined>();
  /** Per day (UTC ms of its date): the zone's offset in minutes when constant all day, null on a clock change. */
  private readonly dayOffsets = new Map<number, number | null>();

  /** collect: keep the intervals in `result.intervals` (parseSmtCsv); a stream hands each on instead. */
  constructor(
    private readonly opts: SmtParseOptions,
    private readonly collect = true,
  ) {
    this.timezone = opts.timezone ?? SMT_TIMEZONE;
    this.zone = zoneOf(this.timezone);
  }

  private error(line: number, reason: string): void {
    this.result.errors.push({ file: this.opts.file, line, reason });
  }

  /** One CSV record and the line it ends on; returns the intervals it produced (0 or 1). */
  push(fields: string[], line: number): SmtInterval | undefined {
    const cells = fields.map(unquote);
    if (!this.header) {
      const names = cells.map((c) => c.toUpperCase());
      if (SMT_HEADER.every((h, i) => names[i] === h)) {
        this.header = true;
        return undefined;
      }
      this.error(line, `not a Smart Meter Texas interval CSV: expected the header ${SMT_HEADER.join(",")}`);
      // Without a header the file may still be rows of the format (a header lost in copying): read on.
      this.header = true;
    }
    if (cells.length !== SMT_HEADER.length) {
      this.error(line, `expected ${SMT_HEADER.length} columns, got ${cells.length}`);
      return undefined;
    }
    const [esiidCell, dateCell, revisionCell, startCell, endCell, kwhCell, qualityCell, channelCell] = cells as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const esiid = esiidCell.replace(/^'/, "").trim();
    if (!/^[0-9A-Za-z]+$/.test(esiid)) {
      this.error(line, `ESIID ${JSON.stringify(esiidCell)} is not an ESI ID`);
      return undefined;
    }
    if (this.opts.esiid !== undefined && esiid !== this.opts.esiid) {
      this.result.otherEsiidRows++;
      return undefined;
    }
    const d = DATE.exec(dateCell);
    const dayMs = d ? civil(Number(d[3]), Number(d[1]), Number(d[2])) : undefined;
    if (!d || dayMs === undefined) {
      this.error(line, `USAGE_DATE ${JSON.stringify(dateCell)} is not a date MM/DD/YYYY`);
      return undefined;
    }
    const start = minutes(startCell);
    const end = minutes(endCell);
    if (start === undefined || end === undefined || start % SLOT_MIN !== 0 || end % SLOT_MIN !== 0) {
      this.error(line, `USAGE_START_TIME/USAGE_END_TIME ${startCell}-${endCell} are not quarter hours HH:MM`);
      return undefined;
    }
    let direction: "import" | "export";
    const channel = channelCell.toLowerCase().replace(/\s+/g, " ");
    if (channel === "consumption") direction = "import";
    else if (channel === "surplus generation") direction = "export";
    else {
      this.error(
        line,
        `CONSUMPTION_SURPLUSGENERATION ${JSON.stringify(channelCell)} is neither Consumption nor Surplus Generation`,
      );
      return undefined;
    }
    let energy: number | null = null;
    if (kwhCell !== "") {
      if (!KWH.test(kwhCell)) {
        this.error(line, `USAGE_KWH ${JSON.stringify(kwhCell)} is not a number of kWh`);
        return undefined;
      }
      energy = Number(kwhCell);
      // The importers' shared value check (src/model/plausible.ts): a row of a quarter hour.
      const implausible = checkValue("interval_energy_kwh_per_hour", energy, SLOT_MIN / 60);
      if (implausible) {
        this.error(line, `USAGE_KWH ${implausible}`);
        return undefined;
      }
    }
    const q = qualityCell.toUpperCase();
    if (q !== "A" && q !== "E" && q !== "") {
      this.error(line, `ESTIMATED_ACTUAL ${JSON.stringify(qualityCell)} is neither A nor E`);
      return undefined;
    }
    const quality = energy === null ? "missing" : q === "E" ? "estimated" : "actual";

    const day = `${d[3]}-${pad(Number(d[1]))}-${pad(Number(d[2]))}`;
    const key = `${esiid}|${day}|${direction}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { label: `${dateCell} ${channelCell}`, day, seen: new Uint8Array((24 * 60) / SLOT_MIN), intervals: 0 };
      this.groups.set(key, group);
    }
    // The end column is right even on the mislabelled first row of the repeated hour; 00:00 is the next midnight.
    const wallStart = (end === 0 ? 24 * 60 : end) - SLOT_MIN;
    const candidates = this.toUtc(dayMs, dayMs + wallStart * 60_000);
    const hhmm = `${pad(Math.floor(wallStart / 60))}:${pad(wallStart % 60)}`;
    if (candidates.length === 0) {
      if (energy === null) {
        this.result.skippedGapRows++;
        return undefined;
      }
      this.error(line, `${dateCell} ${hhmm} does not exist in ${this.timezone} (clocks skip it) but has a reading`);
      return undefined;
    }
    const slot = wallStart / SLOT_MIN;
    const occurrence = group.seen[slot] ?? 0;
    const utc = candidates[occurrence];
    if (utc === undefined) {
      this.error(line, `${dateCell} ${hhmm} ${channelCell} appears ${occurrence + 1} times`);
      return undefined;
    }
    group.seen[slot] = Math.min(255, occurrence + 1);
    group.intervals++;
    if (!this.result.esiids.includes(esiid)) this.result.esiids.push(esiid);
    const interval: SmtInterval = {
      meterId: this.opts.meterId,
      start: utc,
      end: utc + SLOT_MS,
      energyKwh: energy,
      direction,
      quality,
      esiid,
      day,
    };
    const revision = this.revision(revisionCell);
    if (revision !== undefined) interval.revision = revision;
    if (this.collect) this.result.intervals.push(interval);
    return interval;
  }

  /**
   * The instants a wall time of a day maps to. Most days keep one offset from end to end: that is checked with two
   * zone lookups per day, and only the two days a year with a clock change look each time up.
   */
  private toUtc(dayMs: number, wall: number): number[] {
    let offset = this.dayOffsets.get(dayMs);
    if (offset === undefined) {
      // Far enough out to cover the local day whatever the offset (±14 h); clocks do not change twice in 2 days.
      const before = this.zone.offset(dayMs - 14 * 3_600_000);
      const after = this.zone.offset(dayMs + 38 * 3_600_000);
      offset = before === after ? before : null;
      this.dayOffsets.set(dayMs, offset);
    }
    return offset === null ? wallToUtc(this.zone, wall) : [wall - offset * 60_000];
  }

  /** REVISION_DATE (local time) as ISO UTC; constant per day, so converted once per distinct text. */
  private revision(text: string): string | undefined {
    if (this.revisionCache.has(text)) return this.revisionCache.get(text);
    let out: string | undefined;
    const m = DATETIME.exec(text);
    const dayMs = m ? civil(Number(m[3]), Number(m[1]), Number(m[2])) : undefined;
    if (m && dayMs !== undefined && Number(m[4]) < 24 && Number(m[5]) < 60) {
      const wall = dayMs + ((Number(m[4]) * 60 + Number(m[5])) * 60 + Number(m[6] ?? 0)) * 1000;
      // In the skipped hour (it never is: SMT revises in the morning) the wall time read as standard time is kept.
      const [first] = wallToUtc(this.zone, wall);
      out = new Date(first ?? wall - this.zone.offset(wall) * 60_000).toISOString();
    }
    this.revisionCache.set(text, out);
    return out;
  }

  /** Checks each day has as many intervals as it has quarter hours (92, 96 or 100); returns the result. */
  finish(): SmtParseResult {
    if (!this.header && this.result.errors.length === 0)
      this.error(1, "empty file: no Smart Meter Texas header and no rows");
    for (const g of this.groups.values()) {
      const expected = dayMinutes(this.zone, g.day) / SLOT_MIN;
      if (g.intervals !== expected)
        this.result.warnings.push(
          `${this.opts.file}: ${g.label} has ${g.intervals} intervals; a whole day in ${this.timezone} has ${expected}`,
        );
    }
    return this.result;
  }
}

/** Parses a whole CSV held in memory (an email attachment, a downloaded file). */
export function parseSmtCsv(text: string | Buffer, opts: SmtParseOptions): SmtParseResult {
  const reader = new SmtCsvReader(opts);
  const records = parseSync(text, CSV_OPTIONS) as unknown as { record: string[]; info: { lines: number } }[];
  for (const { record, info } of records) reader.push(record, info.lines);
  return reader.finish();
}

/**
 * The same over a stream (the decode CLI reads stdin, `import` a file); yields each interval or row error as it comes
 * and keeps none, so a file of any size is read in bounded memory.
 */
export async function* streamSmtCsv(
  input: AsyncIterable<Buffer | string>,
  opts: SmtParseOptions,
): AsyncIterable<{ interval: SmtInterval; line: number } | { error: RowError } | { warning: string }> {
  const reader = new SmtCsvReader(opts, false);
  const parser = parse(CSV_OPTIONS);
  const feed = (async () => {
    try {
      for await (const chunk of input) if (!parser.write(chunk)) await new Promise((r) => parser.once("drain", r));
      parser.end();
    } catch (err) {
      parser.destroy(err as Error);
    }
  })();
  let reported = 0;
  for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    const interval = reader.push(record, info.lines);
    while (reported < reader.result.errors.length) yield { error: reader.result.errors[reported++]! };
    if (interval) yield { interval, line: info.lines };
  }
  await feed;
  const result = reader.finish();
  while (reported < result.errors.length) yield { error: result.errors[reported++]! };
  for (const w of result.warnings) yield { warning: w };
}
