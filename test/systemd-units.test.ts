/**
 * The systemd units in contrib/systemd: systemd's own checker accepts them without a warning, and every meter2mqtt
 * command line in them is one the CLI takes.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const DIR = join(import.meta.dirname, "../contrib/systemd");
const ROOT = join(import.meta.dirname, "..");
const analyze = spawnSync("systemd-analyze", ["--version"]).status === 0;
if (!analyze) console.warn("skipping systemd-analyze: not installed (.ci/run installs systemd)");

describe("contrib/systemd", () => {
  const units = readdirSync(DIR).filter((f) => /\.(service|timer)$/.test(f));

  it.skipIf(!analyze)("systemd-analyze verify passes every unit without a word", () => {
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", ...units.map((u) => join(DIR, u))], {
      encoding: "utf8",
    });
    expect(r.stderr.trim()).toBe("");
    expect(r.status).toBe(0);
  });

  it("calls only commands and options the CLI has", () => {
    const calls = units.flatMap((u) =>
      readFileSync(join(DIR, u), "utf8")
        .split("\n")
        .filter((l) => l.startsWith("Exec"))
        .flatMap((l) =>
          [...l.matchAll(/meter2mqtt ((?:run|check|health)[^|'\n]*)/g)].map((m) => m[1]!.trim().split(/\s+/)),
        ),
    );
    expect(calls.map((c) => c[0]).sort()).toEqual(["check", "health", "run"]);
    for (const args of calls) {
      // Each with a config that does not exist: the CLI must complain about the file, not about the arguments.
      const fixed = args.map((a) => (a.startsWith("/etc/") ? "/nonexistent/config.yaml" : a));
      const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...fixed], {
        cwd: ROOT,
        encoding: "utf8",
      });
      expect(r.stderr, args.join(" ")).not.toMatch(/unknown|Unexpected argument|see meter2mqtt --help/i);
      expect(r.stderr).toMatch(/nonexistent\/config\.yaml/);
    }
  }, 60_000);

  it("the Docker image checks its health with the CLI's health command and the image's own config", () => {
    const docker = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(docker)?.[1] ?? "null") as string[];
    const health = /^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$/m.exec(docker);
    expect(health).not.toBeNull();
    const args = JSON.parse(health![1]!) as string[];
    expect(args.slice(0, 3)).toEqual(["node", "/opt/meter2mqtt/bin/meter2mqtt.js", "health"]);
    expect(args[args.indexOf("--config") + 1]).toBe(cmd[cmd.indexOf("--config") + 1]);
  });
});
