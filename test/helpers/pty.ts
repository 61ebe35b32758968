import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { type FileHandle, mkdtemp, open, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/**
 * A pseudo-terminal pair joined by socat, standing in for a serial meter: the bridge opens `device` as if it were
 * /dev/ttyUSB0, and the test plays the meter at `meterEnd`. The line settings the bridge asks for are accepted
 * and ignored, as a USB adapter would on the wire it does not see.
 */
export interface PtyPair {
  /** The path the code under test opens (a symlink to a /dev/pts/N). */
  device: string;
  /** The meter's side, for tests that want to read what the bridge sends. */
  meterEnd: string;
  /** Writes at the meter end; rejects while the pair has vanished. */
  write(bytes: Buffer | string): Promise<void>;
  /** Kills socat: the device disappears (both links are removed) as an unplugged USB adapter does. */
  vanish(): Promise<void>;
  /** Starts socat again with the same link paths (new ptys behind them). */
  reappear(): Promise<void>;
  /** Kills socat and removes what startPtyPair created; idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function findSocat(): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/local/bin", "/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, "socat");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  throw new Error("socat not found on PATH or in /usr/bin: install it (apt-get install socat)");
}

async function removeLink(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function kill(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const done = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // SIGTERM lets socat remove its links itself, as the device node of an unplugged adapter goes away.
  child.kill("SIGTERM");
  const hard = setTimeout(() => child.kill("SIGKILL"), 3000);
  await done;
  clearTimeout(hard);
  live.delete(child);
}

export async function startPtyPair(dir?: string): Promise<PtyPair> {
  const socat = findSocat();
  const base = dir ?? (await mkdtemp(join(tmpdir(), "meter2mqtt-pty-")));
  const device = join(base, "dev");
  const meterEnd = join(base, "meter");
  let child: ChildProcess | undefined;
  let meter: FileHandle | undefined;
  let writing: Promise<void> = Promise.resolve();
  let stopped = false;

  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A test that fails before stop() must not leave socat running behind the test runner.
    process.once("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }

  const launch = async (): Promise<void> => {
    // socat will not replace a link left behind by a socat that was killed hard.
    await removeLink(device);
    await removeLink(meterEnd);
    const c = spawn(socat, ["-d", "-d", `pty,raw,echo=0,link=${device}`, `pty,raw,echo=0,link=${meterEnd}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child = c;
    live.add(c);
    let stderr = "";
    c.stderr?.setEncoding("utf8");
    c.stderr?.on("data", (s: string) => {
      if (stderr.length < 20_000) stderr += s;
    });
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const fail = (why: string): void => {
        clearInterval(poll);
        c.off("exit", onExit);
        reject(new Error(`socat pty pair in ${base}: ${why}\n${stderr}`));
      };
      const onExit = (code: number | null, signal: string | null): void =>
        fail(`socat exited (${signal ?? code}) before it was ready`);
      c.once("exit", onExit);
      c.once("error", (err) => fail(err.message));
      // Ready means both links exist and socat has entered its copy loop; polled because neither has an event.
      const poll = setInterval(() => {
        if (stderr.includes("starting data transfer loop") && existsSync(device) && existsSync(meterEnd)) {
          clearInterval(poll);
          c.off("exit", onExit);
          resolve();
        } else if (Date.now() - started > READY_TIMEOUT_MS) {
          c.kill("SIGKILL");
          fail(`not ready within ${READY_TIMEOUT_MS} ms`);
        }
      }, 10);
    });
  };

  const closeMeter = async (): Promise<void> => {
    const fh = meter;
    meter = undefined;
    await writing.catch(() => {});
    await fh?.close().catch(() => {});
  };

  const vanish = async (): Promise<void> => {
    await closeMeter();
    const c = child;
    child = undefined;
    if (c) await kill(c);
    // Normally socat has removed them; a hard kill leaves them, and a vanished device must not be openable.
    await removeLink(device);
    await removeLink(meterEnd);
  };

  await launch();

  return {
    device,
    meterEnd,
    write(bytes) {
      const buf = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
      // Chained so concurrent writes reach the meter end in call order.
      const next = writing.then(async () => {
        if (!child || stopped) throw new Error(`pty pair in ${base} has vanished; call reappear() first`);
        // O_NOCTTY: this process must never acquire the pty as its controlling terminal.
        meter ??= await open(meterEnd, constants.O_RDWR | constants.O_NOCTTY);
        let off = 0;
        while (off < buf.length) off += (await meter.write(buf, off, buf.length - off)).bytesWritten;
      });
      writing = next.catch(() => {});
      return next;
    },
    vanish,
    async reappear() {
      if (stopped) throw new Error("pty pair stopped");
      if (child) return;
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await vanish();
      if (!dir) await rm(base, { recursive: true, force: true });
    },
  };
}
