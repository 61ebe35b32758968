-- energy_hours.t_last: the newest reading with a register in the hour. Readings newer than it (the usual case: a
-- meter's readings come in order) update the hour's registers from themselves, without reading the hour back; an
-- older one (a replay) or an hour without t_last (NULL: filled before this column) reads the hour again.
ALTER TABLE energy_hours ADD COLUMN t_last TEXT;
