-- 0006: monitors run by agents (issue 14). Their results come from many places and are kept
-- longer, so after a while each location's results are downsampled to one row per hour
-- (period_s 3600) that counts its checks and the ok ones, with the mean and slowest response.

ALTER TABLE monitor_results ADD COLUMN period_s integer NOT NULL DEFAULT 0;
ALTER TABLE monitor_results ADD COLUMN checks integer NOT NULL DEFAULT 1;
ALTER TABLE monitor_results ADD COLUMN ok_checks integer;
ALTER TABLE monitor_results ADD COLUMN max_response_ms real;
