import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");

export interface BridgeProcess {
  readonly child: ChildProcess;
  /** Everything it printed so far, stdout and stderr interleaved. */
  readonly log: () => string;
  /** Resolves with the exit code. */
  readonly exit: Promise<number | null>;
  /** SIGKILL if still running (for afterAll). */
  kill(): void;
}

/**
 * Runs the bridge as its own process from the sources, as `meter2mqtt run --config` does, with the given config
 * (YAML lines) written to `dir/config.yaml`. End-to-end tests use it so the process boundary (signals, exit
 * codes, what reaches the log) is part of what they test.
 */
export function startBridge(dir: string, configLines: string[]): BridgeProcess {
  const config = join(dir, "config.yaml");
  writeFileSync(config, `${configLines.join("\n")}\n`);
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "run", "--config", config], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    child,
    log: () => log,
    exit,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
