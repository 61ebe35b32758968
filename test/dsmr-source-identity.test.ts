/**
 * The P1 source on a pseudo-terminal, against what a real line brings: frames shaped like telegrams from noise or
 * a hostile writer (the meter's identity must not flap, discovery must not be re-sent), a meter without CRC that
 * sends no '!' (ended by a quiet line), an encrypted meter without its key (one clear error), and baud detection
 * that a CRC-less frame alone never ends.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { DsmrMeterSchema } from "../src/config/schema.js";
import type { MeterInfo, Reading, SourceStatus } from "../src/model/types.js";
import { buildTelegram, dsmr5Telegram, encryptTelegram, simulate } from "../src/sources/dsmr/build.js";
import { DsmrSource } from "../src/sources/dsmr/index.js";
import type { SerialTransport } from "../src/transports/index.js";
import { recordingLog } from "./helpers/log.js";
import { until } from "./helpers/mosquitto.js";
import { type PtyPair, startPtyPair } from "./helpers/pty.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("DsmrSource: identity, telegrams without '!', encrypted meters", () => {
  let pty: PtyPair | undefined;
  let source: DsmrSource | undefined;
  afterEach(async () => {
    await source?.stop();
    await pty?.stop();
    source = undefined;
  });

  async function start(meter: Record<string, unknown>, opts: { quietGapMs?: number; autoBaudWindowMs?: number } = {}) {
    pty = await startPtyPair();
    const bus = new Bus();
    const readings: Reading[] = [];
    const infos: MeterInfo[] = [];
    const statuses: SourceStatus[] = [];
    bus.subscribe("t", "reading", (r) => void readings.push(r));
    bus.subscribe("t", "meterInfo", (i) => void infos.push(i));
    bus.subscribe("t", "status", (s) => void statuses.push(s));
    const log = recordingLog();
    const cfg = DsmrMeterSchema.parse({ id: "p1", type: "dsmr", port: pty.device, baud: 115200, ...meter });
    source = new DsmrSource(cfg, bus, { log: log.log, ...opts });
    source.start();
    const transport = (source as unknown as { transport: SerialTransport }).transport;
    await until(() => transport.isOpen, 5000, "open");
    return { readings, infos, statuses, log, transport };
  }

  it("200 crafted frames with changing headers neither rename the meter nor give readings", async () => {
    const { readings, infos, log } = await start({});
    const states = simulate(Date.UTC(2026, 10, 21, 9), 2);
    await pty!.write(dsmr5Telegram(states[0]!));
    await until(() => readings.length === 1, 5000, "the meter's first reading");
    let crafted = Buffer.alloc(0);
    for (let i = 0; i < 200; i++) {
      const t = buildTelegram({ header: `EVL5Fake-${i}`, lines: ["1-0:1.8.1(999999.999*kWh)"], crc: false });
      crafted = Buffer.concat([crafted, t]);
    }
    await pty!.write(crafted);
    await pty!.write(dsmr5Telegram(states[1]!));
    await until(() => readings.length === 2, 5000, "the meter's second reading");
    expect(readings.map((r) => r.values.energy_import_tariff1_kwh)).toEqual([states[0]!.importT1, states[1]!.importT1]);
    expect(infos).toHaveLength(1);
    expect(log.at("info").filter((l) => l.startsWith("meter found") || l.startsWith("meter changed"))).toHaveLength(1);
    expect(source!.stats.framesRejected).toBe(200);
  }, 20_000);

  it("takes a meter without CRC only once its header repeats, and ends its '!'-less telegrams on a quiet line", async () => {
    const { readings, infos } = await start({ baud: 9600 }, { quietGapMs: 300 });
    const t = (kwh: string) =>
      Buffer.from(
        `/ISk5\\2MT382-1000\r\n\r\n0-0:96.1.1(4B384547303034303436333935353037)\r\n1-0:1.8.1(${kwh}*kWh)\r\n`,
        "latin1",
      );
    for (const kwh of ["00001.001", "00001.002", "00001.003", "00001.004"]) {
      await pty!.write(t(kwh));
      await sleep(700);
    }
    await until(() => readings.length === 2, 5000, "readings from the third telegram on");
    expect(readings.map((r) => r.values.energy_import_tariff1_kwh)).toEqual([1.003, 1.004]);
    expect(infos).toEqual([expect.objectContaining({ manufacturer: "Iskra", model: "MT382-1000" })]);
  }, 20_000);

  it("an encrypted meter without a key: one error naming the option and who gives the key, every frame counted", async () => {
    const { log, statuses, readings } = await start({});
    const key = Buffer.alloc(16, 7);
    const title = Buffer.from("SAG\x00\x00\x00\x00\x01", "latin1");
    const states = simulate(Date.UTC(2026, 10, 21, 9), 5);
    for (const [i, s] of states.entries())
      await pty!.write(encryptTelegram(dsmr5Telegram(s), { key, systemTitle: title, counter: i + 1 }));
    await until(() => statuses.at(-1)?.framesRejected === 5, 5000, "five rejected frames");
    const errors = log.at("error");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/encrypted telegrams and no key is set: set the meter's `key`.*grid operator/);
    expect(readings).toEqual([]);
  }, 20_000);

  it("an encrypted meter with its key: readings, and the identity from the first authenticated frame", async () => {
    const key = Buffer.alloc(16, 7);
    const aad = Buffer.alloc(16, 9);
    const { readings, infos, log } = await start({ key: key.toString("hex"), aad: aad.toString("hex") });
    const title = Buffer.from("SAG\x00\x00\x00\x00\x01", "latin1");
    const states = simulate(Date.UTC(2026, 10, 21, 9), 3);
    for (const [i, s] of states.entries())
      await pty!.write(encryptTelegram(dsmr5Telegram(s), { key, aad, systemTitle: title, counter: 1000 + i }));
    await until(() => readings.length === 3, 5000, "three readings");
    expect(infos).toHaveLength(1);
    expect(log.at("info").find((l) => l.startsWith("meter found"))).toMatch(/encrypted, key accepted/);
    // The key never reaches the log.
    expect(log.lines.map((l) => l.text).join("\n")).not.toContain(key.toString("hex"));
  }, 20_000);

  it("baud auto: frames without CRC whose header keeps changing never end the search", async () => {
    const { transport } = await start({ baud: "auto" }, { autoBaudWindowMs: 400 });
    const writer = setInterval(() => {
      const n = Math.floor(Math.random() * 1e9);
      void pty!
        .write(buildTelegram({ header: `ABC5x${n}`, lines: ["1-0:1.8.1(000001.000*kWh)"], crc: false }))
        .catch(() => {});
    }, 50);
    try {
      await until(() => transport.settings.baudRate === 9600, 5000, "switch to 9600 despite CRC-less frames");
    } finally {
      clearInterval(writer);
    }
  }, 20_000);
});
