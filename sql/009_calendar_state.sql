-- The tariff calendar (tariff_slots, 007) is written only where it is missing: a day already there is not written
-- again. Quarters from now on follow the configuration as it is: this table holds what they were written from (the
-- meter's zone and tariff), and when that changes they are written again.
--   fingerprint  the zone and tariff the meter's quarters from changed_at on were written with
CREATE TABLE calendar_state (
  meter_id TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  changed_at TEXT NOT NULL
) WITHOUT ROWID;
