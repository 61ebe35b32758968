-- Metered intervals that arrive late and may be revised (Smart Meter Texas, SmartHub), with every revision kept,
-- and the bookkeeping of what went to Home Assistant's long-term statistics.
--
-- Times are ISO 8601 UTC with milliseconds and `Z`, as in the readings table. `day` is the civil date of the
-- interval's start in the meter's own zone (meters.timezone: America/Chicago for Smart Meter Texas), stored with
-- each row so daily totals are the meter's days whatever the zone of the process that queries them.

ALTER TABLE meters ADD COLUMN timezone TEXT;  -- IANA zone of the meter's civil days, for meters that report intervals

-- Every distinct revision of every interval. An interval is (meter_id, start, direction); a revision is a new
-- (energy_kwh, quality, cost) for it. A revision equal to the one before it (in revision order) is not stored
-- again, so importing the same email or file twice changes nothing.
--   start, end     the metered period, UTC (start inclusive, end exclusive)
--   direction      import (taken from the grid; SMT `Consumption`) or export (delivered; SMT `Surplus Generation`)
--   revised_at     when the source says this revision was made (SMT: the CSV's REVISION_DATE; without one, the
--                  time it was received). Revisions are ordered by (revised_at, received_at): the newest is current.
--   received_at    when it reached the bridge: the email's date, the file's modification time
--   day            YYYY-MM-DD in the meter's zone
--   energy_kwh     NULL when the source had no reading (quality 'missing')
--   quality        actual | estimated (SMT `E`) | missing
--   origin         where it came from: imap:<account>/<mailbox>/<uidvalidity>/<uid>, or file:<path>@<modified>
CREATE TABLE interval_revisions (
  meter_id TEXT NOT NULL,
  start TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('import', 'export')),
  revised_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  end TEXT NOT NULL,
  day TEXT NOT NULL,
  energy_kwh REAL,
  quality TEXT NOT NULL CHECK (quality IN ('actual', 'estimated', 'missing')),
  cost REAL,
  origin TEXT,
  imported_at TEXT NOT NULL,
  PRIMARY KEY (meter_id, start, direction, revised_at, received_at)
) WITHOUT ROWID;

-- Days are looked up per meter for the daily view and the "latest full day" sensors.
CREATE INDEX interval_revisions_day ON interval_revisions (meter_id, day);

-- The current interval: the latest revision of each (meter_id, start, direction). Columns as in
-- interval_revisions, plus `revisions`: how many revisions of this interval are stored.
CREATE VIEW intervals_current AS
SELECT
  r.meter_id, r.start, r.end, r.day, r.direction, r.energy_kwh, r.quality, r.cost,
  r.revised_at, r.received_at, r.origin,
  (SELECT count(*) FROM interval_revisions c
    WHERE c.meter_id = r.meter_id AND c.start = r.start AND c.direction = r.direction) AS revisions
FROM interval_revisions r
WHERE NOT EXISTS (
  SELECT 1 FROM interval_revisions n
  WHERE n.meter_id = r.meter_id AND n.start = r.start AND n.direction = r.direction
    AND (n.revised_at, n.received_at) > (r.revised_at, r.received_at)
);

-- Current interval energy per meter and UTC hour (the hour an interval starts in), kWh, rounded to 6 decimals
-- (the sources give at most 3, so the rounding only removes binary noise and the totals equal the sources' sums).
--   hour         start of the UTC hour, YYYY-MM-DDTHH:00:00Z
--   import_kwh   energy taken from the grid; NULL when the hour has no import reading
--   export_kwh   energy delivered to the grid; NULL when the hour has no export reading
--   net_kwh      import_kwh - export_kwh, a missing side counted as 0
--   intervals    current intervals in the hour, both directions
--   estimated    of those, estimated by the utility
--   missing      of those, without a reading
CREATE VIEW intervals_hourly AS
SELECT
  meter_id,
  substr(start, 1, 13) || ':00:00Z' AS hour,
  round(sum(energy_kwh) FILTER (WHERE direction = 'import'), 6) AS import_kwh,
  round(sum(energy_kwh) FILTER (WHERE direction = 'export'), 6) AS export_kwh,
  round(total(energy_kwh) FILTER (WHERE direction = 'import') - total(energy_kwh) FILTER (WHERE direction = 'export'), 6)
    AS net_kwh,
  count(*) AS intervals,
  count(*) FILTER (WHERE quality = 'estimated') AS estimated,
  count(*) FILTER (WHERE quality = 'missing') AS missing
FROM intervals_current
GROUP BY meter_id, hour;

-- Current interval energy per meter and civil day in the meter's zone (`day`), kWh; columns as in
-- intervals_hourly. A whole day has 96 intervals per direction, 92 on the spring-forward day, 100 on fall-back.
CREATE VIEW intervals_daily AS
SELECT
  meter_id,
  day,
  round(sum(energy_kwh) FILTER (WHERE direction = 'import'), 6) AS import_kwh,
  round(sum(energy_kwh) FILTER (WHERE direction = 'export'), 6) AS export_kwh,
  round(total(energy_kwh) FILTER (WHERE direction = 'import') - total(energy_kwh) FILTER (WHERE direction = 'export'), 6)
    AS net_kwh,
  count(*) AS intervals,
  count(*) FILTER (WHERE quality = 'estimated') AS estimated,
  count(*) FILTER (WHERE quality = 'missing') AS missing
FROM intervals_current
GROUP BY meter_id, day;

-- One row per email or file imported for a meter (the first time; importing it again changes nothing).
--   origin       as in interval_revisions
--   received_at  the email's date or the file's modification time
--   intervals    intervals read from it; revisions: of those, new revisions stored; errors: rows rejected
CREATE TABLE interval_imports (
  meter_id TEXT NOT NULL,
  origin TEXT NOT NULL,
  received_at TEXT NOT NULL,
  imported_at TEXT NOT NULL,
  intervals INTEGER NOT NULL,
  revisions INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  PRIMARY KEY (meter_id, origin)
) WITHOUT ROWID;

-- Where a meter's mailbox was read up to: messages with a UID above last_uid are new, as long as the
-- mailbox keeps its UIDVALIDITY (a server that renumbers its messages changes it, and everything is read again).
--   account      user@host (never the password)
CREATE TABLE imap_cursors (
  meter_id TEXT NOT NULL,
  account TEXT NOT NULL,
  mailbox TEXT NOT NULL,
  uidvalidity TEXT NOT NULL,
  last_uid INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (meter_id, account, mailbox)
) WITHOUT ROWID;

-- What was sent to Home Assistant's long-term statistics (recorder/import_statistics), hour by hour, so that
-- only new or revised hours are sent again.
--   statistic_id  meter2mqtt:<meter>_energy_import or meter2mqtt:<meter>_energy_export
--   hour          start of the UTC hour
--   state_kwh     energy in that hour, as sent (`state`)
--   sum_kwh       running sum as sent (`sum`)
CREATE TABLE statistics_imported (
  statistic_id TEXT NOT NULL,
  hour TEXT NOT NULL,
  state_kwh REAL NOT NULL,
  sum_kwh REAL NOT NULL,
  imported_at TEXT NOT NULL,
  PRIMARY KEY (statistic_id, hour)
) WITHOUT ROWID;
