/**
 * The page in a real browser: Debian's headless Chromium (`.ci/run` installs it), driven by playwright-core with the
 * system executable (never a downloaded browser). One browser for the file; a screenshot of each view goes to
 * test-artifacts/web/.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnCli } from "./helpers/bridge.js";
import { corrupt, FIXTURE_DAYS, INTERVAL_MONTH, startWebBridge, type WebBridge } from "./helpers/web.js";

const ARTIFACTS = join(import.meta.dirname, "..", "test-artifacts", "web");
const CHROMIUM = "/usr/bin/chromium";

let context: BrowserContext;
let profile: string;
/** Console errors and uncaught exceptions of every page, by test. */
const errors: string[] = [];

async function open(url: string): Promise<Page> {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${url}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${url}: ${e.message}`));
  await page.goto(url, { waitUntil: "load" });
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), "m2m-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    locale: "en-US",
    timezoneId: "UTC",
    viewport: { width: 1200, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 60_000);

afterAll(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

describe("the page of the demo (meter2mqtt demo --web)", () => {
  it("prints its URL, loads without console errors and shows the demo meters' values", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const demo = spawnCli(["demo", "--web", "--quiet", "--port", "0", "--web-port", String(port)]);
    // The demo writes ./data under its working directory: that of the checkout (data/ is ignored by git).
    try {
      const deadline = Date.now() + 60_000;
      let url: string | undefined;
      while (!url && Date.now() < deadline) {
        url = /The bridge's page: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(demo.output())?.[1];
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(url, demo.output()).toBeDefined();
      const page = await open(`${url}#live`);
      for (const id of ["home_nl", "home_be"])
        await page
          .locator(`#live-meters [data-meter="${id}"] tr[data-q="energy_import_tariff1_kwh"] td`)
          .waitFor({ timeout: 30_000 });
      expect(await page.locator('#live-meters [data-meter="home_be"] h2').textContent()).toBe("Home (BE)");
      expect(
        await page
          .locator('#live-meters [data-meter="home_nl"] tr[data-q="energy_import_tariff1_kwh"] td')
          .textContent(),
      ).toMatch(/^1,23\d\.\d+ kWh$/);
      await shot(page, "demo-live");
      await page.close();
      expect(errors).toEqual([]);
    } finally {
      demo.child.kill("SIGINT");
      await Promise.race([demo.exit, new Promise((r) => setTimeout(r, 15_000))]);
      demo.kill();
    }
  }, 120_000);
});

describe("the page of a bridge with a fixture archive and a load", () => {
  let b: WebBridge;
  let page: Page;

  beforeAll(async () => {
    b = await startWebBridge();
    page = await open(b.url);
  }, 60_000);

  afterAll(async () => {
    await page?.close();
    await b?.close();
  });

  it("loads in well under a second, with everything from the bridge itself", async () => {
    const fresh = await open(b.url);
    await fresh.locator('#meters-status [data-meter="home"]').waitFor();
    // Run in the page (the tests are type-checked without the DOM's types, hence the string).
    const timing = (await fresh.evaluate(`(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const resources = performance.getEntriesByType("resource");
      return {
        domContentLoadedMs: Math.round(nav.domContentLoadedEventEnd),
        loadMs: Math.round(nav.loadEventEnd),
        bytes: nav.transferSize + resources.reduce((a, r) => a + r.transferSize, 0),
        origins: [...new Set(resources.map((r) => new URL(r.name).origin))],
      };
    })()`)) as { domContentLoadedMs: number; loadMs: number; bytes: number; origins: string[] };
    writeFileSync(join(ARTIFACTS, "timing.json"), `${JSON.stringify(timing, null, 2)}\n`);
    expect(timing.origins).toEqual([new URL(b.url).origin]);
    // Generous for a loaded CI machine; a Pi on the LAN measures ~100 ms.
    expect(timing.loadMs).toBeLessThan(1000);
    await fresh.close();
    expect(errors).toEqual([]);
  }, 60_000);

  it("status: the meters, a rejected telegram's reason and the outputs", async () => {
    b.send(b.telegram(700));
    b.send(corrupt(b.telegram(700)));
    // The status view refreshes every 10 s; a reload shows it at once.
    await expect
      .poll(
        async () => {
          await page.reload({ waitUntil: "load" });
          return page.locator('#meters-status [data-meter="home"] .rejections li').count();
        },
        { timeout: 30_000, interval: 1000 },
      )
      .toBeGreaterThan(0);
    expect(await page.locator('#meters-status [data-meter="home"] .rejections li').last().textContent()).toMatch(
      /CRC/i,
    );
    expect(await page.locator("#outputs").textContent()).toContain("MQTT broker");
    await shot(page, "status");
    expect(errors).toEqual([]);
  }, 60_000);

  it("live: a telegram that arrives shows at once, in the values and the power chart", async () => {
    await page.goto(`${b.url}#live`);
    await page.locator('#live-meters [data-meter="home"]').waitFor();
    await expect.poll(() => page.locator("#conn").textContent(), { timeout: 15_000 }).toBe("live");
    b.send(b.telegram(3210));
    const cell = page.locator('#live-meters [data-meter="home"] tr[data-q="power_import_w"] td');
    await expect.poll(() => cell.textContent(), { timeout: 15_000 }).toBe("3,210 W");
    b.send(b.telegram(1234));
    await expect.poll(() => cell.textContent(), { timeout: 15_000 }).toBe("1,234 W");
    expect(await page.locator('#live-meters [data-meter="home"] polyline.line').count()).toBe(1);
    await shot(page, "live");
    expect(errors).toEqual([]);
  }, 60_000);

  it("history: bars per tariff from the archive, a day's hours, and the interval meter's calendar", async () => {
    await page.goto(`${b.url}#history`);
    const bars = page.locator("#history-chart g.bar");
    // The fixture's three days (and today's, from the telegrams the other tests sent).
    await expect.poll(() => bars.count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    for (const d of FIXTURE_DAYS) expect(await page.locator(`#history-chart g.bar[data-label="${d}"]`).count()).toBe(1);
    const first = page.locator(`#history-chart g.bar[data-label="${FIXTURE_DAYS[0]}"]`);
    expect(await first.locator("rect.bar-t1").count()).toBe(1);
    expect(await first.locator("rect.bar-t2").count()).toBe(1);
    expect(await first.locator("rect.bar-export").count()).toBe(1);
    expect(await first.locator("title").textContent()).toBe(
      `${FIXTURE_DAYS[0]}: import 15 kWh, export 0.5 kWh, tariff1 10, tariff2 5, cost 3.75 EUR`,
    );
    expect(await page.locator("#history-cost").textContent()).toMatch(
      /kWh imported in \d day\(s\), costing [\d.]+ EUR/,
    );
    await page.locator(`#history-chart g.bar[data-label="${FIXTURE_DAYS[1]}"]`).click();
    await expect.poll(() => page.locator("#hours-chart g.bar").count(), { timeout: 15_000 }).toBe(11);
    await shot(page, "history");

    await page.selectOption("#history-meter", "texas");
    await page.locator("#calendar-box").waitFor({ state: "visible" });
    await page.click("#cal-prev");
    await expect.poll(() => page.locator("#cal-month").textContent()).toBe(INTERVAL_MONTH);
    const day = (d: string) => page.locator(`#calendar [data-day="${INTERVAL_MONTH}-${d}"]`);
    await expect.poll(() => day("01").getAttribute("class"), { timeout: 15_000 }).toBe("complete");
    expect(await day("03").getAttribute("class")).toBe("estimated");
    expect(await day("04").getAttribute("class")).toBe("missing");
    expect(await day("05").getAttribute("class")).toBe("revised");
    expect(await day("11").getAttribute("class")).toBe("partial");
    // A past day of which nothing arrived.
    expect(await day("20").getAttribute("class")).toBe("missing");
    await shot(page, "history-calendar");
    expect(errors).toEqual([]);
  }, 60_000);

  it("decode: a pasted telegram with a damaged byte is refused with the CRC as the reason", async () => {
    await page.goto(`${b.url}#decode`);
    await page.selectOption("#decode-format", "dsmr");
    await page.fill("#decode-text", corrupt(b.telegram(500)).toString("latin1"));
    await page.click("#decode-run");
    const refused = page.locator("#decode-out .refused");
    await refused.waitFor({ timeout: 15_000 });
    expect(await refused.textContent()).toMatch(/Refused: .*CRC/i);
    expect(await refused.locator(".hint").textContent()).toContain("changed between the meter and meter2mqtt");
    await shot(page, "decode-refused");
    await page.fill("#decode-text", b.telegram(500).toString("latin1"));
    await page.click("#decode-run");
    await page.locator("#decode-out .decoded").waitFor({ timeout: 15_000 });
    expect(await page.locator("#decode-out .decoded pre").textContent()).toContain('"power_import_w": 500');
    expect(errors).toEqual([]);
  }, 60_000);

  it("works behind Home Assistant's ingress: every URL under the ingress path, live updates through the proxy", async () => {
    // A stand-in for the Supervisor's ingress proxy: /api/hassio_ingress/<token>/… to the bridge's /…, with the
    // X-Ingress-Path header, responses streamed (server-sent events included); anything else is a 404 and noted.
    const prefix = "/api/hassio_ingress/Tok3n_x";
    const outside: string[] = [];
    const target = new URL(b.url);
    const proxy = createServer((req, res) => {
      const url = req.url ?? "/";
      if (url !== prefix && !url.startsWith(`${prefix}/`)) {
        outside.push(url);
        res.writeHead(404).end();
        return;
      }
      const upstream = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: url.slice(prefix.length) || "/",
          headers: { ...req.headers, host: target.host, "x-ingress-path": prefix },
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
    const port = (proxy.address() as { port: number }).port;
    const ingress = await open(`http://127.0.0.1:${port}${prefix}`);
    try {
      await ingress.locator('#meters-status [data-meter="home"]').waitFor({ timeout: 15_000 });
      await ingress.click('#tabs a[data-view="live"]');
      await expect.poll(() => ingress.locator("#conn").textContent(), { timeout: 15_000 }).toBe("live");
      b.send(b.telegram(4321));
      const cell = ingress.locator('#live-meters [data-meter="home"] tr[data-q="power_import_w"] td');
      await expect.poll(() => cell.textContent(), { timeout: 15_000 }).toBe("4,321 W");
      await ingress.click('#tabs a[data-view="history"]');
      await expect.poll(() => ingress.locator("#history-chart g.bar").count(), { timeout: 15_000 }).toBeGreaterThan(0);
      await shot(ingress, "ingress");
      expect(outside).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await ingress.close();
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  }, 60_000);

  it("loads: changing a load's mode on the page changes the advisor's", async () => {
    await page.goto(`${b.url}#loads`);
    const select = page.locator('#loads [data-load="boiler"] select.mode');
    await select.waitFor({ timeout: 15_000 });
    await select.selectOption("on");
    await expect.poll(() => b.app.loads?.advisor.snapshots().find((s) => s.id === "boiler")?.mode).toBe("on");
    await expect
      .poll(() => page.locator('#loads [data-load="boiler"] [data-state]').getAttribute("data-state"))
      .toBe("on");
    expect(await page.locator('#loads [data-load="boiler"] .timeline li').first().textContent()).toMatch(
      /: on \(on, manual\)/,
    );
    // The strip shows the load's on period.
    expect(await page.locator('#loads [data-load="boiler"] svg.strip rect.strip-on').count()).toBe(1);
    await shot(page, "loads");
    await page.locator('#loads [data-load="boiler"] select.mode').selectOption("off");
    await expect.poll(() => b.app.loads?.advisor.snapshots().find((s) => s.id === "boiler")?.mode).toBe("off");
    expect(errors).toEqual([]);
  }, 60_000);
});
