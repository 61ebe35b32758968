-- The archive's tables. Times are ISO 8601 UTC with milliseconds and `Z`
-- (2024-03-05T10:00:00.000Z): they sort as text and SQLite's date functions read them.
-- The readings columns mirror ARCHIVE_COLUMNS in src/model/quantities.ts (a test fails when the two
-- drift): a quantity added there needs an `ALTER TABLE readings ADD COLUMN` in a new migration.

-- One row per meter the bridge has archived or identified.
CREATE TABLE meters (
  id TEXT PRIMARY KEY,      -- the meter id from the configuration
  name TEXT,                -- display name from the configuration
  type TEXT,                -- meter family: dsmr, raven, smt, smarthub
  manufacturer TEXT,        -- as the meter identifies itself, when it does
  model TEXT,
  serial_number TEXT,
  sw_version TEXT,
  first_seen TEXT,          -- time of the oldest archived reading (the meter's clock), NULL until one is stored
  last_seen TEXT            -- time of the newest archived reading
);

-- Live snapshots, at most one per meter and archive interval. A NULL is a value the meter did not send.
-- WITHOUT ROWID: rows are looked up and scanned by (meter_id, time) only, so the primary key is the table.
CREATE TABLE readings (
  meter_id TEXT NOT NULL,
  time TEXT NOT NULL,
  -- cumulative energy registers, kWh
  energy_import_kwh REAL,
  energy_import_tariff1_kwh REAL,
  energy_import_tariff2_kwh REAL,
  energy_import_tariff3_kwh REAL,
  energy_import_tariff4_kwh REAL,
  energy_export_kwh REAL,
  energy_export_tariff1_kwh REAL,
  energy_export_tariff2_kwh REAL,
  energy_export_tariff3_kwh REAL,
  energy_export_tariff4_kwh REAL,
  energy_absolute_kwh REAL,
  -- power W (net = import - export), per phase below
  power_import_w REAL,
  power_export_w REAL,
  power_net_w REAL,
  power_import_l1_w REAL,
  power_export_l1_w REAL,
  voltage_l1_v REAL,
  current_l1_a REAL,
  power_factor_l1 REAL,
  voltage_sags_l1 REAL,
  voltage_swells_l1 REAL,
  reactive_power_import_l1_var REAL,
  reactive_power_export_l1_var REAL,
  power_import_l2_w REAL,
  power_export_l2_w REAL,
  voltage_l2_v REAL,
  current_l2_a REAL,
  power_factor_l2 REAL,
  voltage_sags_l2 REAL,
  voltage_swells_l2 REAL,
  reactive_power_import_l2_var REAL,
  reactive_power_export_l2_var REAL,
  power_import_l3_w REAL,
  power_export_l3_w REAL,
  voltage_l3_v REAL,
  current_l3_a REAL,
  power_factor_l3 REAL,
  voltage_sags_l3 REAL,
  voltage_swells_l3 REAL,
  reactive_power_import_l3_var REAL,
  reactive_power_export_l3_var REAL,
  power_factor REAL,
  frequency_hz REAL,
  reactive_power_import_var REAL,
  reactive_energy_import_kvarh REAL,
  reactive_power_export_var REAL,
  reactive_energy_export_kvarh REAL,
  reactive_power_q1_var REAL,
  reactive_energy_q1_kvarh REAL,
  reactive_power_q2_var REAL,
  reactive_energy_q2_kvarh REAL,
  reactive_power_q3_var REAL,
  reactive_energy_q3_kvarh REAL,
  reactive_power_q4_var REAL,
  reactive_energy_q4_kvarh REAL,
  -- Belgian capacity tariff: running quarter-hour average and this month's peak (W, and when, UTC)
  demand_quarter_hour_w REAL,
  demand_month_peak_w REAL,
  demand_month_peak_at TEXT,
  tariff REAL,
  power_failures REAL,
  long_power_failures REAL,
  -- M-Bus devices: register value and the device's own reading time (UTC), which lags `time`
  gas_m3 REAL,
  gas_at TEXT,
  water_m3 REAL,
  water_at TEXT,
  heat_gj REAL,
  heat_at TEXT,
  gas_2_m3 REAL,
  gas_2_at TEXT,
  water_2_m3 REAL,
  water_2_at TEXT,
  heat_2_gj REAL,
  heat_2_at TEXT,
  price_per_kwh REAL,
  PRIMARY KEY (meter_id, time)
) WITHOUT ROWID;
