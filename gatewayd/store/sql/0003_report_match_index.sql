-- Matching a delivery report (apply_report) looks for parts with status IN ('sent',
-- 'report_timeout'): parts_report (WHERE status = 'sent') cannot serve that condition, so
-- every report scanned the whole parts table (about 100 ms per report at 1,000,000 parts;
-- docs/benchmarks.md). This index has the query's own condition; parts_report served no
-- other query.
CREATE INDEX parts_report_match ON parts (identity, mr, sent_at)
    WHERE status IN ('sent', 'report_timeout');
DROP INDEX parts_report;
