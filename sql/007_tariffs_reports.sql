-- Tariffs and reports (src/tariffs/, src/reports/): the live meters' cost totals, the calendar of prices the
-- reports use, and the views `meter2mqtt report` prints, for users who query the archive themselves.

-- Cost totals of live meters, in the tariff's currency (src/tariffs/live.ts): energy priced as it was read, plus the
-- daily charge accrued over the day, and what export earned. They carry on across restarts from the newest row here.
ALTER TABLE readings ADD COLUMN cost_import_total REAL;
ALTER TABLE readings ADD COLUMN cost_export_total REAL;

-- Each meter's calendar, quarter hour by quarter hour: the local day each quarter belongs to and the prices then.
-- SQLite knows no time zones, so the local days and time-of-use periods are worked out by the bridge and written
-- here: at each start from the meter's first data to the end of the next month. Quarters from the start on follow
-- the configuration as it is; quarters already past are not rewritten, so they keep the prices that were in force
-- then (`meter2mqtt report --reprice` rewrites them with the current configuration).
--   start         the quarter hour, UTC, as the archive writes times (2025-03-30T01:00:00.000Z)
--   day           its local date, YYYY-MM-DD (tariff timezone, else the meter's, else the system's)
--   tariff        the tariff's name; NULL (and prices NULL) for a meter without one
--   currency      ISO 4217 code of the prices
--   import_price  per kWh taken from the grid
--   export_price  per kWh delivered to the grid (0 when the tariff does not pay for export)
--   daily_charge  the tariff's fixed charge for the whole of `day`
CREATE TABLE tariff_slots (
  meter_id TEXT NOT NULL,
  start TEXT NOT NULL,
  day TEXT NOT NULL,
  tariff TEXT,
  currency TEXT,
  import_price REAL,
  export_price REAL,
  daily_charge REAL,
  written_at TEXT NOT NULL,
  PRIMARY KEY (meter_id, start)
) WITHOUT ROWID;

CREATE INDEX tariff_slots_day ON tariff_slots (meter_id, day);

-- Energy and cost per meter and UTC hour, from the readings of live meters (energy_hourly) and the current intervals
-- of interval meters (intervals_current), with the day from the calendar; hours missing from it are left out.
--   hour           start of the UTC hour, YYYY-MM-DDTHH:00:00Z
--   day            local date of the hour's start
--   import_kwh     energy taken from the grid (NULL for a live meter's first hour and an hour its register went down)
--   export_kwh     energy delivered
--   hours          hours that import_kwh was measured over. For an interval meter: the length of the import intervals
--                  with a reading. For a live meter: 1, but after a gap in the readings the gap's energy comes in the
--                  first hour with readings (as in energy_hourly) and so do the gap's hours, as far back as the
--                  start of that hour's day. 0 when import_kwh is NULL.
--   import_cost    import priced per quarter hour (an interval at its quarters' prices; a live hour at the average of
--                  its four); the utility's own cost where an interval has one (SmartHub); NULL without either
--   export_credit  export priced the same way
CREATE VIEW report_hourly AS
WITH live AS (
  SELECT
    meter_id,
    hour,
    import_kwh,
    export_kwh,
    (julianday(hour) - julianday(lag(hour) OVER (PARTITION BY meter_id ORDER BY hour))) * 24 AS span,
    substr(hour, 1, 13) || ':00:00.000Z' AS t0,
    strftime('%Y-%m-%dT%H:00:00.000Z', hour, '+1 hour') AS t1
  FROM energy_hourly
),
live_hours AS (
  SELECT
    l.meter_id,
    l.hour,
    s.day,
    l.import_kwh,
    l.export_kwh,
    CASE WHEN l.import_kwh IS NULL THEN 0 ELSE round(min(l.span,
      (julianday(l.t0) - julianday((SELECT min(x.start) FROM tariff_slots x WHERE x.meter_id = l.meter_id AND x.day = s.day))) * 24 + 1), 6)
    END AS hours,
    l.import_kwh * (SELECT avg(p.import_price) FROM tariff_slots p
                     WHERE p.meter_id = l.meter_id AND p.start >= l.t0 AND p.start < l.t1) AS import_cost,
    l.export_kwh * (SELECT avg(p.export_price) FROM tariff_slots p
                     WHERE p.meter_id = l.meter_id AND p.start >= l.t0 AND p.start < l.t1) AS export_credit
  FROM live l
  JOIN tariff_slots s ON s.meter_id = l.meter_id AND s.start = l.t0
),
priced_intervals AS (
  SELECT
    i.meter_id,
    substr(i.start, 1, 13) || ':00:00Z' AS hour,
    i.day,
    i.direction,
    i.energy_kwh,
    i.cost,
    (julianday(i.end) - julianday(i.start)) * 24 AS length,
    (SELECT avg(CASE i.direction WHEN 'import' THEN p.import_price ELSE p.export_price END) FROM tariff_slots p
      WHERE p.meter_id = i.meter_id AND p.start >= i.start AND p.start < i.end) AS price
  FROM intervals_current i
  WHERE EXISTS (SELECT 1 FROM tariff_slots s WHERE s.meter_id = i.meter_id AND s.start = i.start)
)
SELECT meter_id, hour, day, import_kwh, export_kwh, hours, import_cost, export_credit FROM live_hours
UNION ALL
SELECT
  meter_id,
  hour,
  min(day) AS day,
  sum(energy_kwh) FILTER (WHERE direction = 'import') AS import_kwh,
  sum(energy_kwh) FILTER (WHERE direction = 'export') AS export_kwh,
  round(total(length) FILTER (WHERE direction = 'import' AND energy_kwh IS NOT NULL), 6) AS hours,
  sum(coalesce(cost, energy_kwh * price)) FILTER (WHERE direction = 'import') AS import_cost,
  sum(coalesce(cost, energy_kwh * price)) FILTER (WHERE direction = 'export') AS export_credit
FROM priced_intervals
GROUP BY meter_id, hour;

-- Per meter and local day: what `meter2mqtt report daily` prints. kWh and money rounded to 6 decimals.
--   import_kwh, export_kwh   the day's energy (sums of report_hourly)
--   hours                    hours the import was measured over (see report_hourly)
--   day_hours                the day's length: 24, or 23 and 25 on the days clocks change
--   complete                 1 when hours covers the whole day
--   avg_kwh_per_hour         import_kwh / hours
--   estimate_kwh             the day's import at that average over day_hours (equal to import_kwh when complete)
--   import_cost              the import's price; export_credit: what the export earned
--   daily_charge             the tariff's fixed charge for the day
--   cost                     import_cost + daily_charge - export_credit; NULL without a tariff
--   currency                 ISO 4217 code of the money columns
CREATE VIEW report_daily AS
WITH days AS (
  SELECT
    h.meter_id,
    h.day,
    sum(h.import_kwh) AS import_kwh,
    sum(h.export_kwh) AS export_kwh,
    total(h.hours) AS hours,
    sum(h.import_cost) AS import_cost,
    sum(h.export_credit) AS export_credit,
    (SELECT count(*) / 4.0 FROM tariff_slots s WHERE s.meter_id = h.meter_id AND s.day = h.day) AS day_hours,
    (SELECT max(s.daily_charge) FROM tariff_slots s WHERE s.meter_id = h.meter_id AND s.day = h.day) AS daily_charge,
    (SELECT max(s.currency) FROM tariff_slots s WHERE s.meter_id = h.meter_id AND s.day = h.day) AS currency
  FROM report_hourly h
  GROUP BY h.meter_id, h.day
)
SELECT
  meter_id,
  day,
  round(import_kwh, 6) AS import_kwh,
  round(export_kwh, 6) AS export_kwh,
  round(hours, 4) AS hours,
  day_hours,
  CASE WHEN round(hours, 4) >= day_hours THEN 1 ELSE 0 END AS complete,
  round(import_kwh / nullif(hours, 0), 6) AS avg_kwh_per_hour,
  round(CASE WHEN round(hours, 4) >= day_hours THEN import_kwh ELSE import_kwh / nullif(hours, 0) * day_hours END, 6)
    AS estimate_kwh,
  round(import_cost, 6) AS import_cost,
  round(export_credit, 6) AS export_credit,
  daily_charge,
  CASE WHEN currency IS NOT NULL THEN round(coalesce(import_cost, 0) + coalesce(daily_charge, 0) - coalesce(export_credit, 0), 6) END
    AS cost,
  currency
FROM days;

-- Per meter and month (YYYY-MM): the sums of report_daily, for `meter2mqtt report monthly`.
--   days          days with data; month_hours: the month's length in hours (from the calendar)
--   estimate_kwh  the month's import at the average per hour over month_hours
--   daily_charge  the charges of the days with data
CREATE VIEW report_monthly AS
WITH months AS (
  SELECT
    meter_id,
    substr(day, 1, 7) AS month,
    count(*) AS days,
    sum(import_kwh) AS import_kwh,
    sum(export_kwh) AS export_kwh,
    total(hours) AS hours,
    sum(import_cost) AS import_cost,
    sum(export_credit) AS export_credit,
    sum(daily_charge) AS daily_charge,
    sum(cost) AS cost,
    max(currency) AS currency
  FROM report_daily
  GROUP BY meter_id, month
)
SELECT
  meter_id,
  month,
  days,
  round(import_kwh, 6) AS import_kwh,
  round(export_kwh, 6) AS export_kwh,
  round(hours, 4) AS hours,
  (SELECT count(*) / 4.0 FROM tariff_slots s
    WHERE s.meter_id = m.meter_id AND s.day >= m.month || '-01' AND s.day <= m.month || '-31') AS month_hours,
  round(import_kwh / nullif(hours, 0), 6) AS avg_kwh_per_hour,
  round(import_kwh / nullif(hours, 0) * (SELECT count(*) / 4.0 FROM tariff_slots s
    WHERE s.meter_id = m.meter_id AND s.day >= m.month || '-01' AND s.day <= m.month || '-31'), 6) AS estimate_kwh,
  round(import_cost, 6) AS import_cost,
  round(export_credit, 6) AS export_credit,
  round(daily_charge, 6) AS daily_charge,
  round(cost, 6) AS cost,
  currency
FROM months m;
