/**
 * A real VictoriaMetrics (Debian's victoria-metrics package) on a free loopback port with its storage in a temp
 * folder. It can be stopped and started again on the same port and storage, as a server restarted mid-stream.
 * Retention is set to 100 years: fixtures are dated in the past, and VictoriaMetrics drops samples older than its
 * retention (one month by default) without a word.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findExecutable, freePort } from "./mosquitto.js";

export interface Sample {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

export interface Victoria {
  url: string;
  port: number;
  /** Every raw sample of the series matching a selector, e.g. `{__name__=~"meter2mqtt.*"}`. */
  export(match: string): Promise<Sample[]>;
  /** Stops the server (SIGTERM: it flushes its data first); the storage stays. */
  pause(): Promise<void>;
  /** Starts it again on the same port and storage. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export async function startVictoria(): Promise<Victoria> {
  const binary = findExecutable("victoria-metrics");
  const dir = await mkdtemp(join(tmpdir(), "victoria-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = "";

  const launch = async (): Promise<void> => {
    output = "";
    const c = spawn(
      binary,
      [
        `-httpListenAddr=127.0.0.1:${port}`,
        `-storageDataPath=${join(dir, "data")}`,
        "-retentionPeriod=100y",
        "-loggerLevel=ERROR",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = c;
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-4000);
    };
    c.stdout?.on("data", keep);
    c.stderr?.on("data", keep);
    let exited: string | undefined;
    c.once("exit", (code, signal) => {
      exited = `exited (${signal ?? code})`;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exited) throw new Error(`victoria-metrics ${exited}:\n${output}`);
      try {
        const r = await fetch(`${url}/health`);
        if (r.ok) return;
      } catch {}
      if (Date.now() > deadline) throw new Error(`victoria-metrics did not answer on ${port} within 15 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  };

  const halt = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(t);
  };

  await launch();
  return {
    url,
    port,
    async export(match) {
      // Samples become searchable about a second after they arrive; force_flush makes them so at once.
      await fetch(`${url}/internal/force_flush`);
      const res = await fetch(`${url}/api/v1/export?${new URLSearchParams({ "match[]": match })}`);
      if (!res.ok) throw new Error(`export answered ${res.status}: ${await res.text()}`);
      const text = await res.text();
      return text
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Sample);
    },
    pause: halt,
    resume: launch,
    async stop() {
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
