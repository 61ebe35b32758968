-- Registers some meters send beside the usual ones: reactive energy per tariff (1-0:3.8.1 … 1-0:4.8.4, in kvarh)
-- and apparent power (Luxembourg 1-0:9.7.0 and 1-0:10.7.0, in VA).
ALTER TABLE readings ADD COLUMN reactive_energy_import_tariff1_kvarh REAL;
ALTER TABLE readings ADD COLUMN reactive_energy_import_tariff2_kvarh REAL;
ALTER TABLE readings ADD COLUMN reactive_energy_import_tariff3_kvarh REAL;
ALTER TABLE readings ADD COLUMN reactive_energy_import_tariff4_kvarh REAL;
ALTER TABLE readings ADD COLUMN reactive_energy_export_tariff1_kvarh REAL;
ALTER TABLE readings ADD COLUMN reactive_energy_export_tariff2_kvarh REAL;
ALTER TABLE readings ADD COLUMN reactive_energy_export_tariff3_kvarh REAL;
ALTER TABLE readings ADD COLUMN reactive_energy_export_tariff4_kvarh REAL;
ALTER TABLE readings ADD COLUMN apparent_power_import_va REAL;
ALTER TABLE readings ADD COLUMN apparent_power_export_va REAL;
