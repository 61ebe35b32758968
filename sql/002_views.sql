-- Views users query. Energy and gas come from the meters' cumulative registers, not from power readings.
--
-- Hours are UTC, written `YYYY-MM-DDTHH:00:00Z`. Hour H holds the readings after H:00:00.000 up to and
-- including H+1:00:00.000: a register read exactly on the hour is the meter's count at the end of the hour
-- before, so a meter read on the hour (every DSMR 5 telegram at :00:00, the hourly DSMR 4 gas value)
-- closes each hour exactly.
--
-- The energy used in an hour is the register's last value in that hour minus its last value in the
-- previous hour that has readings. After a gap (bridge down, meter unplugged) the whole gap's energy is
-- therefore booked in the first hour with readings again, so daily totals stay right. An hour whose
-- register went down (meter replaced or reset) is NULL rather than negative or the new register's
-- whole value; so is the first hour of each meter, which has nothing to subtract from.
-- Values are rounded to 6 decimals (registers count whole Wh or dm³, so nothing real is lost).

-- Energy per meter and UTC hour, kWh.
--   meter_id                  the meter's configured id
--   hour                      start of the UTC hour (see above for which readings it holds)
--   import_kwh                energy taken from the grid, all tariffs (register energy_import_kwh)
--   import_tariff1..4_kwh     the same per tariff register (NULL when the meter has no such register)
--   export_kwh                energy delivered to the grid, all tariffs (register energy_export_kwh)
--   export_tariff1..4_kwh     the same per tariff register
--   net_kwh                   import_kwh - export_kwh; NULL when either is
CREATE VIEW energy_hourly AS
WITH bucketed AS (
  SELECT
    meter_id,
    time,
    CASE WHEN substr(time, 15) = '00:00.000Z'
      THEN strftime('%Y-%m-%dT%H:00:00Z', time, '-1 hour')
      ELSE substr(time, 1, 13) || ':00:00Z'
    END AS hour,
    energy_import_kwh, energy_import_tariff1_kwh, energy_import_tariff2_kwh, energy_import_tariff3_kwh,
    energy_import_tariff4_kwh, energy_export_kwh, energy_export_tariff1_kwh, energy_export_tariff2_kwh,
    energy_export_tariff3_kwh, energy_export_tariff4_kwh
  FROM readings
),
-- When each register was last read in the hour, per register: a reading may carry only some of them
-- (RAVEn sends power and summation in separate frames).
last_read AS (
  SELECT
    meter_id,
    hour,
    max(time) FILTER (WHERE energy_import_kwh IS NOT NULL) AS t_imp,
    max(time) FILTER (WHERE energy_import_tariff1_kwh IS NOT NULL) AS t_imp1,
    max(time) FILTER (WHERE energy_import_tariff2_kwh IS NOT NULL) AS t_imp2,
    max(time) FILTER (WHERE energy_import_tariff3_kwh IS NOT NULL) AS t_imp3,
    max(time) FILTER (WHERE energy_import_tariff4_kwh IS NOT NULL) AS t_imp4,
    max(time) FILTER (WHERE energy_export_kwh IS NOT NULL) AS t_exp,
    max(time) FILTER (WHERE energy_export_tariff1_kwh IS NOT NULL) AS t_exp1,
    max(time) FILTER (WHERE energy_export_tariff2_kwh IS NOT NULL) AS t_exp2,
    max(time) FILTER (WHERE energy_export_tariff3_kwh IS NOT NULL) AS t_exp3,
    max(time) FILTER (WHERE energy_export_tariff4_kwh IS NOT NULL) AS t_exp4
  FROM bucketed
  GROUP BY meter_id, hour
),
-- The register values at those times (primary-key lookups); hours without any register are left out
-- so that they do not break the chain of previous hours.
registers AS (
  SELECT
    meter_id,
    hour,
    (SELECT energy_import_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp) AS imp,
    (SELECT energy_import_tariff1_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp1) AS imp1,
    (SELECT energy_import_tariff2_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp2) AS imp2,
    (SELECT energy_import_tariff3_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp3) AS imp3,
    (SELECT energy_import_tariff4_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp4) AS imp4,
    (SELECT energy_export_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp) AS exp,
    (SELECT energy_export_tariff1_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp1) AS exp1,
    (SELECT energy_export_tariff2_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp2) AS exp2,
    (SELECT energy_export_tariff3_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp3) AS exp3,
    (SELECT energy_export_tariff4_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp4) AS exp4
  FROM last_read l
  WHERE coalesce(t_imp, t_imp1, t_imp2, t_imp3, t_imp4, t_exp, t_exp1, t_exp2, t_exp3, t_exp4) IS NOT NULL
),
deltas AS (
  SELECT
    meter_id,
    hour,
    imp - lag(imp) OVER w AS imp,
    imp1 - lag(imp1) OVER w AS imp1,
    imp2 - lag(imp2) OVER w AS imp2,
    imp3 - lag(imp3) OVER w AS imp3,
    imp4 - lag(imp4) OVER w AS imp4,
    exp - lag(exp) OVER w AS exp,
    exp1 - lag(exp1) OVER w AS exp1,
    exp2 - lag(exp2) OVER w AS exp2,
    exp3 - lag(exp3) OVER w AS exp3,
    exp4 - lag(exp4) OVER w AS exp4
  FROM registers
  WINDOW w AS (PARTITION BY meter_id ORDER BY hour)
)
SELECT
  meter_id,
  hour,
  CASE WHEN imp >= 0 THEN round(imp, 6) END AS import_kwh,
  CASE WHEN imp1 >= 0 THEN round(imp1, 6) END AS import_tariff1_kwh,
  CASE WHEN imp2 >= 0 THEN round(imp2, 6) END AS import_tariff2_kwh,
  CASE WHEN imp3 >= 0 THEN round(imp3, 6) END AS import_tariff3_kwh,
  CASE WHEN imp4 >= 0 THEN round(imp4, 6) END AS import_tariff4_kwh,
  CASE WHEN exp >= 0 THEN round(exp, 6) END AS export_kwh,
  CASE WHEN exp1 >= 0 THEN round(exp1, 6) END AS export_tariff1_kwh,
  CASE WHEN exp2 >= 0 THEN round(exp2, 6) END AS export_tariff2_kwh,
  CASE WHEN exp3 >= 0 THEN round(exp3, 6) END AS export_tariff3_kwh,
  CASE WHEN exp4 >= 0 THEN round(exp4, 6) END AS export_tariff4_kwh,
  CASE WHEN imp >= 0 AND exp >= 0 THEN round(imp - exp, 6) END AS net_kwh
FROM deltas;

-- Energy per meter and local day, kWh: the sums of energy_hourly.
--   day         the date, YYYY-MM-DD, in the local time zone of the process running the query
--               (date(hour, 'localtime'): the add-on runs with Home Assistant's zone in TZ; a plain
--               sqlite3 shell uses its own). An hour that straddles local midnight (zones with a
--               half-hour offset) counts for the day it starts in.
--   other columns as in energy_hourly, summed over the day's hours; NULL hours (a reset, a meter's
--   first hour) are left out of the sum, and a column is NULL when all its hours are.
CREATE VIEW energy_daily AS
SELECT
  meter_id,
  date(hour, 'localtime') AS day,
  round(sum(import_kwh), 6) AS import_kwh,
  round(sum(import_tariff1_kwh), 6) AS import_tariff1_kwh,
  round(sum(import_tariff2_kwh), 6) AS import_tariff2_kwh,
  round(sum(import_tariff3_kwh), 6) AS import_tariff3_kwh,
  round(sum(import_tariff4_kwh), 6) AS import_tariff4_kwh,
  round(sum(export_kwh), 6) AS export_kwh,
  round(sum(export_tariff1_kwh), 6) AS export_tariff1_kwh,
  round(sum(export_tariff2_kwh), 6) AS export_tariff2_kwh,
  round(sum(export_tariff3_kwh), 6) AS export_tariff3_kwh,
  round(sum(export_tariff4_kwh), 6) AS export_tariff4_kwh,
  round(sum(net_kwh), 6) AS net_kwh
FROM energy_hourly
GROUP BY meter_id, day;

-- Gas per meter and UTC hour, m³, from gas_m3. Grouped by gas_at, the gas meter's own reading time
-- (it reaches the electricity meter over M-Bus minutes to an hour after it was taken), not by the
-- electricity reading's `time`; rows without gas_at are skipped. Same hour rules as energy_hourly.
--   hour     start of the UTC hour the gas reading times fall in
--   gas_m3   gas used in that hour
CREATE VIEW gas_hourly AS
WITH stamped AS (
  -- gas_at normalised to the archive's own time format, whatever offset or precision it came with
  SELECT meter_id, strftime('%Y-%m-%dT%H:%M:%fZ', gas_at) AS at, gas_m3
  FROM readings
  WHERE gas_at IS NOT NULL AND gas_m3 IS NOT NULL
),
bucketed AS (
  SELECT
    meter_id,
    at,
    gas_m3,
    CASE WHEN substr(at, 15) = '00:00.000Z'
      THEN strftime('%Y-%m-%dT%H:00:00Z', at, '-1 hour')
      ELSE substr(at, 1, 13) || ':00:00Z'
    END AS hour
  FROM stamped
  WHERE at IS NOT NULL
),
registers AS (
  -- with a single max() SQLite takes the bare gas_m3 from the row holding it: the hour's last gas reading
  SELECT meter_id, hour, max(at) AS at, gas_m3 FROM bucketed GROUP BY meter_id, hour
),
deltas AS (
  SELECT meter_id, hour, gas_m3 - lag(gas_m3) OVER (PARTITION BY meter_id ORDER BY hour) AS gas_m3
  FROM registers
)
SELECT meter_id, hour, CASE WHEN gas_m3 >= 0 THEN round(gas_m3, 6) END AS gas_m3
FROM deltas;

-- Gas per meter and local day, m³: the sums of gas_hourly, with `day` as in energy_daily
-- (local date of the process running the query; NULL hours left out).
CREATE VIEW gas_daily AS
SELECT meter_id, date(hour, 'localtime') AS day, round(sum(gas_m3), 6) AS gas_m3
FROM gas_hourly
GROUP BY meter_id, day;

-- The newest reading of each meter: all columns of `readings`.
CREATE VIEW readings_latest AS
WITH RECURSIVE ids (id) AS (
  -- the distinct meter ids by jumping along the primary key instead of scanning every reading
  SELECT min(meter_id) FROM readings
  UNION ALL
  SELECT (SELECT min(meter_id) FROM readings WHERE meter_id > ids.id) FROM ids WHERE ids.id IS NOT NULL
)
SELECT r.*
FROM ids
JOIN readings r ON r.meter_id = ids.id AND r.time = (SELECT max(time) FROM readings WHERE meter_id = ids.id);
