/**
 * A small client of Home Assistant's websocket API: the auth handshake, then commands answered by id.
 * Standalone it connects to ws://<ha>/api/websocket with a long-lived access token; in the add-on to the
 * Supervisor's proxy (ws://supervisor/core/websocket) with the add-on's SUPERVISOR_TOKEN (homeassistant_api).
 */
import WebSocket from "ws";

export class HaError extends Error {
  constructor(
    message: string,
    /** HA's error code (`invalid_format`, `home_assistant_error`, `unauthorized`…), or ours: auth, connect, closed, timeout. */
    readonly code: string,
  ) {
    super(message);
    this.name = "HaError";
  }
}

export interface HaClientOptions {
  timeoutMs?: number;
  /** Largest message taken from Home Assistant, bytes (statistics answers are big; an entity's state is not). */
  maxPayload?: number;
}

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** `ws://host:8123/api/websocket` without anything secret, for messages. */
export function describeHaUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(unparsable Home Assistant URL)";
  }
}

export class HaClient {
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private readonly subscriptions = new Map<number, (event: unknown) => void>();
  private readonly closeListeners: ((err: HaError) => void)[] = [];
  private closedWith?: HaError;

  private constructor(
    private readonly socket: WebSocket,
    /** From auth_ok, e.g. "2025.11.3": decides which statistics metadata the server accepts. */
    readonly haVersion: string,
    private readonly timeoutMs: number,
  ) {
    socket.on("message", (data) => this.onMessage(data.toString()));
    socket.on("close", () => this.fail(new HaError("Home Assistant closed the websocket", "closed")));
    socket.on("error", (err) => this.fail(new HaError(`websocket error: ${err.message}`, "closed")));
  }

  static connect(url: string, token: string, opts: HaClientOptions = {}): Promise<HaClient> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const where = describeHaUrl(url);
    return new Promise((resolve, reject) => {
      let socket: WebSocket;
      try {
        socket = new WebSocket(url, { handshakeTimeout: timeoutMs, maxPayload: opts.maxPayload ?? 256 * 1024 * 1024 });
      } catch (err) {
        reject(new HaError(`cannot connect to Home Assistant at ${where}: ${(err as Error).message}`, "connect"));
        return;
      }
      let done = false;
      const finish = (err?: HaError, client?: HaClient): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.off("message", onMessage);
        if (err) {
          socket.terminate();
          reject(err);
        } else resolve(client as HaClient);
      };
      const timer = setTimeout(
        () => finish(new HaError(`Home Assistant at ${where} did not complete the handshake in time`, "timeout")),
        timeoutMs,
      );
      const onMessage = (data: WebSocket.RawData): void => {
        let m: { type?: string; ha_version?: string; message?: string };
        try {
          m = JSON.parse(data.toString());
        } catch {
          finish(new HaError(`Home Assistant at ${where} sent something that is not JSON`, "connect"));
          return;
        }
        if (m.type === "auth_required") socket.send(JSON.stringify({ type: "auth", access_token: token }));
        else if (m.type === "auth_ok") finish(undefined, new HaClient(socket, m.ha_version ?? "", timeoutMs));
        else if (m.type === "auth_invalid")
          finish(
            new HaError(
              `Home Assistant at ${where} refused the access token${m.message ? ` (${m.message})` : ""}: create a long-lived access token on your HA profile page`,
              "auth",
            ),
          );
      };
      socket.on("message", onMessage);
      socket.once("error", (err) =>
        finish(new HaError(`cannot connect to Home Assistant at ${where}: ${err.message}`, "connect")),
      );
      socket.once("close", () => finish(new HaError(`Home Assistant at ${where} closed the connection`, "connect")));
    });
  }

  /** Sends one command and resolves with its `result`, or rejects with HA's error. */
  command<T = unknown>(message: Record<string, unknown>): Promise<T> {
    return this.send<T>(message);
  }

  /**
   * Sends a subscribing command (subscribe_entities, subscribe_trigger…) and resolves once HA accepted it; each of
   * its events then goes to `onEvent` until the connection ends.
   */
  async subscribe(message: Record<string, unknown>, onEvent: (event: unknown) => void): Promise<void> {
    await this.send(message, onEvent);
  }

  /** One command under a new id; with `onEvent`, the events HA sends under that id go there (kept on success only). */
  private send<T>(message: Record<string, unknown>, onEvent?: (event: unknown) => void): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    // Registered before sending: HA sends a subscription's first event right after its result.
    if (onEvent) this.subscriptions.set(id, onEvent);
    return new Promise<T>((resolve, reject) => {
      const fail = (err: Error): void => {
        this.subscriptions.delete(id);
        reject(err);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        fail(new HaError(`Home Assistant did not answer ${String(message.type)} in time`, "timeout"));
      }, this.timeoutMs);
      this.waiters.set(id, { resolve: resolve as (v: unknown) => void, reject: fail, timer });
      this.socket.send(JSON.stringify({ id, ...message }));
    });
  }

  /** Called once when the connection ends, for whatever reason (HA restarting, the network, close()). */
  onClose(listener: (err: HaError) => void): void {
    if (this.closedWith) listener(this.closedWith);
    else this.closeListeners.push(listener);
  }

  close(): Promise<void> {
    this.fail(new HaError("closed", "closed"));
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.terminate();
        resolve();
      }, 2000);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.close();
    });
  }

  private onMessage(text: string): void {
    let m: {
      id?: number;
      type?: string;
      success?: boolean;
      result?: unknown;
      error?: { code?: string; message?: string };
    };
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (m.type === "event" && typeof m.id === "number") {
      const handler = this.subscriptions.get(m.id);
      if (handler) handler((m as { event?: unknown }).event);
      return;
    }
    if (m.type !== "result" || typeof m.id !== "number") return;
    const w = this.waiters.get(m.id);
    if (!w) return;
    this.waiters.delete(m.id);
    clearTimeout(w.timer);
    if (m.success) w.resolve(m.result);
    else w.reject(new HaError(m.error?.message ?? "command failed", m.error?.code ?? "unknown_error"));
  }

  private fail(err: HaError): void {
    if (!this.closedWith) {
      this.closedWith = err;
      this.subscriptions.clear();
      for (const l of this.closeListeners.splice(0)) l(err);
    }
    for (const [id, w] of this.waiters) {
      this.waiters.delete(id);
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}

/** True for HA 2025.11 and later, which take `mean_type` and `unit_class` (and will require them from 2026.11). */
export function takesMeanType(haVersion: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(haVersion);
  if (!m) return true;
  const year = Number(m[1]);
  const month = Number(m[2]);
  return year > 2025 || (year === 2025 && month >= 11);
}
