/**
 * A replayed capture is read a block at a time: the pieces must be the same as when the whole file is cut at once,
 * whatever block boundaries fall in the middle of a telegram or fragment.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { splitTelegrams } from "../src/sources/dsmr/framer.js";
import { fileBlocks } from "../src/transports/file.js";

const dir = mkdtempSync(join(tmpdir(), "m2m-blocks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function pieces(path: string, split: ((b: Buffer) => Buffer[]) | undefined, blockBytes: number) {
  const out: string[] = [];
  let lasts = 0;
  for await (const b of fileBlocks(path, split, blockBytes)) {
    for (const p of b.pieces) out.push(p.toString("latin1"));
    if (b.last) lasts++;
  }
  return { out, lasts };
}

describe("fileBlocks", () => {
  it.each([61, 333, 4096, 1 << 20])("cuts DSMR telegrams as the whole file does, with %i-byte blocks", async (size) => {
    const whole = readFileSync(join(import.meta.dirname, "..", "fixtures", "demo", "nl-dsmr5.txt"));
    const path = join(dir, "nl.txt");
    writeFileSync(path, Buffer.concat([whole, whole]));
    const expected = splitTelegrams(Buffer.concat([whole, whole])).map((p) => p.toString("latin1"));
    expect(expected.length).toBeGreaterThan(4);
    const { out, lasts } = await pieces(path, splitTelegrams, size);
    expect(out).toEqual(expected);
    expect(lasts).toBe(1);
  });

  it("without a split gives the bytes in order, and an empty file one empty last block", async () => {
    const path = join(dir, "raw.bin");
    const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    writeFileSync(path, body);
    const { out } = await pieces(path, undefined, 64);
    expect(Buffer.from(out.join(""), "latin1").equals(body)).toBe(true);
    writeFileSync(join(dir, "empty"), "");
    expect(await pieces(join(dir, "empty"), splitTelegrams, 64)).toEqual({ out: [], lasts: 0 });
  });
});
