-- herald's tables in PostgreSQL, schema 1. Run under an advisory lock by whichever replica starts
-- first; every statement may run again.
CREATE TABLE IF NOT EXISTS herald_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
-- Replicas take ids in blocks of 100 (store/postgres ID_BLOCK).
CREATE SEQUENCE IF NOT EXISTS herald_id INCREMENT BY 100;
-- An alert as `store/alert_record.rs` encodes it: a header line, then the payload.
CREATE TABLE IF NOT EXISTS herald_alert (
    id bigint PRIMARY KEY,
    received_at timestamptz NOT NULL,
    record bytea NOT NULL
);
-- A dedupe claim: the first 16 bytes of SHA-256 of its key. Unsettled while its callback is on
-- its way to the store; an unsettled claim older than 15 s was abandoned and may be taken over.
CREATE TABLE IF NOT EXISTS herald_claim (
    hash bytea PRIMARY KEY,
    alert_id bigint NOT NULL,
    seen_at timestamptz NOT NULL,
    keep_ms bigint NOT NULL,
    settled boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS herald_claim_seen ON herald_claim (seen_at);
CREATE TABLE IF NOT EXISTS herald_job (
    id bigint PRIMARY KEY,
    target text NOT NULL,
    alert_id bigint NOT NULL,
    due_at timestamptz NOT NULL,
    attempted boolean NOT NULL,
    job jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS herald_job_due ON herald_job (target, due_at, id);
CREATE INDEX IF NOT EXISTS herald_job_alert ON herald_job (alert_id);

CREATE TABLE IF NOT EXISTS herald_dead_letter (
    id bigint PRIMARY KEY,
    target text NOT NULL,
    alert_id bigint NOT NULL,
    dead jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS herald_delivery (
    alert_id bigint NOT NULL,
    job_id bigint NOT NULL,
    job jsonb NOT NULL,
    PRIMARY KEY (alert_id, job_id)
);
CREATE TABLE IF NOT EXISTS herald_target (
    name text PRIMARY KEY,
    state jsonb,
    operator_paused boolean NOT NULL DEFAULT false
);
-- Which replica works a target's queue, until when (renewed while it lives).
CREATE TABLE IF NOT EXISTS herald_target_lease (
    name text PRIMARY KEY,
    owner text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS herald_fold (
    target text NOT NULL,
    fold_key text NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (target, fold_key)
);
CREATE TABLE IF NOT EXISTS herald_link (
    target text NOT NULL,
    key text NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (target, key)
);
CREATE TABLE IF NOT EXISTS herald_issue (
    id text PRIMARY KEY,
    issue jsonb NOT NULL,
    last_seen timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS herald_dead_letter_alert ON herald_dead_letter (alert_id);
CREATE INDEX IF NOT EXISTS herald_issue_seen ON herald_issue (last_seen);
