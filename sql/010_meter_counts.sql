-- How many readings each meter has in the archive, kept by the writer with each batch and each deletion by
-- archive.retention, so that the archive's diagnostics (rows per meter) cost nothing to read.
ALTER TABLE meters ADD COLUMN readings INTEGER NOT NULL DEFAULT 0;
UPDATE meters SET readings = (SELECT count(*) FROM readings r WHERE r.meter_id = meters.id);
