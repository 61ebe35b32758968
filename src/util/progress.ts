/**
 * A one-line progress bar on a terminal (redrawn in place), plain lines elsewhere (a log file, CI), so that
 * `meter2mqtt import` of a year of files shows where it is without flooding a captured log.
 */
export class Progress {
  private done = 0;
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly total: number,
    private readonly unit: string,
  ) {}

  /** One more item done; `name` says which. */
  tick(name: string): void {
    this.done++;
    if (!this.out.isTTY) {
      this.out.write(`[${String(this.done).padStart(String(this.total).length)}/${this.total}] ${name}\n`);
      return;
    }
    const now = Date.now();
    // Redrawing more often than 20 times a second only costs time.
    if (this.done < this.total && now - this.lastDraw < 50) return;
    this.lastDraw = now;
    this.draw(name);
  }

  /** A message above the bar. */
  print(line: string): void {
    if (this.out.isTTY && this.drawn) this.out.write("\r\x1b[K");
    this.out.write(`${line}\n`);
    if (this.out.isTTY && this.drawn) this.draw("");
  }

  finish(): void {
    if (this.out.isTTY && this.drawn) this.out.write("\n");
  }

  private draw(name: string): void {
    const width = 30;
    const filled = this.total === 0 ? width : Math.round((this.done / this.total) * width);
    const head = `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${this.done}/${this.total} ${this.unit}`;
    const room = Math.max(0, (this.out.columns ?? 100) - head.length - 2);
    const tail = name.length > room ? `…${name.slice(name.length - room + 1)}` : name;
    this.out.write(`\r\x1b[K${head}${tail ? ` ${tail}` : ""}`);
    this.drawn = true;
  }
}
