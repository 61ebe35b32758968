import { describe, expect, it } from "vitest";
import { QUANTITIES } from "../src/model/quantities.js";
import {
  type DiscoveryContext,
  describeUrl,
  deviceOf,
  discoveryTopic,
  nodeId,
  originOf,
  SUPPORT_URL,
  sensorDiscovery,
} from "../src/outputs/mqtt/index.js";

const ctx: DiscoveryContext = {
  discoveryPrefix: "homeassistant",
  baseTopic: "meter2mqtt",
  meter: { id: "home", name: "Home", type: "dsmr" },
  origin: originOf("0.1.0"),
};
const spec = (name: string) => {
  const s = QUANTITIES.get(name);
  if (!s) throw new Error(`${name} missing from the catalogue`);
  return s;
};

describe("sensorDiscovery", () => {
  it("builds a disabled reactive-power entity with enabled_by_default false", () => {
    const { topic, payload } = sensorDiscovery(ctx, spec("reactive_power_import_var"));
    expect(topic).toBe("homeassistant/sensor/meter2mqtt_home/reactive_power_import_var/config");
    expect(payload.enabled_by_default).toBe(false);
    expect(payload.unit_of_measurement).toBe("var");
    expect(payload.default_entity_id).toBe("sensor.home_reactive_power_import_var");
    expect(payload.object_id).toBe("home_reactive_power_import_var");
  });

  it("leaves out keys the catalogue does not set instead of sending null", () => {
    const { payload } = sensorDiscovery(ctx, spec("tariff"));
    expect(Object.keys(payload)).toEqual([
      "name",
      "unique_id",
      "object_id",
      "default_entity_id",
      "state_topic",
      "value_template",
      "icon",
      "availability",
      "availability_mode",
      "device",
      "origin",
    ]);
    expect(JSON.stringify(payload)).not.toContain("null");
  });

  it("gives the price a <currency>/kWh unit only once the currency is known", () => {
    expect(sensorDiscovery(ctx, spec("price_per_kwh")).payload.unit_of_measurement).toBeUndefined();
    expect(sensorDiscovery({ ...ctx, currency: "USD" }, spec("price_per_kwh")).payload.unit_of_measurement).toBe(
      "USD/kWh",
    );
    // The currency of the meter must not leak into other entities.
    expect(sensorDiscovery({ ...ctx, currency: "USD" }, spec("energy_import_kwh")).payload.unit_of_measurement).toBe(
      "kWh",
    );
  });

  it("every catalogue entry gives a payload HA's Energy dashboard and recorder accept", () => {
    for (const s of QUANTITIES.values()) {
      const { payload } = sensorDiscovery(ctx, s);
      expect(payload.unique_id).toMatch(/^meter2mqtt_home_[a-z0-9_]+$/);
      if (payload.device_class === "energy" || payload.device_class === "gas" || payload.device_class === "water")
        expect(payload.state_class, s.name).toMatch(/^total(_increasing)?$/);
      // HA rejects a measurement/total state class on a sensor without a numeric value.
      if (s.type === "string") expect(payload.state_class, s.name).toBeUndefined();
    }
  });

  it("puts what the meter told about itself into the device", () => {
    const device = deviceOf({
      ...ctx,
      info: { meterId: "home", manufacturer: "Landis+Gyr", model: "E350", serialNumber: "4530303331303033" },
    });
    expect(device).toStrictEqual({
      identifiers: ["meter2mqtt_home"],
      name: "Home",
      manufacturer: "Landis+Gyr",
      model: "E350",
      serial_number: "4530303331303033",
    });
    expect(deviceOf({ ...ctx, meter: { id: "emu", type: "raven" } }).name).toBe("emu");
  });

  it("keeps discovery topics valid when the base topic holds characters HA refuses in a node id", () => {
    expect(nodeId("home/meters", "home")).toBe("home_meters_home");
    expect(discoveryTopic("homeassistant", "home/meters", "home", "gas_m3")).toBe(
      "homeassistant/sensor/home_meters_home/gas_m3/config",
    );
  });

  it("names the origin with version and support URL", () => {
    expect(originOf("1.2.3")).toStrictEqual({ name: "meter2mqtt", sw_version: "1.2.3", support_url: SUPPORT_URL });
    expect(originOf(undefined)).toStrictEqual({ name: "meter2mqtt", support_url: SUPPORT_URL });
  });
});

describe("describeUrl", () => {
  it("shows scheme, host and port without credentials", () => {
    expect(describeUrl("mqtt://bob:hunter2@broker.lan:1884")).toBe("mqtt://broker.lan:1884");
    expect(describeUrl("mqtts://broker.lan")).toBe("mqtts://broker.lan:8883");
    expect(describeUrl("mqtt://broker.lan")).toBe("mqtt://broker.lan:1883");
    expect(describeUrl("wss://u:p@example.com/mqtt")).toBe("wss://example.com:443/mqtt");
  });
});
