import { DateTime } from "luxon";

/**
 * A DLMS date-time (12 bytes): year (2 bytes), month, day, weekday, hour, minute, second, hundredths, the deviation
 * (int16, minutes to add to the local time to get UTC; 0x8000 when the meter does not say) and the clock status
 * (bit 7: daylight saving time in effect). Without a deviation the time is read in the meter's configured zone, and
 * the status picks the offset on the repeated autumn hour. Returns UTC milliseconds, or undefined when the meter
 * left the date or time unspecified (0xFF) or sent an impossible one.
 */
export function dlmsDateTime(b: Uint8Array, zone: string): number | undefined {
  if (b.length !== 12) return undefined;
  const year = (b[0]! << 8) | b[1]!;
  const [month, day, , hour, minute] = [b[2]!, b[3]!, b[4]!, b[5]!, b[6]!];
  const second = b[7] === 0xff ? 0 : b[7]!;
  const hundredths = b[8] === 0xff ? 0 : b[8]!;
  if (year === 0xffff || month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  if (hour > 23 || minute > 59 || second > 59 || hundredths > 99) return undefined;
  const deviation = (((b[9]! << 8) | b[10]!) << 16) >> 16;
  if (deviation !== -0x8000) {
    if (deviation < -720 || deviation > 720) return undefined;
    const local = Date.UTC(year, month - 1, day, hour, minute, second, hundredths * 10);
    if (new Date(local).getUTCDate() !== day) return undefined;
    return local + deviation * 60_000;
  }
  const status = b[11]!;
  const start = hourStart(zone, year, month, day, hour, status === 0xff ? undefined : (status & 0x80) !== 0);
  return start === undefined ? undefined : start + minute * 60_000 + second * 1000 + hundredths * 10;
}

/**
 * UTC ms of the start of a local hour in a zone, cached: a meter sends the same hour hundreds of times, and the zone
 * rules (luxon) cost more than the rest of the frame. Offsets change on whole hours in the zones HAN meters use.
 */
const HOURS = new Map<string, number | undefined>();

function hourStart(zone: string, year: number, month: number, day: number, hour: number, dst?: boolean) {
  const key = `${zone}|${year}|${month}|${day}|${hour}|${dst}`;
  if (HOURS.has(key)) return HOURS.get(key);
  if (HOURS.size >= 512) HOURS.clear();
  let out: number | undefined;
  const dt = DateTime.fromObject({ year, month, day, hour }, { zone });
  if (dt.isValid && dt.day === day && dt.hour === hour) {
    out = dt.toMillis();
    if (dst !== undefined) {
      // On the repeated hour the same wall clock is two instants; the clock status says which.
      for (const cand of [out, out - 3_600_000, out + 3_600_000]) {
        const c = DateTime.fromMillis(cand, { zone });
        if (c.isInDST === dst && c.hour === hour && c.day === day) {
          out = cand;
          break;
        }
      }
    }
  }
  HOURS.set(key, out);
  return out;
}
