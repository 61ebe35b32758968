-- Meters the grid operator replaced (src/derived/replacement.ts): when the new meter's first reading was taken,
-- how the bridge knew (a new serial number, or registers that fell and stayed down), and the old meter's last
-- and the new meter's first registers (JSON objects of quantity name → value), so that reports can join them.
CREATE TABLE meter_replacements (
  meter_id TEXT NOT NULL,
  time TEXT NOT NULL,
  how TEXT NOT NULL CHECK (how IN ('identity', 'registers')),
  old_serial TEXT,
  new_serial TEXT,
  before_json TEXT NOT NULL,
  after_json TEXT NOT NULL,
  PRIMARY KEY (meter_id, time)
) WITHOUT ROWID;
