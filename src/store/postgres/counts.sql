-- Schema 2: counts kept by the database itself, so that /readyz, /metrics and the console read a
-- few rows instead of counting tables that grow with the queue. A statement-level trigger adds
-- what each statement inserted or deleted (its transition table holds only rows really inserted,
-- not those an ON CONFLICT updated). A transaction adds to the row of its backend's shard, so
-- writers seldom wait for each other's row; a count is the sum of its shards.
CREATE TABLE IF NOT EXISTS herald_count (
    what text NOT NULL,      -- 'alerts', 'queued' or 'dead'
    target text NOT NULL,    -- '' for alerts
    shard int NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (what, target, shard)
);

-- Jobs and dead letters, per target (TG_ARGV[0]: 'queued' or 'dead').
CREATE OR REPLACE FUNCTION herald_count_per_target() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO herald_count AS c (what, target, shard, n)
        SELECT TG_ARGV[0], target, pg_backend_pid() % 64, count(*) FROM new_rows GROUP BY target
        ON CONFLICT (what, target, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO herald_count AS c (what, target, shard, n)
        SELECT TG_ARGV[0], target, pg_backend_pid() % 64, -count(*) FROM old_rows GROUP BY target
        ON CONFLICT (what, target, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END
$$;

-- Alerts, in all.
CREATE OR REPLACE FUNCTION herald_count_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO changed FROM new_rows;
    ELSE
        SELECT -count(*) INTO changed FROM old_rows;
    END IF;
    IF changed <> 0 THEN
        INSERT INTO herald_count AS c (what, target, shard, n)
        VALUES ('alerts', '', pg_backend_pid() % 64, changed)
        ON CONFLICT (what, target, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER herald_alert_inserted AFTER INSERT ON herald_alert
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION herald_count_alerts();
CREATE TRIGGER herald_alert_deleted AFTER DELETE ON herald_alert
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION herald_count_alerts();
CREATE TRIGGER herald_job_inserted AFTER INSERT ON herald_job
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION herald_count_per_target('queued');
CREATE TRIGGER herald_job_deleted AFTER DELETE ON herald_job
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION herald_count_per_target('queued');
CREATE TRIGGER herald_dead_letter_inserted AFTER INSERT ON herald_dead_letter
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION herald_count_per_target('dead');
CREATE TRIGGER herald_dead_letter_deleted AFTER DELETE ON herald_dead_letter
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION herald_count_per_target('dead');

-- What the tables held before the counts were kept.
INSERT INTO herald_count (what, target, shard, n) SELECT 'alerts', '', 0, count(*) FROM herald_alert;
INSERT INTO herald_count (what, target, shard, n) SELECT 'queued', target, 0, count(*) FROM herald_job GROUP BY target;
INSERT INTO herald_count (what, target, shard, n) SELECT 'dead', target, 0, count(*) FROM herald_dead_letter GROUP BY target;
