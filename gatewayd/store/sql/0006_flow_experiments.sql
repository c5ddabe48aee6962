-- Experiments: the arm of each send step (a template variant, or "holdout" for the
-- control that is tracked but sent nothing); metrics group by it.
ALTER TABLE flow_sends ADD COLUMN variant TEXT;
