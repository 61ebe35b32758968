/**
 * The dates `report` and `export` take, checked before anything is read or written: real days and months of the
 * years 1970–2199, --from not after --to, and for reports at most MAX_REPORT_DAYS (a report writes the calendar of
 * the days it covers). A bad range is one line naming the option and what was expected; the command exits 2.
 */
import { ConfigError } from "../config/load.js";

/** About ten years of days. */
export const MAX_REPORT_DAYS = 3660;
const FIRST_YEAR = 1970;
const LAST_YEAR = 2199;
const DAY_MS = 86_400_000;

/** A --from/--to that is not a date, is out of order or spans too much: one line, exit 2 (a ConfigError). */
export class DateRangeError extends ConfigError {
  constructor(message: string) {
    super(message);
    this.name = "DateRangeError";
  }
}

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH_RE = /^(\d{4})-(\d{2})$/;

function yearOk(y: number): boolean {
  return y >= FIRST_YEAR && y <= LAST_YEAR;
}

/** True for a real calendar day YYYY-MM-DD (not 2024-02-30) within the years taken. */
export function isDay(v: string): boolean {
  const m = DAY_RE.exec(v);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!yearOk(y)) return false;
  return new Date(Date.UTC(y, mo - 1, d)).toISOString().slice(0, 10) === v;
}

/** True for a real month YYYY-MM within the years taken. */
export function isMonth(v: string): boolean {
  const m = MONTH_RE.exec(v);
  return m !== null && yearOk(Number(m[1])) && Number(m[2]) >= 1 && Number(m[2]) <= 12;
}

/** An ISO time with a real date (2025-03-30T01:00:00Z), in UTC ms; undefined when it is not one. */
export function isoTime(v: string): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T/.exec(v);
  if (!m || !isDay(m[1] as string)) return undefined;
  const ms = Date.parse(v);
  return Number.isFinite(ms) ? ms : undefined;
}

export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS) + 1;
}

export const yearsTaken = `${FIRST_YEAR}–${LAST_YEAR}`;
