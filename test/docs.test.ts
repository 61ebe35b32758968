/**
 * The documentation is what the code does:
 * - docs/configuration.md and addon/DOCS.md are what `npm run docs` writes (scripts/docs/build.ts);
 * - every configuration key has a description in the schema;
 * - every meter2mqtt configuration shown as a ```yaml block parses with the real schema (blocks are marked by their
 *   first line, see CONTRIBUTING.md);
 * - every meter2mqtt command shown in a ```sh block is a real command with real options, and the cheap ones run;
 * - the Grafana dashboard parses and asks only for measurements, fields and tags the influx output writes.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { generated } from "../scripts/docs/build.js";
import { addonToConfig, mergeYaml } from "../src/addon/index.js";
import { parseConfig } from "../src/config/load.js";
import { configKeys } from "../src/config/reference.js";
import { QUANTITIES } from "../src/model/quantities.js";
import { BACKFILL_USAGE, EXPORT_USAGE, IMPORT_USAGE, REPORT_USAGE } from "../src/usage.js";
import { VERSION } from "../src/version.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");

/**
 * Keys of src/tariffs/schema.ts that have no description yet. The engineer who owns that file adds them with
 * `.describe()` and empties this list; no other key may be missing one.
 */
const TARIFF_KEYS_WITHOUT_DESCRIPTION: readonly string[] = [];

/** The user-facing pages: README, docs/ and what the app shows. */
const PAGES = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`),
  "addon/DOCS.md",
];

interface Block {
  page: string;
  line: number;
  lang: string;
  text: string;
}

function blocks(page: string): Block[] {
  const out: Block[] = [];
  const lines = read(page).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open || open[1] === "") continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    out.push({ page, line: start + 1, lang: open[1]!, text: body.join("\n") });
  }
  return out;
}

const ALL = PAGES.flatMap(blocks);
const where = (b: Block): string => `${b.page}:${b.line}`;

// ── Generated files ─────────────────────────────────────────────────────────────────────────────────────────────

describe("generated documentation", () => {
  for (const [path, text] of Object.entries(generated()))
    it(`${path} is up to date`, () => {
      expect(read(path) === text, `${path} differs from what the sources give: run npm run docs`).toBe(true);
    });

  it("has a description for every configuration key", () => {
    const missing = configKeys()
      .keys.filter((k) => !k.description)
      .map((k) => k.path);
    expect(
      missing.filter((p) => !TARIFF_KEYS_WITHOUT_DESCRIPTION.includes(p)),
      "keys without a description (.describe() in the schema)",
    ).toEqual([]);
  });

  it("lists as known-missing only tariff keys that still miss a description", () => {
    const missing = new Set(
      configKeys()
        .keys.filter((k) => !k.description)
        .map((k) => k.path),
    );
    expect(TARIFF_KEYS_WITHOUT_DESCRIPTION.filter((p) => !p.startsWith("tariffs."))).toEqual([]);
    expect(
      TARIFF_KEYS_WITHOUT_DESCRIPTION.filter((p) => !missing.has(p)),
      "described now: remove from TARIFF_KEYS_WITHOUT_DESCRIPTION",
    ).toEqual([]);
  });
});

// ── YAML examples ───────────────────────────────────────────────────────────────────────────────────────────────

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** A part of a configuration made whole: a meter for each id it names that it does not configure. */
function completeFragment(part: Obj): Obj {
  const cfg: Obj = { ...part };
  const meters = Array.isArray(cfg.meters) ? [...(cfg.meters as Obj[])] : [];
  const have = new Set(meters.map((m) => m.id));
  const named = new Set<string>();
  for (const l of [...((cfg.loads as Obj[]) ?? []), ...((cfg.peak_guard as Obj[]) ?? [])])
    if (typeof l.meter === "string") named.add(l.meter);
  for (const t of Object.values(isObject(cfg.tariffs) ? cfg.tariffs : {}))
    for (const m of (isObject(t) && Array.isArray(t.meters) ? t.meters : []) as string[]) named.add(m);
  for (const id of named) if (!have.has(id)) meters.push({ id, type: "dsmr", port: "/dev/ttyUSB0" });
  if (meters.length === 0) meters.push({ id: "home", type: "dsmr", port: "/dev/ttyUSB0" });
  cfg.meters = meters;
  return cfg;
}

const APP_CTX = {
  dataDir: "/data",
  mqttService: { host: "core-mosquitto", port: 1883, ssl: false, protocol: "5", username: "u", password: "p" },
  supervisorUrl: "http://supervisor",
  supervisorToken: "0123abcd",
};
const APP_METER = { id: "home", type: "dsmr", port: "/dev/ttyUSB0" };
const APP_DEFAULTS = (parseYaml(read("addon/config.yaml")) as { options: Obj }).options;

/** How each kind of ```yaml block is checked, by its first line. */
const KINDS: { marker: RegExp; check: (yaml: unknown) => void }[] = [
  { marker: /^# meter2mqtt\.yaml$/, check: (y) => parseConfig(y) },
  { marker: /^# part of meter2mqtt\.yaml\b/, check: (y) => parseConfig(completeFragment(y as Obj)) },
  {
    marker: /^# the app's options\b/,
    check: (y) => parseConfig(addonToConfig({ ...APP_DEFAULTS, meters: [APP_METER], ...(y as Obj) }, APP_CTX).config),
  },
  {
    marker: /^# the app's meter2mqtt\.yaml\b/,
    check: (y) => {
      const made = addonToConfig({ ...APP_DEFAULTS, meters: [APP_METER] }, APP_CTX);
      parseConfig(mergeYaml(made.config, y, "meter2mqtt.yaml").config);
    },
  },
  // Home Assistant's own configuration: YAML, nothing of meter2mqtt's to check.
  { marker: /^# Home Assistant\b/, check: () => {} },
];

describe("yaml examples", () => {
  const yamls = ALL.filter((b) => b.lang === "yaml");
  it("are there, each marked as what it is", () => {
    expect(yamls.length).toBeGreaterThan(10);
    const unmarked = yamls.filter((b) => !KINDS.some((k) => k.marker.test(b.text.split("\n")[0]!))).map(where);
    expect(unmarked, "first line: # meter2mqtt.yaml, # part of meter2mqtt.yaml, … (CONTRIBUTING.md)").toEqual([]);
  });

  for (const b of yamls)
    it(`${where(b)} (${b.text.split("\n")[0]}) is taken as it stands`, () => {
      const kind = KINDS.find((k) => k.marker.test(b.text.split("\n")[0]!));
      if (!kind) return;
      const parsed = parseYaml(b.text) as unknown;
      kind.check(parsed);
    });
});

// ── Links ───────────────────────────────────────────────────────────────────────────────────────────────────────

/** GitHub's anchor of a heading: lower case, punctuation other than - and _ dropped, spaces as -. */
const slug = (heading: string): string =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");

function anchors(path: string): Set<string> {
  return new Set(
    read(path)
      .split("\n")
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => slug(l.replace(/^#+ /, ""))),
  );
}

describe("links between the pages", () => {
  it("point at files and headings that exist", () => {
    const broken: string[] = [];
    for (const page of PAGES.filter((p) => p !== "addon/DOCS.md")) {
      const text = read(page).replace(/```[\s\S]*?```/g, "");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^(https?:|mailto:)/.test(target)) continue;
        const [file, hash] = target.split("#") as [string, string | undefined];
        const path = file ? posix.normalize(posix.join(posix.dirname(page), file)).replace(/\/$/, "") : page;
        if (!existsSync(join(ROOT, path))) broken.push(`${page}: ${target}: no ${path}`);
        else if (hash !== undefined && path.endsWith(".md") && !anchors(path).has(hash))
          broken.push(`${page}: ${target}: no heading #${hash} in ${path}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

// ── Commands ────────────────────────────────────────────────────────────────────────────────────────────────────

/** Each command's options, from the usage text `meter2mqtt --help` prints. */
function usage(): Map<string, Set<string>> {
  const cli = read("src/cli.ts");
  const text = /const USAGE = `([\s\S]*?)`;/.exec(cli)![1]!.replace(/\$\{(\w+)\}/g, (_m, name: string) => {
    const part = ({ IMPORT_USAGE, REPORT_USAGE, EXPORT_USAGE, BACKFILL_USAGE, VERSION } as Record<string, string>)[
      name
    ];
    if (part === undefined)
      throw new Error(`src/cli.ts: the usage text uses \${${name}}, which this test does not know`);
    return part;
  });
  const out = new Map<string, Set<string>>();
  let current: Set<string> | undefined;
  for (const line of text.split("\n")) {
    const cmd = /^\s{2}meter2mqtt (\S+)(.*)$/.exec(line);
    if (cmd) {
      const name = cmd[1]!.startsWith("--") ? "" : cmd[1]!;
      current = out.get(name) ?? new Set<string>();
      out.set(name, current);
      for (const f of line.matchAll(/--[a-z][a-z-]*/g)) current.add(f[0]);
      continue;
    }
    // Continuation lines of a command's options, before its description column.
    if (current && /^\s{10,}\[/.test(line)) for (const f of line.matchAll(/--[a-z][a-z-]*/g)) current.add(f[0]);
  }
  for (const flags of out.values()) flags.add("--debug");
  return out;
}

/** `meter2mqtt …` lines of ```sh blocks (with `$ `, `npx`, and `npm run demo --` as `meter2mqtt demo`). */
function commands(): { at: string; argv: string[] }[] {
  const out: { at: string; argv: string[] }[] = [];
  for (const b of ALL.filter((x) => x.lang === "sh" || x.lang === "shell" || x.lang === "console")) {
    const joined = b.text.replace(/\\\n\s*/g, " ");
    for (const raw of joined.split("\n")) {
      let line = raw.replace(/^\$ /, "").trim();
      line = line.replace(/\s+#.*$/, "").replace(/\s*[|>].*$/, "");
      line = line.replace(/^npm run demo -- /, "meter2mqtt demo ").replace(/^npm run demo$/, "meter2mqtt demo");
      line = line.replace(/^npx /, "");
      if (!/^meter2mqtt(\s|$)/.test(line)) continue;
      out.push({ at: where(b), argv: line.split(/\s+/).slice(1) });
    }
  }
  return out;
}

describe("commands shown", () => {
  const known = usage();
  const shown = commands();

  it("are there", () => {
    expect(shown.length).toBeGreaterThan(10);
    expect([...known.keys()]).toEqual(expect.arrayContaining(["run", "decode", "import", "report", "export", "check"]));
  });

  it("are real commands with real options", () => {
    const wrong: string[] = [];
    for (const c of shown) {
      const [cmd, ...rest] = c.argv;
      const flags = known.get(cmd!.startsWith("--") ? "" : cmd!);
      if (!flags) {
        wrong.push(`${c.at}: meter2mqtt ${cmd}: no such command`);
        continue;
      }
      if (cmd!.startsWith("--") && !flags.has(cmd!)) wrong.push(`${c.at}: meter2mqtt ${cmd}: no such option`);
      for (const a of rest) {
        const flag = /^(--[a-z][a-z-]*)/.exec(a)?.[1];
        if (flag && !flags.has(flag)) wrong.push(`${c.at}: meter2mqtt ${cmd} ${flag}: no such option`);
      }
    }
    expect(wrong).toEqual([]);
  });

  // `decode` of a file the package ships runs in a moment: run those as shown.
  const runnable = shown.filter(
    (c) => c.argv[0] === "decode" && c.argv.some((a) => a.startsWith("fixtures/")) && !c.argv.includes("…"),
  );
  for (const c of runnable)
    it(`${c.at}: meter2mqtt ${c.argv.join(" ")} runs`, async () => {
      const { stdout } = await run(process.execPath, ["--import", "tsx", "src/cli.ts", ...c.argv], { cwd: ROOT });
      expect(stdout.split("\n").filter(Boolean).length).toBeGreaterThan(0);
      JSON.parse(stdout.split("\n")[0]!);
    });
});

// ── report and export, run as shown ─────────────────────────────────────────────────────────────────────────────

/** `$ meter2mqtt …` lines of text blocks and the lines they print, up to the next prompt or the block's end. */
function transcripts(): { at: string; argv: string[]; printed: string[] }[] {
  const out: { at: string; argv: string[]; printed: string[] }[] = [];
  for (const b of ALL.filter((x) => x.lang === "text")) {
    const lines = b.text.split("\n");
    lines.forEach((l, i) => {
      if (!l.startsWith("$ meter2mqtt ")) return;
      const printed: string[] = [];
      for (let j = i + 1; j < lines.length && !(lines[j] as string).startsWith("$ "); j++)
        printed.push(lines[j] as string);
      out.push({ at: where(b), argv: l.slice("$ meter2mqtt ".length).trim().split(/\s+/), printed });
    });
  }
  return out;
}

/** tsx's loader by its file, for a command run in a folder of its own. */
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;

describe("report and export commands shown", () => {
  // In a folder with meter2mqtt.yaml (and config.yaml, which one example names) holding the meters the pages use,
  // and an archive with a day of the Amsterdam meter's readings: each command runs as a user would type it.
  const dir = mkdtempSync(join(tmpdir(), "m2m-docs-cmd-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = [
    `archive: {path: ${JSON.stringify(join(dir, "meter2mqtt.sqlite"))}}`,
    "meters:",
    "  - {id: home, type: dsmr, port: /dev/ttyUSB0, timezone: Europe/Amsterdam}",
    `  - {id: texas, type: smt, folder: ${JSON.stringify(dir)}}`,
    "tariffs:",
    "  home: {meters: [home], currency: EUR, import: 0.3, export: 0.08, daily_charge: 0.72}",
  ].join("\n");
  writeFileSync(join(dir, "meter2mqtt.yaml"), config);
  writeFileSync(join(dir, "config.yaml"), config);
  beforeAll(async () => {
    // A day of readings every 5 minutes, so the exports have something to write.
    const { Archive } = await import("../src/outputs/archive/index.js");
    const archive = new Archive({ enabled: true, path: join(dir, "meter2mqtt.sqlite"), interval: 0 });
    await archive.start();
    for (let i = 0; i < 288; i++)
      archive.add({
        meterId: "home",
        time: Date.parse("2025-03-10T00:00:00Z") + i * 300_000,
        values: { energy_import_kwh: 1000 + i * 0.02, power_import_w: 240 },
      });
    await archive.stop();
  });
  const cli = (argv: string[]) =>
    run(process.execPath, ["--import", TSX, join(ROOT, "src/cli.ts"), ...argv], { cwd: dir }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  const shown = commands().filter(
    (c) =>
      (c.argv[0] === "report" || c.argv[0] === "export") &&
      !c.argv.includes("--backfill") &&
      !c.argv.some((a) => a.includes("…") || a.includes("|") || a.startsWith("[")),
  );

  it("are there", () => expect(shown.length + transcripts().length).toBeGreaterThan(3));

  for (const c of shown)
    it(`${c.at}: meter2mqtt ${c.argv.join(" ")} runs`, async () => {
      const r = await cli(c.argv);
      expect(r.stderr).not.toMatch(/^meter2mqtt: /m);
      expect(r.code).toBe(0);
      // What it says it did: the day of readings the folder's archive has for home in March 2025.
      if (c.argv.includes("home") && !c.argv.includes("--format"))
        expect(r.stderr).toBe("home: 288 reading(s) exported\n");
    });

  for (const t of transcripts().filter((x) => x.argv[0] === "report" || x.argv[0] === "export"))
    it(`${t.at}: meter2mqtt ${t.argv.join(" ")} prints what the page shows`, async () => {
      const r = await cli(t.argv);
      const errorShown = t.printed[0]?.startsWith("meter2mqtt: ");
      if (errorShown) {
        // An error example: the very line, and exit status 2.
        expect(r.stderr.trim()).toBe(t.printed.join("\n").trim());
        expect(r.code).toBe(2);
      } else {
        // A report: it runs, and its heading is the page's (the figures depend on the page's example data).
        expect(r.code).toBe(0);
        expect(r.stdout.split("\n")[0]).toBe(t.printed[0]);
      }
    });
});

// ── Grafana ─────────────────────────────────────────────────────────────────────────────────────────────────────

/** Fields and tags of the line-protocol output (src/outputs/influx/line.ts), by measurement (default names). */
const NUMBER_FIELDS = new Set([...QUANTITIES.values()].filter((q) => q.type === "number").map((q) => q.name));
const WRITTEN: Record<string, { fields: Set<string>; tags: Set<string> }> = {
  meter2mqtt: { fields: NUMBER_FIELDS, tags: new Set(["meter"]) },
  meter2mqtt_interval: { fields: new Set(["energy_kwh", "estimated", "cost"]), tags: new Set(["meter", "direction"]) },
};

describe("the Grafana dashboard", () => {
  const files = readdirSync(join(ROOT, "docs/grafana")).filter((f) => f.endsWith(".json"));

  it("is there", () => expect(files.length).toBeGreaterThan(0));

  for (const file of files)
    it(`${file} parses and asks only for what the influx output writes`, () => {
      const dash = JSON.parse(read(`docs/grafana/${file}`)) as { panels: Obj[]; templating?: { list: Obj[] } };
      const queries: string[] = [];
      for (const p of dash.panels)
        for (const t of (p.targets as Obj[] | undefined) ?? []) if (typeof t.query === "string") queries.push(t.query);
      for (const v of dash.templating?.list ?? []) if (typeof v.query === "string") queries.push(v.query);
      expect(queries.length).toBeGreaterThan(3);
      const wrong: string[] = [];
      for (const q of queries) {
        const from = /FROM "([^"]+)"/.exec(q)?.[1];
        const m = from ? WRITTEN[from] : undefined;
        if (!m) {
          wrong.push(`${q}: measurement ${from ?? "(none)"} is not written`);
          continue;
        }
        const select = /^SELECT (.*?) FROM/.exec(q)?.[1] ?? "";
        for (const f of select.matchAll(/"([^"]+)"/g)) if (!m.fields.has(f[1]!)) wrong.push(`${q}: field ${f[1]}`);
        const rest = q.slice(q.indexOf("FROM"));
        for (const t of rest.matchAll(/"([a-z_]+)"\s*(?:=~|=|!=)/g))
          if (!m.tags.has(t[1]!)) wrong.push(`${q}: tag ${t[1]}`);
        for (const t of /GROUP BY (.*)$/.exec(rest)?.[1]?.matchAll(/"([^"]+)"/g) ?? [])
          if (!m.tags.has(t[1]!)) wrong.push(`${q}: tag ${t[1]}`);
        const key = /WITH KEY = "([^"]+)"/.exec(q)?.[1];
        if (key && !m.tags.has(key)) wrong.push(`${q}: tag ${key}`);
      }
      expect(wrong).toEqual([]);
    });
});
