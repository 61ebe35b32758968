/**
 * The images without a Docker engine: the Dockerfile's stages and build context checked as text, and the runtime
 * tree its build stages assemble (scripts/build-runtime-tree.sh) built here and started, as the images start it.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");
const pkg = JSON.parse(read("package.json")) as {
  version: string;
  files: string[];
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

/** The Dockerfile's stages, continuation lines joined. */
function stages(text: string): Stage[] {
  const out: Stage[] = [];
  for (const line of text.replace(/\\\n\s*/g, " ").split("\n")) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ from: from[1]!, name: from[2] ?? "", lines: [] });
    else if (out.length > 0 && line.trim() && !line.startsWith("#")) out.at(-1)!.lines.push(line.trim());
  }
  return out;
}

/** Docker's rule for .dockerignore as this project writes it: the last matching line wins, `!` includes again. */
function inContext(path: string, patterns: string[]): boolean {
  let included = true;
  for (const raw of patterns) {
    const negate = raw.startsWith("!");
    const pattern = (negate ? raw.slice(1) : raw).replace(/\/$/, "");
    const matches =
      pattern === "*" ||
      path === pattern ||
      path.startsWith(`${pattern}/`) ||
      (pattern.endsWith("/*") && path.startsWith(pattern.slice(0, -1)));
    if (matches) included = negate;
  }
  return included;
}

describe("Dockerfile", () => {
  const dockerfile = read("Dockerfile");
  const all = stages(dockerfile);
  const stage = (name: string): Stage => {
    const s = all.find((x) => x.name === name);
    if (!s) throw new Error(`no stage ${name}`);
    return s;
  };
  const ignore = read(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const contextCopies = all
    .flatMap((s) => s.lines)
    .filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l))
    .flatMap((l) => l.split(/\s+/).slice(1, -1));

  it("builds the standalone image by default, running as a non-root user, and the add-on on Home Assistant's base", () => {
    expect(all.map((s) => s.name)).toEqual(["source", "build", "addon-build", "addon", "runtime"]);
    const runtime = all.at(-1)!;
    expect(runtime.lines).toContain("USER node");
    expect(runtime.lines.join("\n")).not.toMatch(/apk add|npm (ci|install)/);
    expect(stage("addon").from).toMatch(/^\$\{BUILD_FROM\}$/);
    expect(stage("addon-build").from).toMatch(/^\$\{BUILD_FROM\}$/);
    expect(stage("addon").lines.some((l) => l.startsWith("USER"))).toBe(false);
    for (const name of ["build", "addon-build"])
      expect(stage(name).lines.join("\n"), name).toContain("sh scripts/build-runtime-tree.sh /opt/meter2mqtt");
    for (const name of ["addon", "runtime"])
      expect(stage(name).lines.join("\n"), name).toMatch(
        /COPY --from=(addon-)?build \/opt\/meter2mqtt \/opt\/meter2mqtt/,
      );
  });

  it("copies what the package ships and the build needs, all of it let through by .dockerignore", () => {
    for (const path of contextCopies) {
      expect(existsSync(join(ROOT, path)), path).toBe(true);
      expect(inContext(path, ignore), `${path} is excluded by .dockerignore`).toBe(true);
    }
    for (const entry of pkg.files.filter((f) => f.replace(/\/$/, "") !== "dist"))
      expect(contextCopies, `package.json files: ${entry}`).toContain(entry.replace(/\/$/, ""));
    for (const kept of [
      "node_modules/mqtt/package.json",
      ".git/HEAD",
      "data/demo.sqlite",
      "test/config.test.ts",
      "dist/cli.js",
    ])
      expect(inContext(kept, ignore), kept).toBe(false);
  });

  it("labels the add-on image with the version of addon/config.yaml when built as the comment says", () => {
    const addon = parseYaml(read("addon/config.yaml")) as { version: string; image: string };
    const tag = addon.image.replace("{arch}", "aarch64");
    expect(dockerfile).toContain(`-t ${tag}:${addon.version} .`);
    expect(dockerfile).toContain(`--build-arg BUILD_VERSION=${addon.version}`);
  });
});

describe("the runtime tree (scripts/build-runtime-tree.sh)", () => {
  let dir: string;
  let tree: string;
  let built: { stdout: string; stderr: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-tree-"));
    tree = join(dir, "tree");
    built = await run("sh", [join(ROOT, "scripts/build-runtime-tree.sh"), tree], { cwd: dir, maxBuffer: 1 << 24 });
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("holds what the package ships, compiled, with the production dependencies only", () => {
    expect(built.stdout).toMatch(
      new RegExp(`runtime tree ready: .* \\(meter2mqtt ${pkg.version.replace(/\./g, "\\.")},`),
    );
    expect(readdirSync(tree).sort()).toEqual(
      expect.arrayContaining(["bin", "dist", "fixtures", "node_modules", "package.json", "sql"]),
    );
    expect(existsSync(join(tree, "src"))).toBe(false);
    expect(existsSync(join(tree, "dist/cli.js"))).toBe(true);
    expect(existsSync(join(tree, "dist/addon/index.js"))).toBe(true);
    expect(readdirSync(join(tree, "sql"))).toEqual(readdirSync(join(ROOT, "sql")));
    for (const dep of Object.keys(pkg.dependencies))
      expect(existsSync(join(tree, "node_modules", dep, "package.json")), dep).toBe(true);
    // The lockfile marks every package only the dev dependencies need (@types/node stays: mqtt depends on it).
    const lock = JSON.parse(read("package-lock.json")) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev);
    expect(devOnly.map(([path]) => path)).toEqual(
      expect.arrayContaining(["typescript", "vitest", "tsx", "@biomejs/biome"].map((d) => `node_modules/${d}`)),
    );
    for (const [path] of devOnly) expect(existsSync(join(tree, path)), path).toBe(false);
  });

  it("starts from the tree: --version, and the demo through the whole pipeline", async () => {
    const bin = join(tree, "bin/meter2mqtt.js");
    expect((await run(process.execPath, [bin, "--version"])).stdout.trim()).toBe(pkg.version);
    const cwd = join(dir, "demo");
    mkdirSync(cwd);
    const demo = await run(process.execPath, [bin, "demo", "--quiet", "--interval", "0"], { cwd, maxBuffer: 1 << 24 });
    expect(demo.stdout).toMatch(/\d+ discovery configs \(retained\)/);
    expect(demo.stdout).toMatch(/home_nl: \d+ readings/);
    expect(existsSync(join(cwd, "data/demo.sqlite"))).toBe(true);
  }, 30_000);

  it("runs the add-on start-up compiled, as the add-on's CMD does", async () => {
    // A Supervisor without a broker: the start-up gets as far as asking it and stops with the reason.
    const server = createServer((_req, res) =>
      res
        .writeHead(400, { "content-type": "application/json" })
        .end('{"result":"error","message":"Service not enabled"}'),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const data = join(dir, "data");
    mkdirSync(data);
    const options = (parseYaml(read("addon/config.yaml")) as { options: { meters: object[] } }).options;
    writeFileSync(
      join(data, "options.json"),
      JSON.stringify({ ...options, meters: [{ ...options.meters[0], port: "/dev/ttyUSB0" }] }),
    );
    try {
      const result = await run(process.execPath, [join(tree, "bin/meter2mqtt.js"), "run"], {
        cwd: data,
        env: {
          ...process.env,
          METER2MQTT_OPTIONS: join(data, "options.json"),
          SUPERVISOR_URL: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
          SUPERVISOR_TOKEN: "test-token",
        },
      }).then(
        () => ({ code: 0, stderr: "" }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/the Supervisor has no MQTT broker to hand out \(Service not enabled\)/);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
