/**
 * A real mosquitto on a free loopback port, for integration and end-to-end tests, plus a subscriber that
 * records what was published and a TCP relay that can cut connections the way a network failure does.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";

const run = promisify(execFile);

export interface Mosquitto {
  url: string;
  port: number;
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Sends the broker process a signal: SIGSTOP hangs it with its sockets open, SIGCONT lets it go on. */
  signal(sig: NodeJS.Signals): void;
}

/** mosquitto lives in /usr/sbin on Debian, which is not on every user's PATH. */
export function findExecutable(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} not found on PATH or in /usr/sbin (apt-get install mosquitto mosquitto-clients)`);
}

/** A port nobody listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === "string") throw new Error("no port assigned");
  return address.port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function startMosquitto(opts: { port?: number; users?: Record<string, string> } = {}): Promise<Mosquitto> {
  const binary = findExecutable("mosquitto");
  const port = opts.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), "mosquitto-"));
  const conf = join(dir, "mosquitto.conf");
  // set_tcp_nodelay: without it mosquitto lets Nagle hold small messages back, which tests and benchmarks
  // would measure as the bridge's latency.
  const lines = [`listener ${port} 127.0.0.1`, "persistence false", "log_dest stderr", "set_tcp_nodelay true"];
  // Run as root, mosquitto switches to the `mosquitto` user, which cannot read our private temp directory.
  if (process.getuid?.() === 0) lines.push("user root");
  const users = Object.entries(opts.users ?? {});
  if (users.length > 0) {
    const passwd = findExecutable("mosquitto_passwd");
    const file = join(dir, "passwords");
    await writeFile(file, "", { mode: 0o600 });
    for (const [user, password] of users) await run(passwd, ["-b", file, user, password]);
    lines.push("allow_anonymous false", `password_file ${file}`);
  } else {
    lines.push("allow_anonymous true");
  }
  const confText = `${lines.join("\n")}\n`;
  await writeFile(conf, confText);

  let child: ChildProcess | undefined;
  let output = "";

  const launch = async (): Promise<void> => {
    output = "";
    const proc = spawn(binary, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    let exited: string | undefined;
    proc.once("exit", (code, signal) => {
      exited = `exited (${signal ?? code})`;
    });
    proc.once("error", (err) => {
      exited = err.message;
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exited) throw new Error(`mosquitto on port ${port} ${exited}:\n${output}`);
      if (await canConnect(port)) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on port ${port} within 10 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const halt = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async stop() {
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
    signal(sig) {
      child?.kill(sig);
    },
    /** Starts it again on the same port, also after stop() (a broker that was down for a while). */
    async restart() {
      await halt();
      await mkdir(dir, { recursive: true });
      if (!(await stat(conf).catch(() => undefined))) await writeFile(conf, confText);
      await launch();
    },
  };
}

export interface Collected {
  topic: string;
  payload: string;
  /** Published with the retain flag (live, thanks to MQTT 5's retain-as-published) or replayed from the store. */
  retain: boolean;
}

export interface Collector {
  /** Every message received so far, in order. */
  readonly messages: Collected[];
  /** The first message (already received or arriving within `timeoutMs`) that matches. */
  waitFor(predicate: (m: Collected) => boolean, timeoutMs?: number): Promise<Collected>;
  /** Forget what was received (retained messages replayed on subscribe, earlier phases of a test). */
  clear(): void;
  close(): Promise<void>;
}

/** Subscribes to `topicFilter` and records every message; resolves once the subscription is acknowledged. */
export async function collect(
  url: string,
  topicFilter: string | string[],
  opts: Pick<IClientOptions, "username" | "password"> = {},
): Promise<Collector> {
  const client: MqttClient = await connectAsync(url, {
    ...opts,
    protocolVersion: 5,
    reconnectPeriod: 500,
    connectTimeout: 5000,
  });
  const messages: Collected[] = [];
  const waiters = new Set<{ predicate: (m: Collected) => boolean; resolve: (m: Collected) => void }>();
  client.on("message", (topic, payload, packet) => {
    const m = { topic, payload: payload.toString(), retain: packet.retain };
    messages.push(m);
    for (const w of waiters)
      if (w.predicate(m)) {
        waiters.delete(w);
        w.resolve(m);
      }
  });
  // Without retain-as-published a broker clears the flag on live delivery, and tests could not tell a
  // retained publication from a plain one.
  await client.subscribeAsync(topicFilter, { qos: 1, rap: true });
  return {
    messages,
    waitFor(predicate, timeoutMs = 5000) {
      const seen = messages.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (m: Collected) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          const last = messages
            .slice(-5)
            .map((m) => `${m.topic} ${m.payload.slice(0, 80)}`)
            .join("\n  ");
          reject(new Error(`no matching message within ${timeoutMs} ms; last received:\n  ${last || "(none)"}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    clear() {
      messages.length = 0;
    },
    async close() {
      await client.endAsync(true);
    },
  };
}

/** Polls `condition` until it holds; for state that changes without a message to wait for. */
export async function until(condition: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Relay {
  url: string;
  port: number;
  /** Drops every relayed connection at once, without an MQTT DISCONNECT: the broker sees a dead client. */
  cut(): void;
  /** Keeps the connections open but stops passing bytes either way: a broker that hangs. */
  stall(): void;
  close(): Promise<void>;
}

/** A TCP relay in front of a broker, so a test can break a client's connection as the network would. */
export async function startRelay(target: { port: number; host?: string }): Promise<Relay> {
  const pairs = new Set<[Socket, Socket]>();
  let stalled = false;
  const halt = ([a, b]: [Socket, Socket]): void => {
    a.unpipe(b);
    b.unpipe(a);
    a.pause();
    b.pause();
  };
  const server: Server = createServer((inbound) => {
    const outbound = createConnection({ host: target.host ?? "127.0.0.1", port: target.port });
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", drop).on("close", drop);
    outbound.on("error", drop).on("close", drop);
    if (stalled) {
      halt(pair);
      return;
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("relay has no port");
  const cut = (): void => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    port: address.port,
    cut,
    stall() {
      stalled = true;
      for (const pair of pairs) halt(pair);
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
