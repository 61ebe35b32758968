import { decodeCp1252, unescapeXml } from "./text.js";

/**
 * Splits the byte stream of a RAVEn / EMU-2 into its XML fragments.
 *
 * Hand-written rather than an XML library: the device writes a sequence of flat fragments
 * (`<Root>` + `<Child>text</Child>`… + `</Root>`), not a document, and what matters is what happens when the
 * stream is not well-formed — a fragment cut short by a reconnect, the tail of one left in the device's buffer,
 * a stray closing tag, a misspelt one in the vendor's own samples. A conforming parser stops at the first error
 * and has to be thrown away and restarted (aioraven resets expat); this reader knows the fragments are flat, so
 * it resynchronises on the next fragment and never holds more than one fragment, however long the garbage.
 *
 * How it resynchronises:
 * - Outside a fragment, a start tag is only a candidate root: it is a root when the next tag opens a child.
 *   Text or a closing tag after it means it was a child of a fragment whose start we missed (joining mid-stream),
 *   so it is skipped with the rest of that run of garbage, which is reported once.
 * - Inside a child, a start tag means the fragment never ended: it is rejected, and the new tag begins the next
 *   one (the open "child" was really the next fragment's root when it held only whitespace).
 * - A misspelt or stray closing tag spoils its fragment, which is then rejected when its root closes.
 * Every byte is consumed once; a tag, a value and a fragment each have a size limit.
 */

export interface Fragment {
  name: string;
  /** Children in order; a name may repeat (MeterList's MeterMacId). Values are trimmed, entities resolved. */
  fields: [string, string][];
  bytes: number;
}

export type FragmentEvent =
  | { fragment: Fragment }
  /** `name`: the fragment (or stray closing tag) concerned, when known; a command waiting for it has failed. */
  | { rejected: string; name?: string; bytes: number };

export const LIMITS = Object.freeze({ tagBytes: 128, valueBytes: 1024, fragmentBytes: 8192, fields: 64 });

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;

const NAME = new Uint8Array(256);
const NAME_START = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z_:]/.test(ch)) NAME_START[c] = 1;
  if (/[A-Za-z0-9_:.-]/.test(ch)) NAME[c] = 1;
}
const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

function allSpace(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isSpace(buf[i]!)) return false;
  return true;
}

enum Tag {
  Open,
  Close,
  Empty,
  Skip,
}
const INCOMPLETE = -1;
const INVALID = -2;

export class FragmentReader {
  private carry: Buffer | null = null;
  // The fragment being read.
  private root: string | null = null;
  private fields: [string, string][] = [];
  private bytes = 0;
  private broken: string | null = null;
  private child: string | null = null;
  private text = "";
  private textBytes = 0;
  private childHasText = false;
  /** `bytes` before the open child's tag. */
  private childStart = 0;
  // Outside a fragment: a start tag not yet known to be a root.
  private cand: string | null = null;
  private candBytes = 0;
  // A run of bytes out of step, reported as one rejection.
  private junkBytes = 0;
  private junkSample = "";
  private junkName: string | undefined;
  // The tag scanTag() found.
  private tagKind: Tag = Tag.Skip;
  private tagName = "";

  /** Forgets everything, as after a reconnect: what was buffered belongs to the old connection. */
  reset(): void {
    this.carry = null;
    this.root = null;
    this.fields = [];
    this.broken = null;
    this.child = null;
    this.cand = null;
    this.junkBytes = 0;
    this.junkSample = "";
    this.junkName = undefined;
  }

  push(chunk: Buffer, out: FragmentEvent[] = []): FragmentEvent[] {
    let buf = chunk;
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    const n = buf.length;
    let i = 0;
    while (i < n) {
      const lt = buf.indexOf(LT, i);
      const textEnd = lt < 0 ? n : lt;
      if (textEnd > i) this.onText(buf, i, textEnd);
      if (lt < 0) break;
      const end = this.scanTag(buf, lt);
      if (end === INCOMPLETE) {
        this.carry = Buffer.from(buf.subarray(lt));
        break;
      }
      if (end === INVALID) {
        // A '<' that starts no tag is one more byte of text (garbage, as the device never sends it unescaped).
        this.onText(buf, lt, lt + 1);
        i = lt + 1;
        continue;
      }
      this.onTag(end - lt, out);
      i = end;
    }
    return out;
  }

  /** End of input (a capture file): whatever is unfinished is rejected. */
  end(out: FragmentEvent[] = []): FragmentEvent[] {
    if (this.carry) {
      this.junk(this.carry.length, this.carry.toString("latin1"));
      this.carry = null;
    }
    this.flushJunk(out);
    if (this.cand !== null) {
      out.push({
        rejected: `<${this.cand}> not closed at the end of the input`,
        name: this.cand,
        bytes: this.candBytes,
      });
      this.cand = null;
    }
    if (this.root !== null) this.reject(`<${this.root}> not closed at the end of the input`, out);
    return out;
  }

  private scanTag(buf: Buffer, lt: number): number {
    const n = buf.length;
    const limit = lt + LIMITS.tagBytes;
    let j = lt + 1;
    if (j >= n) return INCOMPLETE;
    let c = buf[j]!;
    if (c === 0x3f || c === 0x21) {
      // <?xml …?>, <!-- … -->: nothing the device means, skipped whole.
      const gt = buf.indexOf(GT, j);
      if (gt < 0) return n > limit ? INVALID : INCOMPLETE;
      if (gt > limit) return INVALID;
      this.tagKind = Tag.Skip;
      return gt + 1;
    }
    let close = false;
    if (c === SLASH) {
      close = true;
      j++;
      if (j >= n) return INCOMPLETE;
    }
    if (!NAME_START[buf[j]!]) return INVALID;
    const s = j;
    while (j < n && NAME[buf[j]!]) j++;
    if (j > limit) return INVALID;
    if (j >= n) return INCOMPLETE;
    this.tagName = buf.toString("latin1", s, j);
    c = buf[j]!;
    if (c === GT) {
      this.tagKind = close ? Tag.Close : Tag.Open;
      return j + 1;
    }
    if (!close && c === SLASH) {
      if (j + 1 >= n) return INCOMPLETE;
      if (buf[j + 1] !== GT) return INVALID;
      this.tagKind = Tag.Empty;
      return j + 2;
    }
    if (!isSpace(c)) return INVALID;
    // Attributes: the device sends none; tolerated, and ignored.
    for (let k = j + 1; k < n; k++) {
      const b = buf[k]!;
      if (b === GT) {
        this.tagKind = close ? Tag.Close : buf[k - 1] === SLASH ? Tag.Empty : Tag.Open;
        return k + 1;
      }
      if (b === LT || k > limit) return INVALID;
    }
    return n > limit ? INVALID : INCOMPLETE;
  }

  private onText(buf: Buffer, start: number, end: number): void {
    const len = end - start;
    if (this.root === null) {
      if (allSpace(buf, start, end)) {
        if (this.cand !== null) this.candBytes += len;
        else if (this.junkBytes > 0) this.junkBytes += len;
        return;
      }
      if (this.cand !== null) this.dropCandidate();
      this.junk(len, () => buf.toString("latin1", start, Math.min(end, start + 40)));
      return;
    }
    this.bytes += len;
    if (this.child === null) {
      if (!allSpace(buf, start, end)) this.spoil("text between elements");
    } else {
      if (!this.childHasText && !allSpace(buf, start, end)) this.childHasText = true;
      if (this.broken === null) {
        this.textBytes += len;
        if (this.textBytes > LIMITS.valueBytes)
          this.spoil(`value of <${this.child}> longer than ${LIMITS.valueBytes} bytes`);
        else this.text += decodeCp1252(buf, start, end);
      }
    }
    this.checkSize();
  }

  private onTag(len: number, out: FragmentEvent[]): void {
    const name = this.tagName;
    switch (this.tagKind) {
      case Tag.Skip:
        if (this.root !== null) this.bytes += len;
        return;
      case Tag.Open:
        this.open(name, len, out);
        return;
      case Tag.Close:
        this.close(name, len, out);
        return;
      case Tag.Empty:
        this.open(name, len, out);
        this.close(name, 0, out);
        return;
    }
  }

  private open(name: string, len: number, out: FragmentEvent[]): void {
    if (this.root === null) {
      if (this.cand === null) {
        this.cand = name;
        this.candBytes = len;
        return;
      }
      // A tag after a candidate root, with only whitespace between: a fragment begins.
      const root = this.cand;
      const bytes = this.candBytes;
      this.cand = null;
      this.flushJunk(out);
      this.begin(root, bytes);
      this.openChild(name, len);
      return;
    }
    if (this.child === null) {
      this.openChild(name, len);
      return;
    }
    // A start tag inside a child: this fragment never ended.
    const unclosed = this.root;
    const next = this.child;
    const wasEmpty = !this.childHasText;
    // The open "child" and what followed it are the next fragment's, not this one's.
    const carried = wasEmpty ? this.bytes - this.childStart : 0;
    this.bytes -= carried;
    this.reject(`<${unclosed}> not closed before the next fragment`, out);
    if (wasEmpty) {
      this.begin(next, carried);
      this.openChild(name, len);
    } else {
      this.cand = name;
      this.candBytes = len;
    }
  }

  private close(name: string, len: number, out: FragmentEvent[]): void {
    if (this.root === null) {
      if (this.cand !== null) {
        this.dropCandidate();
        this.junk(len, `</${name}>`, name);
        return;
      }
      if (this.junkBytes === 0) {
        // Reported at once, not with the next fragment: it may be the whole reply to a pending command.
        out.push({ rejected: `unexpected </${name}> outside a fragment`, name, bytes: len });
        return;
      }
      this.junk(len, `</${name}>`, name);
      return;
    }
    this.bytes += len;
    const child = this.child;
    if (child !== null) {
      if (name === child) {
        if (this.broken === null) this.fields.push([child, unescapeXml(this.text.trim())]);
        this.child = null;
        return;
      }
      if (name === this.root) {
        this.spoil(`<${child}> not closed`);
        this.finish(out);
        return;
      }
      this.spoil(`<${child}> closed by </${name}>`);
      this.child = null;
      return;
    }
    if (name === this.root) this.finish(out);
    else this.spoil(`unexpected </${name}> in <${this.root}>`);
  }

  private begin(root: string, bytes: number): void {
    this.root = root;
    this.fields = [];
    this.bytes = bytes;
    this.broken = null;
    this.child = null;
  }

  private openChild(name: string, len: number): void {
    this.childStart = this.bytes;
    this.bytes += len;
    this.child = name;
    this.text = "";
    this.textBytes = 0;
    this.childHasText = false;
    if (this.broken === null && this.fields.length >= LIMITS.fields) this.spoil(`more than ${LIMITS.fields} elements`);
    this.checkSize();
  }

  private checkSize(): void {
    if (this.broken === null && this.bytes > LIMITS.fragmentBytes)
      this.spoil(`longer than ${LIMITS.fragmentBytes} bytes`);
  }

  /** Marks the fragment as bad (the first reason is kept) and stops collecting its values. */
  private spoil(reason: string): void {
    if (this.broken !== null) return;
    this.broken = reason;
    this.fields = [];
    this.text = "";
  }

  private finish(out: FragmentEvent[]): void {
    const root = this.root!;
    if (this.broken !== null) this.reject(this.broken, out);
    else {
      out.push({ fragment: { name: root, fields: this.fields, bytes: this.bytes } });
      this.root = null;
      this.fields = [];
      this.child = null;
    }
  }

  private reject(reason: string, out: FragmentEvent[]): void {
    out.push({ rejected: `<${this.root}>: ${reason}`, name: this.root!, bytes: this.bytes });
    this.root = null;
    this.fields = [];
    this.child = null;
    this.broken = null;
    this.text = "";
  }

  private dropCandidate(): void {
    this.junk(this.candBytes, `<${this.cand}>`);
    this.cand = null;
  }

  private junk(bytes: number, sample: string | (() => string), name?: string): void {
    this.junkBytes += bytes;
    if (this.junkSample.length < 40) this.junkSample += typeof sample === "function" ? sample() : sample;
    this.junkName ??= name;
  }

  private flushJunk(out: FragmentEvent[]): void {
    if (this.junkBytes === 0) return;
    const sample = redactSample(this.junkSample.length > 40 ? `${this.junkSample.slice(0, 40)}…` : this.junkSample);
    out.push({
      rejected: `${this.junkBytes} bytes out of step skipped: ${JSON.stringify(sample)}`,
      ...(this.junkName ? { name: this.junkName } : {}),
      bytes: this.junkBytes,
    });
    this.junkBytes = 0;
    this.junkSample = "";
    this.junkName = undefined;
  }
}

/**
 * A run of garbage may be a DeviceInfo joined halfway, whose LinkKey and InstallCode are the keys of the device's
 * ZigBee network: samples shown in logs keep no long hex runs and no values of those elements.
 */
function redactSample(sample: string): string {
  return sample.replace(/(<(?:LinkKey|InstallCode|Auth)>)[^<]*/g, "$1***").replace(/[0-9a-fA-F]{12,}/g, "…");
}
