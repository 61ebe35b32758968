-- Energy estimated from demand, for RAVEn / EMU-2 devices that report no summation (no
-- CurrentSummationDelivered): the bridge integrates demand over time (trapezoid rule; gaps longer than
-- a few polls add nothing) into these counters, kWh. They start at 0 each time the bridge starts, so
-- a value lower than the previous one is a restart, not a negative consumption. NULL for meters with
-- registers: their energy_import_kwh / energy_export_kwh are the actual figures.
ALTER TABLE readings ADD COLUMN energy_import_estimated_kwh REAL;
ALTER TABLE readings ADD COLUMN energy_export_estimated_kwh REAL;
