import { IANAZone } from "luxon";

const DAY_MS = 86_400_000;

export function zoneOf(timezone: string): IANAZone {
  const zone = IANAZone.create(timezone);
  if (!zone.isValid) throw new Error(`unknown time zone "${timezone}"`);
  return zone;
}

/**
 * The UTC instants at which a zone's clocks show `wall` (a wall-clock time written as if it were UTC ms):
 * none in the hour skipped in spring, two in the hour repeated in autumn (earlier first), else one.
 */
export function wallToUtc(zone: Pick<IANAZone, "offset">, wall: number): number[] {
  const out: number[] = [];
  // Clocks change at most once around a given time: the offsets a day either side cover every candidate.
  for (const o of new Set([zone.offset(wall - DAY_MS), zone.offset(wall), zone.offset(wall + DAY_MS)])) {
    const t = wall - o * 60_000;
    if (zone.offset(t) === o && !out.includes(t)) out.push(t);
  }
  return out.sort((a, b) => a - b);
}

/** UTC ms of the local midnight starting `day` (YYYY-MM-DD); the first instant of the day if midnight is skipped. */
export function localMidnight(zone: IANAZone, day: string): number {
  const wall = Date.parse(`${day}T00:00:00Z`);
  const [first] = wallToUtc(zone, wall);
  return first ?? wall - zone.offset(wall + DAY_MS) * 60_000;
}

/** Minutes from one local midnight to the next: 1380, 1440 or 1500 where clocks change by an hour. */
export function dayMinutes(zone: IANAZone, day: string): number {
  const next = new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
  return (localMidnight(zone, next) - localMidnight(zone, day)) / 60_000;
}
