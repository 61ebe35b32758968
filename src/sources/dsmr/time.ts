import { DateTime } from "luxon";

/**
 * DSMR timestamps are the meter's local wall clock, YYMMDDhhmmss followed by S (summer) or W
 * (winter). The zone decides the offset; the flag only settles the repeated autumn hour, where both
 * offsets are real. Meters that send a wrong flag (an "S" in March) still come out right, as they
 * do in dsmr_parser. Zone transitions are worked out once per zone and year, so the hot path does
 * arithmetic only.
 */
interface ZoneYear {
  start: number;
  /** Offset in minutes at the start of the year, then at each transition. */
  offsets: number[];
  /** UTC ms of each transition. */
  at: number[];
  min: number;
  max: number;
}
const cache = new Map<string, Map<number, ZoneYear>>();
const DAY = 86_400_000;

function luxonOffset(zone: string, utc: number): number {
  return DateTime.fromMillis(utc, { zone }).offset;
}

let lastZone = "";
let lastYear = 0;
let last: ZoneYear | undefined;

function zoneYear(zone: string, year: number): ZoneYear {
  if (last && year === lastYear && zone === lastZone) return last;
  last = zoneYearSlow(zone, year);
  lastZone = zone;
  lastYear = year;
  return last;
}

function zoneYearSlow(zone: string, year: number): ZoneYear {
  let years = cache.get(zone);
  if (!years) cache.set(zone, (years = new Map()));
  let z = years.get(year);
  if (z) return z;
  const start = Date.UTC(year, 0, 1);
  const offsets = [luxonOffset(zone, start)];
  const at: number[] = [];
  let prevT = start;
  for (let day = 1; day <= 367; day++) {
    const t = start + day * DAY;
    const off = luxonOffset(zone, t);
    if (off !== offsets[offsets.length - 1]) {
      let lo = prevT;
      let hi = t;
      while (hi - lo > 1000) {
        const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
        if (luxonOffset(zone, mid) === off) hi = mid;
        else lo = mid;
      }
      at.push(hi);
      offsets.push(off);
    }
    prevT = t;
  }
  z = { start, offsets, at, min: Math.min(...offsets), max: Math.max(...offsets) };
  years.set(year, z);
  return z;
}

function offsetAt(z: ZoneYear, utc: number): number {
  let off = z.offsets[0]!;
  for (let i = 0; i < z.at.length; i++) if (utc >= z.at[i]!) off = z.offsets[i + 1]!;
  return off;
}

/** UTC ms for a wall-clock time in `zone`; `summer` (the S flag) picks between two valid offsets. */
export function wallToUtc(zone: string, wall: number, summer: boolean | undefined): number {
  // 365.2425-day years are close enough to find the year; the year's own table fixes the rest.
  const z = zoneYear(zone, 1970 + Math.floor(wall / 31_556_952_000));
  const a = wall - z.min * 60_000; // standard time
  const b = wall - z.max * 60_000; // summer time
  const aOk = offsetAt(z, a) === z.min;
  const bOk = z.max !== z.min && offsetAt(z, b) === z.max;
  if (aOk && bOk) return summer ? b : a;
  if (aOk) return a;
  if (bOk) return b;
  // The skipped spring hour does not exist; a meter that claims it gets the flag's offset.
  return summer ? b : a;
}

/** Two decimal digits at `i`, or -1. */
function pair(buf: Uint8Array, i: number): number {
  const hi = buf[i]! - 48;
  const lo = buf[i + 1]! - 48;
  return hi >= 0 && hi <= 9 && lo >= 0 && lo <= 9 ? hi * 10 + lo : -1;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Reads a 12-digit timestamp plus optional flag at `buf[start..end)`; null when it is not a valid date. */
export function parseDsmrTime(buf: Uint8Array, start: number, end: number, zone: string): number | null {
  if (end - start < 12) return null;
  const yy = pair(buf, start);
  const mo = pair(buf, start + 2);
  const dd = pair(buf, start + 4);
  const hh = pair(buf, start + 6);
  const mi = pair(buf, start + 8);
  const ss = pair(buf, start + 10);
  if (yy < 0 || mo < 0 || dd < 0 || hh < 0 || mi < 0 || ss < 0) return null;
  if (mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59) return null;
  // Two-digit years: empty M-Bus slots report 1970 ("700101010000W"), which must stay in the past.
  const year = yy >= 70 ? 1900 + yy : 2000 + yy;
  // Date.UTC rolls 31 February over into March; a meter that says so is wrong, not early March.
  if (dd > 28 && dd > daysInMonth(year, mo)) return null;
  const wall = Date.UTC(year, mo - 1, dd, hh, mi, ss);
  const flag = end - start > 12 ? buf[start + 12]! | 0x20 : 0; // lower-cased; some meters send 's'
  return wallToUtc(zone, wall, flag === 0x73 ? true : flag === 0x77 ? false : undefined);
}

/** The placeholder that empty M-Bus slots report (1970-01-01 01:00:00 or all zeros). */
export function isPlaceholderTime(ms: number | null): boolean {
  return ms === null || ms < Date.UTC(2000, 0, 2);
}
