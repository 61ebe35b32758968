-- Hourly gas kept as readings arrive, like energy_hours (008): gas_hourly and gas_daily keep their columns and
-- meaning (002) and read this table instead of every reading.
--   meter_id, hour   as in gas_hourly: the UTC hour of the gas meter's own reading time (gas_at)
--   at               the newest gas reading time in the hour (normalised to the archive's time format)
--   r_gas            gas_m3 at that time
--   gas_m3           as in gas_hourly: r_gas minus the previous hour's; NULL in a meter's first hour and when the
--                    register went down
--   pending          1 until gas_m3 is worked out (by src/outputs/archive/hours.ts, when the archive is opened)
CREATE TABLE gas_hours (
  meter_id TEXT NOT NULL,
  hour TEXT NOT NULL,
  at TEXT NOT NULL,
  r_gas REAL NOT NULL,
  gas_m3 REAL,
  pending INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (meter_id, hour)
) WITHOUT ROWID;

CREATE INDEX gas_hours_pending ON gas_hours (meter_id, hour) WHERE pending = 1;

WITH stamped AS (
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
)
-- with a single max() SQLite takes the bare gas_m3 from the row holding it: the hour's last gas reading
INSERT INTO gas_hours (meter_id, hour, at, r_gas)
SELECT meter_id, hour, max(at), gas_m3 FROM bucketed GROUP BY meter_id, hour;

DROP VIEW gas_daily;
DROP VIEW gas_hourly;

CREATE VIEW gas_hourly AS
SELECT meter_id, hour, gas_m3 FROM gas_hours;

CREATE VIEW gas_daily AS
SELECT meter_id, date(hour, 'localtime') AS day, round(sum(gas_m3), 6) AS gas_m3
FROM gas_hours
GROUP BY meter_id, day;
