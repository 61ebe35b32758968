/**
 * Usage lines of the commands, apart from their code: the CLI prints them without loading the modules behind
 * them (IMAP, HTTP and websocket clients), which keeps `run` lean on a Raspberry Pi.
 */
export const EXPORT_USAGE = `  meter2mqtt export [--config FILE] [--meter ID] [--from DAY|TIME] [--to DAY|TIME]
                    [--data readings|intervals] [--format csv|line] [--output FILE]
                                        archived readings (live meters) or intervals as CSV or
                                        line protocol
  meter2mqtt export --backfill [--meter ID] [--from] [--to]
                                        the archive's history to the configured influx: server`;

export const REPORT_USAGE = `  meter2mqtt report daily|monthly [--config FILE] [--meter ID] [--from DAY] [--to DAY]
                    [--format table|csv|json] [--reprice]
                                        per day (or month) from the archive: kWh, hours covered,
                                        average kWh per hour, the estimate for partial days, cost`;

export const BACKFILL_USAGE = `  meter2mqtt backfill [--config FILE] [--meter ID] --start YYYY-MM-DD --end YYYY-MM-DD
                                        a SmartHub meter's history into the archive (45 days per
                                        request), then HA's statistics; run again to resume`;

export const IMPORT_USAGE = `  meter2mqtt import [--config FILE] [--meter ID] [--mail] FILE|DIR…
                                        Smart Meter Texas CSVs (folders searched for *.csv) into the
                                        archive, then HA's statistics; --mail checks the mailbox now`;
