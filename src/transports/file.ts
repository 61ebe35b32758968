import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Timer } from "../util/clock.js";
import { BaseTransport, type Connection, errorCode, errorText, type Failure, type Link } from "./base.js";
import type { ReplayOptions, TransportOptions } from "./types.js";

const DEFAULT_REPLAY: ReplayOptions = { intervalMs: 1000, loop: false };

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
    const run = async (): Promise<void> => {
      let pieces: Buffer[];
      try {
        const whole = await readFile(this.path);
        if (cancelled) return;
        pieces = (split ? split(whole) : [whole]).filter((p) => p.length > 0);
      } catch (err) {
        if (!cancelled) link.failed(err);
        return;
      }
      // Looping over nothing would spin; treat it like a file that is not there yet.
      if (pieces.length === 0 && loop) {
        link.failed(new Error(`${resolve(this.path)} is empty`));
        return;
      }
      link.opened();
      let i = 0;
      const step = (): void => {
        if (cancelled) return;
        if (i === pieces.length) {
          if (!loop) {
            link.ended();
            return;
          }
          i = 0;
        }
        link.data(pieces[i++]!);
        if (!cancelled) after(i === pieces.length && !loop ? 0 : intervalMs, step);
      };
      step();
    };
    void run();
    return {
      close: async () => {
        cancelled = true;
        if (timer) this.clock.clearTimeout(timer);
        if (immediate) clearImmediate(immediate);
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
