-- Hourly energy kept as readings arrive, so that a day's figures cost the same on a ten-year archive as on a new
-- one. energy_hourly, energy_daily and the report views read this table instead of all the readings; their names,
-- columns and meaning stay as in 002 and 007, with one change: a meter's first hour has the energy since its first
-- reading instead of NULL.
--
-- The archive's writer (src/outputs/archive/hours.ts) brings each hour it stores readings in up to date, and the
-- next hour with registers (whose energy is counted from it). A reading archived late (a replay, a restored backup) updates its
-- hour like a new one. Rows are kept when raw readings are deleted by archive.retention.
--   meter_id, hour        as in energy_hourly (hour: YYYY-MM-DDTHH:00:00Z, holding the readings after HH:00:00.000
--                         up to and including the next HH:00:00.000)
--   r_imp … r_exp4        each register's last value in the hour (NULL when no reading in the hour has it)
--   import_kwh … net_kwh  as in energy_hourly
--   hours                 what the energy was measured over, in hours: since the previous hour with registers (more
--                         than 1 after a gap), or in a meter's first hour from its first reading to its last
CREATE TABLE energy_hours (
  meter_id TEXT NOT NULL,
  hour TEXT NOT NULL,
  r_imp REAL, r_imp1 REAL, r_imp2 REAL, r_imp3 REAL, r_imp4 REAL,
  r_exp REAL, r_exp1 REAL, r_exp2 REAL, r_exp3 REAL, r_exp4 REAL,
  import_kwh REAL,
  import_tariff1_kwh REAL,
  import_tariff2_kwh REAL,
  import_tariff3_kwh REAL,
  import_tariff4_kwh REAL,
  export_kwh REAL,
  export_tariff1_kwh REAL,
  export_tariff2_kwh REAL,
  export_tariff3_kwh REAL,
  export_tariff4_kwh REAL,
  net_kwh REAL,
  hours REAL,
  PRIMARY KEY (meter_id, hour)
) WITHOUT ROWID;

-- The registers of every hour already in the archive (the same rules as the view in 002).
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
)
INSERT INTO energy_hours (meter_id, hour, r_imp, r_imp1, r_imp2, r_imp3, r_imp4, r_exp, r_exp1, r_exp2, r_exp3, r_exp4)
SELECT
  meter_id,
  hour,
  (SELECT energy_import_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp),
  (SELECT energy_import_tariff1_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp1),
  (SELECT energy_import_tariff2_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp2),
  (SELECT energy_import_tariff3_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp3),
  (SELECT energy_import_tariff4_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_imp4),
  (SELECT energy_export_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp),
  (SELECT energy_export_tariff1_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp1),
  (SELECT energy_export_tariff2_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp2),
  (SELECT energy_export_tariff3_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp3),
  (SELECT energy_export_tariff4_kwh FROM readings r WHERE r.meter_id = l.meter_id AND r.time = l.t_exp4)
FROM last_read l
WHERE coalesce(t_imp, t_imp1, t_imp2, t_imp3, t_imp4, t_exp, t_exp1, t_exp2, t_exp3, t_exp4) IS NOT NULL;

-- Their energy is worked out from these registers when the archive is next opened (src/outputs/archive/hours.ts,
-- the same code that keeps new hours): rows with hours NULL are the ones still to do.
CREATE INDEX energy_hours_pending ON energy_hours (meter_id, hour) WHERE hours IS NULL;

-- The views, now from energy_hours. Columns and meaning as in 002 (see there), except the first hour (above).
DROP VIEW report_monthly;
DROP VIEW report_daily;
DROP VIEW report_hourly;
DROP VIEW energy_daily;
DROP VIEW energy_hourly;

CREATE VIEW energy_hourly AS
SELECT
  meter_id, hour, import_kwh, import_tariff1_kwh, import_tariff2_kwh, import_tariff3_kwh, import_tariff4_kwh,
  export_kwh, export_tariff1_kwh, export_tariff2_kwh, export_tariff3_kwh, export_tariff4_kwh, net_kwh
FROM energy_hours;

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
FROM energy_hours
GROUP BY meter_id, day;

-- Columns and meaning as in 007. Live meters' hours come from energy_hours through the calendar (tariff_slots): a
-- query for a meter's days reads those days' quarter hours by index, then each hour by its key, whatever the size
-- of the archive. `hours` of a live hour is energy_hours.hours, at most back to the start of its day. An interval
-- hour that straddles two local days (zones with half-hour offsets) is one row per day.
CREATE VIEW report_hourly AS
SELECT
  s.meter_id,
  h.hour,
  s.day,
  h.import_kwh,
  h.export_kwh,
  CASE WHEN h.import_kwh IS NULL THEN 0 ELSE round(min(h.hours,
    (julianday(s.start) - julianday((SELECT min(x.start) FROM tariff_slots x WHERE x.meter_id = s.meter_id AND x.day = s.day))) * 24 + 1), 6)
  END AS hours,
  h.import_kwh * (SELECT avg(p.import_price) FROM tariff_slots p
                   WHERE p.meter_id = s.meter_id AND p.start >= s.start
                     AND p.start < strftime('%Y-%m-%dT%H:00:00.000Z', s.start, '+1 hour')) AS import_cost,
  h.export_kwh * (SELECT avg(p.export_price) FROM tariff_slots p
                   WHERE p.meter_id = s.meter_id AND p.start >= s.start
                     AND p.start < strftime('%Y-%m-%dT%H:00:00.000Z', s.start, '+1 hour')) AS export_credit
FROM tariff_slots s
JOIN energy_hours h ON h.meter_id = s.meter_id AND h.hour = substr(s.start, 1, 13) || ':00:00Z'
WHERE substr(s.start, 15) = '00:00.000Z'
UNION ALL
SELECT
  meter_id,
  hour,
  day,
  sum(energy_kwh) FILTER (WHERE direction = 'import') AS import_kwh,
  sum(energy_kwh) FILTER (WHERE direction = 'export') AS export_kwh,
  round(total(length) FILTER (WHERE direction = 'import' AND energy_kwh IS NOT NULL), 6) AS hours,
  sum(coalesce(cost, energy_kwh * price)) FILTER (WHERE direction = 'import') AS import_cost,
  sum(coalesce(cost, energy_kwh * price)) FILTER (WHERE direction = 'export') AS export_credit
FROM (
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
GROUP BY meter_id, day, hour;

-- Columns and meaning as in 007: the sums of report_hourly per day, worked out here from the same tables so that a
-- query for some days of a meter reads only those days.
CREATE VIEW report_daily AS
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
FROM (
  SELECT
    s.meter_id,
    s.day,
    sum(h.import_kwh) AS import_kwh,
    sum(h.export_kwh) AS export_kwh,
    total(CASE WHEN h.import_kwh IS NULL THEN 0 ELSE round(min(h.hours,
      (julianday(s.start) - julianday((SELECT min(x.start) FROM tariff_slots x WHERE x.meter_id = s.meter_id AND x.day = s.day))) * 24 + 1), 6)
    END) AS hours,
    sum(h.import_kwh * (SELECT avg(p.import_price) FROM tariff_slots p
                         WHERE p.meter_id = s.meter_id AND p.start >= s.start
                           AND p.start < strftime('%Y-%m-%dT%H:00:00.000Z', s.start, '+1 hour'))) AS import_cost,
    sum(h.export_kwh * (SELECT avg(p.export_price) FROM tariff_slots p
                         WHERE p.meter_id = s.meter_id AND p.start >= s.start
                           AND p.start < strftime('%Y-%m-%dT%H:00:00.000Z', s.start, '+1 hour'))) AS export_credit,
    (SELECT count(*) / 4.0 FROM tariff_slots x WHERE x.meter_id = s.meter_id AND x.day = s.day) AS day_hours,
    (SELECT max(x.daily_charge) FROM tariff_slots x INDEXED BY tariff_slots_day WHERE x.meter_id = s.meter_id AND x.day = s.day) AS daily_charge,
    (SELECT max(x.currency) FROM tariff_slots x INDEXED BY tariff_slots_day WHERE x.meter_id = s.meter_id AND x.day = s.day) AS currency
  FROM tariff_slots s
  JOIN energy_hours h ON h.meter_id = s.meter_id AND h.hour = substr(s.start, 1, 13) || ':00:00Z'
  WHERE substr(s.start, 15) = '00:00.000Z'
  GROUP BY s.meter_id, s.day
  UNION ALL
  SELECT
    i.meter_id,
    i.day,
    sum(i.energy_kwh) FILTER (WHERE i.direction = 'import') AS import_kwh,
    sum(i.energy_kwh) FILTER (WHERE i.direction = 'export') AS export_kwh,
    total((julianday(i.end) - julianday(i.start)) * 24) FILTER (WHERE i.direction = 'import' AND i.energy_kwh IS NOT NULL)
      AS hours,
    sum(coalesce(i.cost, i.energy_kwh * (SELECT avg(p.import_price) FROM tariff_slots p
      WHERE p.meter_id = i.meter_id AND p.start >= i.start AND p.start < i.end))) FILTER (WHERE i.direction = 'import')
      AS import_cost,
    sum(coalesce(i.cost, i.energy_kwh * (SELECT avg(p.export_price) FROM tariff_slots p
      WHERE p.meter_id = i.meter_id AND p.start >= i.start AND p.start < i.end))) FILTER (WHERE i.direction = 'export')
      AS export_credit,
    (SELECT count(*) / 4.0 FROM tariff_slots x WHERE x.meter_id = i.meter_id AND x.day = i.day) AS day_hours,
    (SELECT max(x.daily_charge) FROM tariff_slots x INDEXED BY tariff_slots_day WHERE x.meter_id = i.meter_id AND x.day = i.day) AS daily_charge,
    (SELECT max(x.currency) FROM tariff_slots x INDEXED BY tariff_slots_day WHERE x.meter_id = i.meter_id AND x.day = i.day) AS currency
  FROM intervals_current i
  WHERE EXISTS (SELECT 1 FROM tariff_slots s WHERE s.meter_id = i.meter_id AND s.start = i.start)
  GROUP BY i.meter_id, i.day
);


-- As in 007.
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
