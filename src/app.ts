import Database from "better-sqlite3";
import { Bus } from "./bus.js";
import type { Config } from "./config/schema.js";
import { createDeriver, type MonthPeak, monthPeaksFromArchive } from "./derived/index.js";
import {
  type MeterMemory,
  memoryFromArchive,
  type Replacement,
  ReplacementTracker,
  recordReplacement,
} from "./derived/replacement.js";
import { HealthMonitor } from "./health.js";
import { IntervalPipeline } from "./intervals/pipeline.js";
import { LoadAdvisorService } from "./loads/index.js";
import { Archive, openArchiveReadOnly } from "./outputs/archive/index.js";
import { InfluxOutput } from "./outputs/influx/index.js";
import { describeUrl, MqttOutput } from "./outputs/mqtt/index.js";
import { archiveStatistics, StatisticsOutput } from "./outputs/statistics/index.js";
import { createSource } from "./sources/index.js";
import { capacityTransform } from "./tariffs/capacity.js";
import { calendarMeters, TariffService } from "./tariffs/index.js";
import { withTariffCost } from "./tariffs/statistics.js";
import { type Clock, systemClock } from "./util/clock.js";
import { type ArchiveLock, lockArchive } from "./util/lock.js";
import { createLogger, type Logger, setLogLevel } from "./util/log.js";
import { VERSION } from "./version.js";
import { Page } from "./web/api.js";
import { sendJson, WebServer } from "./web/server.js";

export interface Source {
  readonly id: string;
  /** Resolves when a finite source (a capture file) is done. */
  readonly finished?: Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

export interface AppOptions {
  clock?: Clock;
  log?: Logger;
  /** How long the first MQTT connection may take before the log says the broker cannot be reached. */
  mqttConnectTimeoutMs?: number;
}

/**
 * Lifecycle of the bridge: sources feed the bus, each output drains its own queue. Start order is
 * archive, MQTT, sources (nothing read is lost before the outputs exist); stop order is the reverse.
 * The MQTT output exists from the start but connects in the background: meters are read and archived at once,
 * whatever the broker does, and their latest values go out when it answers.
 */
export class App {
  readonly bus = new Bus();
  readonly sources: Source[] = [];
  archive?: Archive;
  /** Where interval sources (SMT) hand over their data; only with the archive, which keeps the revisions. */
  intervals?: IntervalPipeline;
  statistics?: StatisticsOutput;
  loads?: LoadAdvisorService;
  mqtt?: MqttOutput;
  /** Cost of live meters and the archive's report calendar (src/tariffs/). */
  tariffs?: TariffService;
  influx?: InfluxOutput;
  /** One bridge per archive (src/util/lock.ts). */
  private lock?: ArchiveLock;
  /** The bridge's own health (src/health.ts), on MQTT and at GET /health. */
  health?: HealthMonitor;
  web?: WebServer;
  /** The bridge's page and its API (src/web/), with `web:`. */
  page?: Page;
  private readonly log: Logger;
  private readonly clock: Clock;
  private stopping?: Promise<void>;
  private failWith?: (err: Error) => void;
  /**
   * Rejects when the bridge cannot go on and must stop (the broker refuses our credentials); never resolves.
   * The CLI stops the app and exits on it.
   */
  readonly failed: Promise<never> = new Promise<never>((_, reject) => {
    this.failWith = reject;
  });

  constructor(
    readonly config: Config,
    private readonly opts: AppOptions = {},
  ) {
    this.log = opts.log ?? createLogger("app");
    this.clock = opts.clock ?? systemClock;
    setLogLevel(config.log_level);
    // Nobody may be listening yet; the CLI is.
    this.failed.catch(() => {});
  }

  async start(): Promise<void> {
    const cfg = this.config;
    this.log.info(
      `meter2mqtt ${VERSION} starting with ${cfg.meters.length} meter(s): ${cfg.meters.map((m) => `${m.id} (${m.type})`).join(", ")}`,
    );
    if (cfg.archive.enabled) {
      // Before anything is opened: a second bridge on this archive stops here, naming the first one's PID.
      this.lock = lockArchive(cfg.archive.path);
      const archive = new Archive(cfg.archive, {
        clock: this.clock,
        diagnostics: { bus: this.bus, meterIds: cfg.meters.map((m) => m.id) },
      });
      await archive.start();
      if (this.stopping) {
        await archive.stop();
        return;
      }
      this.archive = archive;
      for (const m of cfg.meters) archive.upsertMeter({ id: m.id, name: m.name, type: m.type });
      this.bus.subscribe("archive", "reading", (r) => archive.add(r));
      this.bus.subscribe("archive", "meterInfo", (i) =>
        archive.upsertMeter({ id: i.meterId, type: this.meterType(i.meterId), ...i }),
      );
      this.log.info(`archive: ${cfg.archive.path} (a reading per meter every ${cfg.archive.interval} s at most)`);
    } else this.log.info("archive: disabled in the configuration");
    if (this.archive) this.intervals = new IntervalPipeline(this.archive, this.bus, { clock: this.clock });
    this.tariffs = new TariffService(cfg, { clock: this.clock });
    this.tariffs.startCalendar(this.archive);
    this.tariffs.startPrices(this.archive);
    this.startStatistics();

    // What the meters were at when the bridge last stopped: one read of the archive for both.
    const meters = cfg.meters.map((m) => ({ id: m.id, timezone: "timezone" in m ? m.timezone : undefined }));
    let memory: Map<string, MeterMemory> | undefined;
    let peaks = new Map<string, MonthPeak>();
    if (this.archive) {
      const db = openArchiveReadOnly(cfg.archive.path);
      try {
        memory = memoryFromArchive(db);
        peaks = monthPeaksFromArchive(db, meters, this.clock.now());
      } finally {
        db.close();
      }
    }
    this.trackReplacements(memory);
    // Derived quantities are added as a bus step rather than by a subscriber re-emitting: every output (and the
    // load advisor) then sees one enriched reading, in order, and a new output gets them without asking. The
    // computed month peak carries on from the archive rather than starting over with each start.
    this.bus.transform("reading", createDeriver(meters.map((m) => ({ ...m, peak: peaks.get(m.id) }))));
    this.bus.transform("reading", this.tariffs.coster());
    this.startCapacity();
    this.startInflux();
    if (cfg.loads.length > 0) {
      this.loads = new LoadAdvisorService(cfg, { clock: this.clock });
      this.loads.start(this.bus);
    }

    const connected = this.connectMqtt();
    await this.startHealth();
    if (this.stopping) return;

    // A live meter cannot be paused, so it is read at once; a capture replay (file:) can, and waits for the
    // broker (at most its connect timeout) so that what it replays is published rather than only archived.
    const replays: Source[] = [];
    for (const m of cfg.meters) {
      const source = await createSource(m, this.bus, { clock: this.clock, intervals: this.intervals });
      // Stopped while a source's code was loading: it is not started after "stopped".
      if (this.stopping) return;
      this.sources.push(source);
      if ("port" in m && typeof m.port === "string" && m.port.startsWith("file:")) replays.push(source);
      else source.start();
    }
    if (replays.length === 0) return;
    await connected;
    if (this.stopping) return;
    for (const source of replays) source.start();
  }

  /**
   * A replaced meter (src/derived/replacement.ts): noticed before any output sees the reading, remembered in the
   * archive, and sent to HA as the registers' last_reset. Runs first, so nothing downstream sees a fallen register
   * that is still undecided.
   */
  private trackReplacements(memory: Map<string, MeterMemory> | undefined): void {
    const path = this.archive ? this.config.archive.path : undefined;
    const log = createLogger("meters");
    const tracker = new ReplacementTracker({
      log,
      memory,
      onReplacement: (r: Replacement) => {
        if (!path) return;
        try {
          const db = new Database(path, { timeout: 5000 });
          try {
            recordReplacement(db, r);
          } finally {
            db.close();
          }
        } catch (err) {
          log.error(`the replacement of meter ${r.meterId} was not recorded in the archive: ${(err as Error).message}`);
        }
      },
    });
    this.bus.transform("meterInfo", (i) => {
      tracker.onMeterInfo(i);
      return i;
    });
    this.bus.transform("reading", tracker.transform);
  }

  /** Belgium's capacity tariff in money, for meters whose tariff has `capacity` (src/tariffs/capacity.ts). */
  private startCapacity(): void {
    const meters = Object.values(this.config.tariffs).flatMap((t) =>
      t.capacity
        ? t.meters.flatMap((id) => {
            const tariff = this.tariffs?.tariffs.get(id);
            return tariff && t.capacity
              ? [{ id, capacity: t.capacity, timezone: tariff.timezone, currency: tariff.currency }]
              : [];
          })
        : [],
    );
    const path = this.archive ? this.config.archive.path : undefined;
    const step = capacityTransform(meters, path ? () => openArchiveReadOnly(path) : undefined, this.clock.now());
    if (step) this.bus.transform("reading", step);
  }

  /** The health report on `<base>/bridge/health` (retained) and, with `web:`, at GET /health. */
  private async startHealth(): Promise<void> {
    const mqtt = this.mqtt;
    const archive = this.archive;
    const influx = this.influx;
    const health = new HealthMonitor(
      this.config,
      this.bus,
      {
        mqttConnected: () => mqtt?.connected === true,
        ...(archive ? { archive: () => archive.stats } : {}),
        ...(influx
          ? { influx: () => ({ buffered: influx.writer.buffered, failures: influx.writer.stats.failures }) }
          : {}),
      },
      this.clock,
      createLogger("health"),
    );
    this.health = health;
    const topic = `${this.config.mqtt.base_topic}/bridge/health`;
    health.onReport((r) => mqtt?.publishState(topic, JSON.stringify(r)));
    health.start();
    const web = this.config.web;
    if (!web) return;
    const server = new WebServer(web, createLogger("web"));
    // Open to Docker's HEALTHCHECK and the watchdog, whatever web.auth and web.ingress say.
    server.get(
      "/health",
      (_req, res) => {
        const r = health.report();
        sendJson(res, r.status === "ok" ? 200 : 503, r);
      },
      { open: true },
    );
    const page = new Page({
      config: this.config,
      bus: this.bus,
      clock: this.clock,
      log: createLogger("web"),
      health,
      ...(mqtt ? { mqtt } : {}),
      ...(archive ? { archive } : {}),
      ...(this.statistics ? { statistics: this.statistics } : {}),
      ...(influx ? { influx } : {}),
      ...(this.loads ? { loads: this.loads } : {}),
    });
    page.mount(server);
    page.start();
    this.page = page;
    this.web = server;
    await server.start();
  }

  /** HA long-term statistics of the interval meters' hourly energy, from the archive. */
  private startStatistics(): void {
    const ha = this.config.homeassistant;
    // SmartHub meters also get the co-op's cost, in the configured currency.
    const meters = this.config.meters.flatMap((m) =>
      m.type === "smt"
        ? [{ id: m.id, name: m.name }]
        : m.type === "smarthub"
          ? [{ id: m.id, name: m.name, currency: m.currency }]
          : [],
    );
    if (!ha.statistics || meters.length === 0) return;
    if (!this.archive || !ha.url || !ha.token) {
      this.log.error(
        `homeassistant.statistics is on but ${!this.archive ? "the archive is disabled" : "homeassistant.url and homeassistant.token are not both set"}: no statistics are sent`,
      );
      return;
    }
    const statistics = new StatisticsOutput(
      { url: ha.url, token: ha.token },
      withTariffCost(
        archiveStatistics(this.archive),
        this.archive,
        // Where the utility gives cost (SmartHub), that is the cost; the tariff prices only what comes without.
        calendarMeters(this.config).filter((m) => this.meterType(m.id) === "smt"),
        () => this.clock.now(),
      ),
      this.withTariffCurrency(meters),
      { clock: this.clock },
    );
    this.statistics = statistics;
    this.bus.subscribe("statistics", "intervals", (i) => statistics.onIntervals(i));
    statistics.start();
  }

  /** Interval meters whose utility gives no cost get a cost statistic from their tariff (src/tariffs/statistics.ts). */
  private withTariffCurrency<M extends { id: string; currency?: string }>(meters: M[]): M[] {
    return meters.map((m) => ({ ...m, currency: m.currency ?? this.tariffs?.tariffs.get(m.id)?.currency }));
  }

  private startInflux(): void {
    const cfg = this.config.influx;
    if (!cfg) return;
    const influx = new InfluxOutput(cfg, { clock: this.clock });
    influx.start();
    this.influx = influx;
    this.bus.subscribe("influx", "reading", (r) => influx.onReading(r));
    this.bus.subscribe("influx", "intervals", (i) => influx.onIntervals(i));
  }

  private meterType(id: string): string {
    return this.config.meters.find((m) => m.id === id)?.type ?? "unknown";
  }

  /**
   * The broker may come up after us (an add-on started before Mosquitto): the output keeps trying in the
   * background while the meters are read and archived. A broker that refuses our credentials is a configuration
   * error and stops the bridge (see `failed`).
   */
  private connectMqtt(): Promise<void> {
    const cfg = this.config;
    const mqtt = new MqttOutput(cfg.mqtt, cfg.meters, {
      clock: this.clock,
      version: VERSION,
      persistent: true,
      connectTimeoutMs: this.opts.mqttConnectTimeoutMs,
    });
    this.mqtt = mqtt;
    this.bus.subscribe("mqtt", "reading", (r) => mqtt.onReading(r));
    this.bus.subscribe("mqtt", "status", (s) => mqtt.onStatus(s));
    this.bus.subscribe("mqtt", "meterInfo", (i) => mqtt.onMeterInfo(i));
    this.loads?.attach(mqtt);
    this.tariffs?.followTopics(mqtt);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.opts.mqttConnectTimeoutMs ?? 10_000);
      timer.unref();
    });
    const started = mqtt.start().then(
      () => {
        this.loads?.mqttConnected();
        if (!this.stopping)
          this.log.info(`MQTT: connected to ${describeUrl(cfg.mqtt.url)}, base topic ${cfg.mqtt.base_topic}`);
      },
      (err: Error) => {
        if (!this.stopping) this.failWith?.(new MqttRefused(`${err.message} (check mqtt.username and mqtt.password)`));
      },
    );
    // Resolves once connected, refused or past the connect timeout, whichever comes first.
    return Promise.race([started, waited]).finally(() => clearTimeout(timer));
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.log.info("stopping");
    this.health?.stop();
    this.page?.stop();
    await this.web?.stop();
    await Promise.allSettled(this.sources.map((s) => s.stop()));
    await this.bus.idle();
    // The quarter hours priced since the last round are kept before the archive closes.
    await this.tariffs?.settle(this.archive);
    await this.tariffs?.stop();
    await this.influx?.stop();
    this.bus.unsubscribeAll("influx");
    await this.statistics?.stop();
    this.bus.unsubscribeAll("statistics");
    this.loads?.stop(this.bus);
    await Promise.allSettled([this.mqtt?.stop(), this.archive?.stop()]);
    this.lock?.release();
    this.bus.unsubscribeAll("mqtt");
    this.bus.unsubscribeAll("archive");
    this.log.info(
      `stopped${this.archive ? `; archive has ${this.archive.stats.written} new reading(s) this run` : ""}`,
    );
  }
}

/** The broker refused the connection (credentials, ACL): the configuration has to change. */
export class MqttRefused extends Error {
  override readonly name = "MqttRefused";
}
