/**
 * The one call the add-on makes to the Supervisor's API: which MQTT broker to use. The Mosquitto add-on registers
 * its broker and a login for other add-ons there; `services: [mqtt:need]` in config.yaml grants us the read.
 */
import { z } from "zod";
import type { SupervisorMqtt } from "./options.js";

export class SupervisorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SupervisorError";
  }
}

/** `{"result": "ok", "data": {...}}` or `{"result": "error", "message": "..."}`, as the Supervisor's API answers. */
const Envelope = z.union([
  z.object({
    result: z.literal("ok"),
    data: z.object({
      host: z.string().min(1),
      port: z.coerce.number().int().min(1).max(65535),
      ssl: z.boolean().optional(),
      protocol: z.string().optional(),
      username: z.string().optional(),
      password: z.string().optional(),
      addon: z.string().optional(),
    }),
  }),
  z.object({ result: z.literal("error"), message: z.string().nullish() }),
]);

export interface SupervisorClientOptions {
  /** `http://supervisor` inside an add-on. */
  url: string;
  token: string;
  /** Attempts while the Supervisor cannot be reached or answers 5xx; an explicit refusal is not retried. */
  attempts?: number;
  retryDelayMs?: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A refusal the Supervisor explains, turned into what the user can do about it. */
function refusal(status: number, message: string | null | undefined): SupervisorError {
  const said = message ? `: ${message}` : "";
  if (status === 400 && /not enabled/i.test(message ?? ""))
    return new SupervisorError(
      `the Supervisor has no MQTT broker to hand out (${message}); install and start the Mosquitto broker app, or set mqtt.url in this app's options`,
    );
  if (status === 401 || status === 403)
    return new SupervisorError(
      `the Supervisor refused to tell this app the MQTT broker (HTTP ${status}${said}); set mqtt.url in the options`,
    );
  return new SupervisorError(`the Supervisor answered HTTP ${status} for the MQTT service${said}`);
}

export async function fetchMqttService(opts: SupervisorClientOptions): Promise<SupervisorMqtt> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const sleep = opts.sleep ?? wait;
  const endpoint = new URL("services/mqtt", opts.url.endsWith("/") ? opts.url : `${opts.url}/`).href;
  let lastProblem = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await sleep(opts.retryDelayMs ?? 2000);
    let response: Response;
    try {
      response = await fetch(endpoint, {
        headers: { Authorization: `Bearer ${opts.token}`, Accept: "application/json" },
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      lastProblem = cause ?? (err as Error).message;
      continue;
    }
    const text = await response.text();
    let body: z.infer<typeof Envelope> | undefined;
    try {
      const parsed = Envelope.safeParse(JSON.parse(text));
      if (parsed.success) body = parsed.data;
    } catch {}
    if (response.status >= 500) {
      lastProblem = `HTTP ${response.status}`;
      continue;
    }
    if (body?.result === "ok" && response.ok) return body.data;
    if (body?.result === "error" || !response.ok)
      throw refusal(response.status, body?.result === "error" ? body.message : undefined);
    // The body is not echoed: it may hold the broker's password.
    throw new SupervisorError("the Supervisor's answer for the MQTT service has no usable host and port");
  }
  throw new SupervisorError(`cannot reach the Supervisor at ${opts.url} (${lastProblem}) after ${attempts} attempt(s)`);
}
