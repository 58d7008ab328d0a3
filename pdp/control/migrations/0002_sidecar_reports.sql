-- Keep each sidecar's whole status report (DESIGN §7.4), not only the columns the fleet view
-- groups by, so the report's fields can grow without a migration each time.
ALTER TABLE sidecars ADD COLUMN report jsonb NOT NULL DEFAULT '{}';
CREATE INDEX sidecars_last_seen ON sidecars (last_seen);
CREATE INDEX decision_logs_decision_id ON decision_logs (decision_id);
