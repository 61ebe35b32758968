import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");

export interface CliProcess {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr interleaved. */
  readonly output: () => string;
  /** Resolves with the exit code. */
  readonly exit: Promise<number | null>;
  /** SIGKILL if still running (for afterAll). */
  kill(): void;
}

/**
 * Runs `meter2mqtt <args>` as its own process from the sources. End-to-end tests use it so the process boundary
 * (signals, exit codes, what reaches the log) is part of what they test.
 */
export function spawnCli(args: string[]): CliProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    child,
    output: () => out,
    exit,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** The bridge (`run --config`) with the given config (YAML lines) written to `dir/config.yaml`. */
export function startBridge(dir: string, configLines: string[]): CliProcess {
  const config = join(dir, "config.yaml");
  writeFileSync(config, `${configLines.join("\n")}\n`);
  return spawnCli(["run", "--config", config]);
}
