import type { SerialSettings, Transport } from "../../transports/index.js";

/** RAVEn (RFA-Z106) and EMU-2 are USB CDC devices; the line settings are nominal, 115200 8N1 as documented. */
export const RAVEN_SERIAL: SerialSettings = Object.freeze({
  baudRate: 115200,
  dataBits: 8,
  parity: "none",
  stopBits: 1,
});

/** A transport the source can send commands through; a file replay has no `write` and is only listened to. */
export interface CommandTransport extends Transport {
  write?(bytes: Buffer): Promise<void>;
}
