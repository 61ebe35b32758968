/**
 * DLMS data as A-XDR encodes it (IEC 62056-6-2): a type tag, then the value; arrays and structures give their
 * element count, strings their length, in the BER short or long form. A list cut short inside an otherwise valid
 * frame (some Iskra meters announce 12 elements and send 8) keeps the elements that are complete, and says so.
 */
export enum Tag {
  Null = 0x00,
  Array = 0x01,
  Structure = 0x02,
  Boolean = 0x03,
  BitString = 0x04,
  DoubleLong = 0x05,
  DoubleLongUnsigned = 0x06,
  OctetString = 0x09,
  VisibleString = 0x0a,
  Utf8String = 0x0c,
  Bcd = 0x0d,
  Integer = 0x0f,
  Long = 0x10,
  Unsigned = 0x11,
  LongUnsigned = 0x12,
  Long64 = 0x14,
  Long64Unsigned = 0x15,
  Enum = 0x16,
  Float32 = 0x17,
  Float64 = 0x18,
  DateTime = 0x19,
  Date = 0x1a,
  Time = 0x1b,
}

export type Data =
  | { tag: Tag.Array | Tag.Structure; items: Data[] }
  | { tag: Tag.Null }
  | { tag: Tag.Boolean; value: boolean }
  | { tag: Tag.OctetString | Tag.BitString | Tag.DateTime | Tag.Date | Tag.Time; bytes: Buffer }
  | { tag: Tag.VisibleString | Tag.Utf8String; text: string; bytes: Buffer }
  | { tag: NumberTag; value: number };

type NumberTag =
  | Tag.DoubleLong
  | Tag.DoubleLongUnsigned
  | Tag.Bcd
  | Tag.Integer
  | Tag.Long
  | Tag.Unsigned
  | Tag.LongUnsigned
  | Tag.Long64
  | Tag.Long64Unsigned
  | Tag.Enum
  | Tag.Float32
  | Tag.Float64;

const MAX_DEPTH = 8;

/** Thrown for data no meter sends (an unknown type tag, nesting too deep): the APDU is refused. */
export class AxdrError extends Error {}

export class AxdrReader {
  /** The input ended inside an element. */
  truncated = false;

  constructor(
    private readonly b: Buffer,
    public at = 0,
  ) {}

  get remaining(): number {
    return this.b.length - this.at;
  }

  /** A BER length (short form, or 0x81/0x82/0x83/0x84 and that many bytes); undefined when the input ends. */
  length(): number | undefined {
    const b = this.b;
    if (this.at >= b.length) return this.cut();
    const first = b[this.at++]!;
    if (first < 0x80) return first;
    const n = first & 0x7f;
    if (n < 1 || n > 4) throw new AxdrError(`length field 0x${first.toString(16)} of an unsupported form`);
    if (this.at + n > b.length) return this.cut();
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + b[this.at++]!;
    return v;
  }

  private cut(): undefined {
    this.truncated = true;
    this.at = this.b.length;
    return undefined;
  }

  private take(n: number): Buffer | undefined {
    if (this.at + n > this.b.length) return this.cut();
    const s = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return s;
  }

  /** One element; undefined when the input ends inside it (then `truncated` is set). */
  data(depth = 0): Data | undefined {
    if (depth > MAX_DEPTH) throw new AxdrError("data nested too deep");
    if (this.at >= this.b.length) return this.cut();
    const tag = this.b[this.at++]! as Tag;
    switch (tag) {
      case Tag.Null:
        return { tag };
      case Tag.Array:
      case Tag.Structure: {
        const count = this.length();
        if (count === undefined) return undefined;
        const items: Data[] = [];
        for (let i = 0; i < count; i++) {
          const d = this.data(depth + 1);
          if (d === undefined) break;
          items.push(d);
        }
        return { tag, items };
      }
      case Tag.Boolean: {
        const s = this.take(1);
        return s && { tag, value: s[0] !== 0 };
      }
      case Tag.BitString: {
        const bits = this.length();
        const s = bits === undefined ? undefined : this.take(Math.ceil(bits / 8));
        return s && { tag, bytes: s };
      }
      case Tag.OctetString:
      case Tag.VisibleString:
      case Tag.Utf8String: {
        const n = this.length();
        const s = n === undefined ? undefined : this.take(n);
        if (!s) return undefined;
        return tag === Tag.OctetString
          ? { tag, bytes: s }
          : { tag, bytes: s, text: s.toString(tag === Tag.Utf8String ? "utf8" : "latin1") };
      }
      case Tag.DateTime:
      case Tag.Date:
      case Tag.Time: {
        const s = this.take(tag === Tag.DateTime ? 12 : tag === Tag.Date ? 5 : 4);
        return s && { tag, bytes: s };
      }
      case Tag.Integer:
      case Tag.Unsigned:
      case Tag.Enum:
      case Tag.Bcd: {
        const s = this.take(1);
        return s && { tag, value: tag === Tag.Integer ? s.readInt8(0) : s[0]! };
      }
      case Tag.Long:
      case Tag.LongUnsigned: {
        const s = this.take(2);
        return s && { tag, value: tag === Tag.Long ? s.readInt16BE(0) : s.readUInt16BE(0) };
      }
      case Tag.DoubleLong:
      case Tag.DoubleLongUnsigned:
      case Tag.Float32: {
        const s = this.take(4);
        if (!s) return undefined;
        const value =
          tag === Tag.DoubleLong ? s.readInt32BE(0) : tag === Tag.Float32 ? s.readFloatBE(0) : s.readUInt32BE(0);
        return { tag, value };
      }
      case Tag.Long64:
      case Tag.Long64Unsigned:
      case Tag.Float64: {
        const s = this.take(8);
        if (!s) return undefined;
        const value =
          tag === Tag.Float64
            ? s.readDoubleBE(0)
            : Number(tag === Tag.Long64 ? s.readBigInt64BE(0) : s.readBigUInt64BE(0));
        return { tag, value };
      }
      default:
        throw new AxdrError(`unknown data type 0x${(tag as number).toString(16).padStart(2, "0")}`);
    }
  }
}

/** The number an element holds, if it holds one. */
export function numberOf(d: Data | undefined): number | undefined {
  return d && "value" in d && typeof d.value === "number" && Number.isFinite(d.value) ? d.value : undefined;
}

/** The bytes of an octet or text string. */
export function bytesOf(d: Data | undefined): Buffer | undefined {
  return d && "bytes" in d && (d.tag === Tag.OctetString || d.tag === Tag.VisibleString || d.tag === Tag.Utf8String)
    ? d.bytes
    : undefined;
}

/** An OBIS code sent as a 6-byte octet string, as "a-b:c.d.e" (the last group, 255 when unused, left off). */
export function obisOf(d: Data | undefined): string | undefined {
  if (!d || d.tag !== Tag.OctetString || d.bytes.length !== 6) return undefined;
  const o = d.bytes;
  return `${o[0]}-${o[1]}:${o[2]}.${o[3]}.${o[4]}`;
}

/** Printable text of a string element (identity strings: list version, meter id and type). */
export function textOf(d: Data | undefined): string | undefined {
  const b = bytesOf(d);
  if (!b) return undefined;
  for (const c of b) if (c < 0x20 || c > 0x7e) return undefined;
  return b.toString("latin1");
}
