/**
 * A stand-in for the Supervisor's API as far as the app uses it (`GET /services/mqtt`, the answers and refusals
 * its source documents), on a free loopback port. The bearer token is checked as the real one does.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";

export type Answer = { status: number; body: unknown };

export interface StandInSupervisor {
  url: string;
  requests: { method: string; path: string; headers: IncomingHttpHeaders }[];
  /** Answers for the next requests, in order; the last one repeats. */
  answers: Answer[];
  close(): Promise<void>;
}

/** What the Mosquitto app registers: its broker on `port` and a login for other apps. */
export const mqttOk = (port: number, password: string): Answer => ({
  status: 200,
  body: {
    result: "ok",
    data: {
      host: "127.0.0.1",
      port,
      ssl: false,
      protocol: "3.1.1",
      username: "addons",
      password,
      addon: "core_mosquitto",
    },
  },
});

export const NOT_ENABLED: Answer = { status: 400, body: { result: "error", message: "Service not enabled" } };

export async function startSupervisor(token: string): Promise<StandInSupervisor> {
  const stand: Omit<StandInSupervisor, "url" | "close"> = { requests: [], answers: [] };
  const server: Server = createServer((req, res) => {
    stand.requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers });
    const reply = (a: Answer) =>
      res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body));
    if (req.headers.authorization !== `Bearer ${token}`)
      return reply({ status: 401, body: { result: "error", message: "Invalid token" } });
    if (req.method !== "GET" || req.url !== "/services/mqtt")
      return reply({ status: 404, body: { result: "error", message: "Not found" } });
    const answer = stand.answers.length > 1 ? stand.answers.shift()! : stand.answers[0]!;
    reply(answer);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return Object.assign(stand, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
}

/**
 * Whether the Supervisor leaves a file out of the app's backup: supervisor/apps/app.py _is_excluded_by_filter,
 * `PurePath(full path).match(pattern)` for each `backup_exclude` pattern. A relative pattern's components (fnmatch
 * patterns: `*`, `?`) are matched against the path's last components; an absolute one against all of them.
 */
export function backupExcluded(path: string, patterns: readonly string[]): boolean {
  const parts = path.split("/").filter(Boolean);
  const fn = (p: string) =>
    new RegExp(
      `^${p
        .replace(/[.+^${}()|\\]/g, "\\$&")
        .replace(/\*/g, ".*")
        .replace(/\?/g, ".")}$`,
    );
  return patterns.some((pattern) => {
    const pats = pattern.split("/").filter(Boolean);
    if (pattern.startsWith("/") ? pats.length !== parts.length : pats.length > parts.length) return false;
    const tail = parts.slice(parts.length - pats.length);
    return pats.every((p, i) => fn(p).test(tail[i]!));
  });
}
