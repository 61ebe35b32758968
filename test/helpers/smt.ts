/**
 * The project's own Smart Meter Texas fixtures: CSV days written the way SMT writes them (facts in
 * ../shared/data/smt/SOURCES.md, verified on a real portal download), and the daily email around them.
 *   - a normal day: 96 rows per channel, 00:00,00:15 … 23:45,00:00;
 *   - spring forward: still 96 rows, the 4 rows of the skipped hour (02:00 … 02:45) with blank kWh and quality;
 *   - fall back: 100 rows, the hour 01:00 … 01:45 twice, the first row of the second pass labelled `02:00,01:15`;
 *   - kWh with up to 3 decimals, no leading zero, trailing zeros trimmed (.145 .14 .1 1 1.144), 0 as `0`;
 *   - `'` before the ESIID, REVISION_DATE the next morning, Consumption rows then Surplus Generation rows.
 * Values are made up (a seeded generator), so every fixture is reproducible.
 */
import { DateTime } from "luxon";

export const HEADER =
  "ESIID,USAGE_DATE,REVISION_DATE,USAGE_START_TIME,USAGE_END_TIME,USAGE_KWH,ESTIMATED_ACTUAL,CONSUMPTION_SURPLUSGENERATION";
export const ZONE = "America/Chicago";
export const ESIID = "10443720000000001";
/**
 * The address the subscription emails come from. An assumption (the real sender is whatever the user's mailbox
 * shows; it is configured, never built in): the tests only need one fixed address and a different one.
 */
export const SMT_SENDER = "noreply@smartmetertexas.com";

export type Channel = "Consumption" | "Surplus Generation";

export interface Row {
  text: string;
  /** UTC ms of the interval, or null for the blank rows of the skipped hour. */
  start: number | null;
  channel: Channel;
  /** The kWh text as written ("" when blank). */
  kwh: string;
  quality: "A" | "E" | "";
}

export interface DaySpec {
  /** Local civil date, YYYY-MM-DD. */
  day: string;
  esiid?: string;
  channels?: Channel[];
  /** Seed of the made-up values; the same seed gives the same day. */
  seed?: number;
  /** REVISION_DATE; default the next morning at 07:41:02. */
  revision?: string;
  /** Slot indexes (0-based, per channel, in file order) written as estimated. */
  estimated?: number[];
  /** Override one value: (channel, slot) → kWh text, or undefined to keep the generated one. */
  override?: (channel: Channel, slot: number) => string | undefined;
}

const pad = (n: number): string => String(n).padStart(2, "0");
const hhmm = (min: number): string => `${pad(Math.floor(min / 60) % 24)}:${pad(min % 60)}`;

/** kWh as SMT writes it: `.145`, `.14`, `.1`, `1`, `1.144`, `0`. */
export function smtKwh(wh: number): string {
  if (wh === 0) return "0";
  const text = (wh / 1000).toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
  return text.startsWith("0.") ? text.slice(1) : text;
}

/** A small deterministic generator (mulberry32). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The rows of one day, all channels, in SMT's order. */
export function smtDay(spec: DaySpec): Row[] {
  const esiid = spec.esiid ?? ESIID;
  const midnight = DateTime.fromISO(spec.day, { zone: ZONE }).startOf("day");
  const next = midnight.plus({ days: 1 });
  const minutes = next.diff(midnight, "minutes").minutes;
  const usageDate = midnight.toFormat("MM/dd/yyyy");
  const revision = spec.revision ?? `${next.toFormat("MM/dd/yyyy")} 07:41:02`;
  const rnd = random(spec.seed ?? Number(spec.day.replace(/-/g, "")));
  const rows: Row[] = [];
  for (const channel of spec.channels ?? ["Consumption"]) {
    // Wall-clock labels and the UTC start each row stands for.
    const slots: { start: string; end: string; utc: number | null }[] = [];
    if (minutes === 1440 || minutes === 1380) {
      for (let m = 0; m < 1440; m += 15) {
        const wall = midnight.set({ hour: Math.floor(m / 60), minute: m % 60 });
        // luxon moves a wall time in the skipped hour forward; SMT keeps the row, blank.
        const exists = wall.hour === Math.floor(m / 60) && wall.minute === m % 60;
        slots.push({ start: hhmm(m), end: hhmm(m + 15), utc: exists ? wall.toMillis() : null });
      }
    } else {
      // 25 hours: walk UTC from midnight; the second pass of the repeated hour starts with the mislabelled row.
      const seen = new Set<string>();
      for (let t = midnight.toMillis(); t < next.toMillis(); t += 15 * 60_000) {
        const local = DateTime.fromMillis(t, { zone: ZONE });
        const m = local.hour * 60 + local.minute;
        const label = hhmm(m);
        const repeat = seen.has(label);
        seen.add(label);
        slots.push({ start: repeat && local.minute === 0 ? hhmm(m + 60) : label, end: hhmm(m + 15), utc: t });
      }
    }
    slots.forEach((s, i) => {
      let kwh = "";
      let quality: Row["quality"] = "";
      if (s.utc !== null) {
        const hour = DateTime.fromMillis(s.utc, { zone: ZONE }).hour;
        // Consumption all day; surplus only while the sun is up.
        const wh =
          channel === "Consumption"
            ? 20 + Math.floor(rnd() * 600)
            : hour >= 7 && hour < 19
              ? Math.floor(rnd() * 900)
              : 0;
        kwh = spec.override?.(channel, i) ?? smtKwh(wh);
        quality = spec.estimated?.includes(i) ? "E" : "A";
      }
      rows.push({
        text: `'${esiid},${usageDate},${revision},${s.start},${s.end},${kwh},${quality},${channel}`,
        start: s.utc,
        channel,
        kwh,
        quality,
      });
    });
  }
  return rows;
}

export function smtCsv(rows: readonly Row[], eol = "\n"): string {
  return [HEADER, ...rows.map((r) => r.text), ""].join(eol);
}

/** kWh text → integer Wh (3 decimals at most), so sums are exact. */
export function wh(kwh: string): number {
  if (kwh === "") return 0;
  const [int = "", frac = ""] = kwh.split(".");
  return Number(int || "0") * 1000 + Number(frac.padEnd(3, "0"));
}

/** Expected totals in Wh from the rows: per UTC hour (ISO `…T05:00:00Z`) and direction, and per local day. */
export function expectedTotals(days: { day: string; rows: readonly Row[] }[]) {
  const hourly = new Map<string, { import: number; export: number }>();
  const daily = new Map<string, { import: number; export: number }>();
  for (const { day, rows } of days) {
    for (const r of rows) {
      if (r.start === null) continue;
      const dir = r.channel === "Consumption" ? "import" : "export";
      const hour = `${new Date(r.start).toISOString().slice(0, 13)}:00:00Z`;
      const h = hourly.get(hour) ?? { import: 0, export: 0 };
      h[dir] += wh(r.kwh);
      hourly.set(hour, h);
      const d = daily.get(day) ?? { import: 0, export: 0 };
      d[dir] += wh(r.kwh);
      daily.set(day, d);
    }
  }
  return { hourly, daily };
}

export interface MailPart {
  filename: string;
  contentType: string;
  content: string | Buffer;
}

/**
 * A message as the subscription sends it: multipart/mixed, a short text body, the report attached as base64.
 * The subject and body wording are stand-ins; what the bridge relies on is the sender and the CSV attachment.
 */
export function smtEmail(opts: {
  from?: string;
  to?: string;
  date: Date;
  subject?: string;
  attachments: MailPart[];
  id?: string;
}): string {
  const boundary = `----=_Part_${Math.abs(hash(opts.date.toISOString() + (opts.id ?? "")))}`;
  const lines = [
    `From: Smart Meter Texas <${opts.from ?? SMT_SENDER}>`,
    `To: ${opts.to ?? "home@example.test"}`,
    `Subject: ${opts.subject ?? "Smart Meter Texas Subscription Report"}`,
    `Date: ${opts.date.toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: <${opts.id ?? opts.date.getTime()}@smt.example.test>`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=UTF-8",
    "Content-Transfer-Encoding: 7bit",
    "",
    "Attached is the report you subscribed to on Smart Meter Texas.",
    "",
  ];
  for (const a of opts.attachments) {
    const b64 = Buffer.from(a.content).toString("base64");
    lines.push(
      `--${boundary}`,
      `Content-Type: ${a.contentType}; name="${a.filename}"`,
      "Content-Transfer-Encoding: base64",
      `Content-Disposition: attachment; filename="${a.filename}"`,
      "",
      ...(b64.match(/.{1,76}/g) ?? []),
      "",
    );
  }
  lines.push(`--${boundary}--`, "");
  return lines.join("\r\n");
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

export const csvAttachment = (csv: string, filename = "IntervalData.csv"): MailPart => ({
  filename,
  contentType: "text/csv",
  content: csv,
});
