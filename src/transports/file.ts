import { open } from "node:fs/promises";
import { resolve } from "node:path";
import type { Timer } from "../util/clock.js";
import { BaseTransport, type Connection, errorCode, errorText, type Failure, type Link } from "./base.js";
import type { ReplayOptions, TransportOptions } from "./types.js";

const DEFAULT_REPLAY: ReplayOptions = { intervalMs: 1000, loop: false };
/** The file is read this much at a time, so a capture of any size replays in bounded memory. */
const BLOCK_BYTES = 1 << 20;
/** A tail without a place to cut that grows past this is emitted as it is (no real frame is this long). */
const MAX_CARRY_BYTES = 4 << 20;

/** One block's pieces; `last` on the file's final block. */
export interface FileBlock {
  pieces: Buffer[];
  last: boolean;
}

/**
 * The pieces of a file, block by block: each block is cut with `split` after what was left of the one before; the
 * last piece of a block may be cut short by the block's end, so it waits for the next block, unless the block is the
 * file's last (read one block ahead to know).
 */
export async function* fileBlocks(
  path: string,
  split: ((whole: Buffer) => Buffer[]) | undefined,
  blockBytes = BLOCK_BYTES,
): AsyncGenerator<FileBlock> {
  const fh = await open(path, "r");
  const read = async (): Promise<Buffer | undefined> => {
    const block = Buffer.allocUnsafe(blockBytes);
    const { bytesRead } = await fh.read(block, 0, blockBytes, null);
    return bytesRead === 0 ? undefined : block.subarray(0, bytesRead);
  };
  try {
    let carry: Buffer = Buffer.alloc(0);
    let block = await read();
    while (block) {
      const ahead = await read();
      const data = carry.length > 0 ? Buffer.concat([carry, block]) : block;
      const pieces = split ? split(data).filter((p) => p.length > 0) : [data];
      carry = Buffer.alloc(0);
      if (ahead) {
        // A copy: the tail must not keep the whole block alive.
        const tail = pieces.pop();
        if (tail && tail.length <= MAX_CARRY_BYTES) carry = Buffer.from(tail);
        else if (tail) pieces.push(tail);
      }
      if (pieces.length > 0 || !ahead) yield { pieces, last: !ahead };
      block = ahead;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Replays a capture file as if a meter sent it. A missing file is retried like an absent device rather than
 * failing at once: the bridge never gives up on a meter, and a capture may still be being copied or mounted.
 * Pieces are emitted one per interval, the first as soon as the file is read; without loop, 'end' follows the
 * last piece (without waiting another interval) and the transport stops.
 */
export class FileTransport extends BaseTransport {
  private readonly replay: ReplayOptions;

  constructor(
    readonly path: string,
    opts: TransportOptions = {},
  ) {
    super(opts);
    this.replay = opts.replay ?? DEFAULT_REPLAY;
  }

  get description(): string {
    return `file:${this.path}`;
  }

  protected override connect(link: Link): Connection {
    const { intervalMs, loop, split } = this.replay;
    let cancelled = false;
    let timer: Timer | undefined;
    let immediate: NodeJS.Immediate | undefined;
    const after = (ms: number, fn: () => void): void => {
      // setImmediate rather than a 0 ms timer: as fast as possible, yet I/O and other timers get their turn.
      if (ms > 0) timer = this.clock.setTimeout(fn, ms);
      else immediate = setImmediate(fn);
    };
    const path = this.path;
    let blocks = fileBlocks(path, split);
    let queue: Buffer[] = [];
    /** A looped file read in one block is kept and replayed from memory. */
    let memo: Buffer[] | undefined;
    let pass = { blocks: 0, pieces: 0 };
    /** Fills the queue with the next block's pieces; false at the end (without loop). */
    const refill = async (): Promise<boolean> => {
      for (;;) {
        const r = await blocks.next();
        if (!r.done) {
          pass.blocks++;
          pass.pieces += r.value.pieces.length;
          if (loop && r.value.last && pass.blocks === 1 && r.value.pieces.length > 0) memo = r.value.pieces;
          queue = r.value.pieces.slice();
          if (queue.length > 0) return true;
          continue;
        }
        if (!loop) return false;
        // Looping over nothing would spin; treat it like a file that is not there yet.
        if (pass.pieces === 0) throw new Error(`${resolve(path)} is empty`);
        blocks = fileBlocks(path, split);
        pass = { blocks: 0, pieces: 0 };
      }
    };
    const fail = (err: unknown): void => {
      if (!cancelled) link.failed(err);
    };
    const step = (): void => {
      if (cancelled) return;
      link.data(queue.shift() as Buffer);
      if (queue.length === 0 && memo) queue = memo.slice();
      if (queue.length > 0) {
        after(intervalMs, step);
        return;
      }
      // Without loop, 'end' follows the last piece at once (without waiting another interval).
      refill().then((more) => {
        if (cancelled) return;
        if (more) after(intervalMs, step);
        else link.ended();
      }, fail);
    };
    const run = async (): Promise<void> => {
      let more: boolean;
      try {
        more = await refill();
      } catch (err) {
        fail(err);
        return;
      }
      if (cancelled) return;
      link.opened();
      if (more) step();
      else link.ended();
    };
    void run();
    return {
      close: async () => {
        cancelled = true;
        if (timer) this.clock.clearTimeout(timer);
        if (immediate) clearImmediate(immediate);
        await blocks.return(undefined).catch(() => {});
      },
    };
  }

  protected override explain(err: unknown): Failure {
    const abs = resolve(this.path);
    switch (errorCode(err)) {
      case "ENOENT":
        return { reason: `no such file: ${abs}`, kind: "connection" };
      case "EACCES":
      case "EPERM":
        return {
          reason: `permission denied on ${abs}`,
          kind: "permission",
          advice: "make the file readable by the user running meter2mqtt",
        };
      case "EISDIR":
        return { reason: `${abs} is a directory`, kind: "not-file", advice: "point file: at a capture file" };
      default:
        return { reason: errorText(err), kind: "connection" };
    }
  }
}
