-- Dynamic prices (tariffs with `type: dynamic`, src/tariffs/dynamic.ts): the price each quarter hour was priced at,
-- once the quarter had ended, so that costs can be worked out again and reports stay exact. The report calendar
-- (tariff_slots) of the tariff's meters carries the same prices.
--   tariff      the tariff's name
--   direction   import or export
--   start       the quarter hour, UTC (2026-03-29T01:00:00.000Z)
--   price       per kWh, in the tariff's currency
--   origin      mqtt or home_assistant (from the price source), or fallback (the source had none for it)
--   written_at  when the bridge wrote it
CREATE TABLE dynamic_prices (
  tariff TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('import', 'export')),
  start TEXT NOT NULL,
  price REAL NOT NULL,
  origin TEXT NOT NULL CHECK (origin IN ('mqtt', 'home_assistant', 'fallback')),
  written_at TEXT NOT NULL,
  PRIMARY KEY (tariff, direction, start)
) WITHOUT ROWID;
