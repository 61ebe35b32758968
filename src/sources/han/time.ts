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
  const status = b[11]!;
  if (deviation !== -0x8000) {
    if (deviation < -720 || deviation > 720) return undefined;
    const local = Date.UTC(year, month - 1, day, hour, minute, second, hundredths * 10);
    if (new Date(local).getUTCDate() !== day) return undefined;
    return local + deviation * 60_000;
  }
  const dt = DateTime.fromObject({ year, month, day, hour, minute, second, millisecond: hundredths * 10 }, { zone });
  if (!dt.isValid || dt.day !== day) return undefined;
  const ms = dt.toMillis();
  if (status !== 0xff) {
    // On the repeated hour the same wall clock is two instants; the status says which.
    const dst = (status & 0x80) !== 0;
    for (const cand of [ms, ms - 3_600_000, ms + 3_600_000]) {
      const c = DateTime.fromMillis(cand, { zone });
      if (c.isInDST === dst && c.hour === hour && c.minute === minute && c.day === day) return cand;
    }
  }
  return ms;
}
