/**
 * Element text as the device writes it: Windows-1252 bytes, with XML's predefined entities where the firmware
 * bothered to escape. Hand-written because Node's own `TextDecoder("windows-1252")` decodes as Latin-1 since
 * 20.18.3 (nodejs/node#56542, #60888), turning 0x80–0x9F into C1 controls instead of € “ ” and the like.
 */

/** 0x80–0x9F per the WHATWG index; the five bytes Windows-1252 leaves undefined keep their C1 code point. */
export const CP1252_80_9F: readonly number[] = [
  0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d,
  0x017d, 0x008f, 0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a,
  0x0153, 0x009d, 0x017e, 0x0178,
];
const HIGH = CP1252_80_9F.map((c) => String.fromCharCode(c));

export function decodeCp1252(buf: Buffer, start = 0, end = buf.length): string {
  let plain = true;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b >= 0x80 && b < 0xa0) {
      plain = false;
      break;
    }
  }
  // Everywhere else Windows-1252 and Latin-1 agree, and Latin-1 is one native call.
  if (plain) return buf.toString("latin1", start, end);
  let out = "";
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    out += b >= 0x80 && b < 0xa0 ? HIGH[b - 0x80]! : String.fromCharCode(b);
  }
  return out;
}

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Resolves `&amp;`, `&#233;`, `&#xE9;`; an `&` that starts no entity is kept (the firmware does not always escape it). */
export function unescapeXml(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (whole, ref: string) => {
    if (ref[0] !== "#") return NAMED[ref] ?? whole;
    const code = ref[1] === "x" ? Number.parseInt(ref.slice(2), 16) : Number.parseInt(ref.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}
