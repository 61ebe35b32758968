-- Quantities the bridge computes from what the meter sends (src/derived/), archived beside the meter's own.
-- power_surplus_w: export, 0 while importing (from power_net_w), W.
-- demand_quarter_hour_projected_w: the running quarter-hour's average demand if the current import held until
-- the quarter ends, W; what the load advisor's peak guard keeps under the month's peak.
-- demand_quarter_hour_w and demand_month_peak_w already have columns (001): the meter's values where it reports
-- them (Belgian 1-0:1.4.0 and 1-0:1.6.0), else the bridge's, computed from the energy registers on fixed
-- quarter-hour boundaries.
ALTER TABLE readings ADD COLUMN power_surplus_w REAL;
ALTER TABLE readings ADD COLUMN demand_quarter_hour_projected_w REAL;
