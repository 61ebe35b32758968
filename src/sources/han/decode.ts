import { AxdrError, AxdrReader } from "./axdr.js";
import { type Identity, listValues, readList } from "./cosem.js";
import { dlmsDateTime } from "./time.js";

/**
 * A DLMS data-notification APDU (0x0F) as HAN ports push it: the invoke id (4 bytes), the optional date-time of
 * the notification (0x00 when absent; else 12 bytes, after 0x0C or 0x09 0x0C), then the COSEM list. A pure
 * function of the bytes; the framing (HDLC, M-Bus) and the decryption happen before it.
 */
export interface HanTelegram {
  /** The meter's clock (UTC ms): the list's clock object, else the notification's date-time. */
  time?: number;
  values: Record<string, number>;
  meter: Identity;
  /** Which list layout was read (see src/sources/han/cosem.ts). */
  layout: string;
  invokeId: number;
  encrypted: boolean;
  /** OBIS codes sent that are no catalogue quantity. */
  unknown: string[];
}

export type DecodeResult = { ok: true; telegram: HanTelegram } | { ok: false; reason: string };

export interface HanDecodeOptions {
  /** Zone of the meter's clock when it sends no deviation from UTC; default Europe/Oslo. */
  timezone?: string;
  encrypted?: boolean;
}

export const DATA_NOTIFICATION = 0x0f;
export const GLO_CIPHERING = 0xdb;

export function decodeNotification(apdu: Buffer, opts: HanDecodeOptions = {}): DecodeResult {
  if (apdu.length === 0) return { ok: false, reason: "empty APDU" };
  const tag = apdu[0]!;
  if (tag === 0xe0) return { ok: false, reason: "general block transfer (0xE0) is not supported" };
  if (tag !== DATA_NOTIFICATION)
    return { ok: false, reason: `APDU 0x${tag.toString(16).padStart(2, "0")} is not a data notification (0x0F)` };
  if (apdu.length < 6) return { ok: false, reason: "data notification too short" };
  const invokeId = apdu.readUInt32BE(1);
  let at = 5;
  let stamp: Buffer | undefined;
  const dt = apdu[at]!;
  if (dt === 0x00) at += 1;
  else if (dt === 0x0c || (dt === 0x09 && apdu[at + 1] === 0x0c)) {
    at += dt === 0x09 ? 2 : 1;
    if (at + 12 > apdu.length) return { ok: false, reason: "data notification cut inside its date-time" };
    stamp = apdu.subarray(at, at + 12);
    at += 12;
  } else return { ok: false, reason: `date-time field of an unknown form (0x${dt.toString(16)})` };
  const r = new AxdrReader(apdu, at);
  let body: ReturnType<AxdrReader["data"]>;
  try {
    body = r.data();
  } catch (e) {
    return { ok: false, reason: e instanceof AxdrError ? e.message : String(e) };
  }
  if (!body) return { ok: false, reason: "data notification without a list" };
  const list = readList(body);
  if (typeof list === "string") return { ok: false, reason: list };
  const lv = listValues(list);
  const zone = opts.timezone ?? "Europe/Oslo";
  const time = (lv.clock && dlmsDateTime(lv.clock, zone)) ?? (stamp && dlmsDateTime(stamp, zone));
  const telegram: HanTelegram = {
    values: lv.values,
    meter: lv.identity,
    layout: list.layout,
    invokeId,
    encrypted: opts.encrypted === true,
    unknown: lv.unknown.map((o) => o.obis),
  };
  if (time !== undefined) telegram.time = time;
  return { ok: true, telegram };
}
