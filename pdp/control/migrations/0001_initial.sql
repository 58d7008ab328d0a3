-- The control plane's schema (DESIGN §8.1). Applied once, in one transaction, under an advisory
-- lock held by pdp.control.migrations; later changes go in new numbered files, never edits here.

-- Current policies. `spec` is the validated document; the columns beside it are copies of its
-- fields that lists filter and order on. A delete is soft (deleted_at) so history stays readable.
CREATE TABLE policies (
    id          text PRIMARY KEY,
    spec        jsonb       NOT NULL,
    type        text        NOT NULL,
    enabled     boolean     NOT NULL,
    severity    text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX policies_live ON policies (id) WHERE deleted_at IS NULL;

-- Every change of every policy: who, when, and the spec after it (NULL after a delete).
CREATE TABLE policy_versions (
    policy_id   text        NOT NULL REFERENCES policies (id),
    version     integer     NOT NULL,
    change      text        NOT NULL CHECK (change IN ('create', 'update', 'delete')),
    spec        jsonb,
    actor       text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (policy_id, version)
);

-- Bundle data, one document per path (`users`, `services`, `limits/eu` ...).
CREATE TABLE data_documents (
    path        text PRIMARY KEY,
    document    jsonb       NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);

-- Bundle tests (`tests/<name>.json` in every published bundle): a failing one blocks a publish.
CREATE TABLE bundle_tests (
    path        text PRIMARY KEY,
    document    jsonb       NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL
);

-- Published bundles: the signed bytes exactly as served, and what they were built from.
CREATE TABLE bundles (
    sequence        bigint PRIMARY KEY CHECK (sequence > 0),
    revision        text        NOT NULL,
    sha256          text        NOT NULL,
    manifest        jsonb       NOT NULL,
    content         bytea       NOT NULL,
    key_id          text        NOT NULL,
    published_by    text        NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now(),
    notes           text        NOT NULL DEFAULT '',
    rollback_of     bigint REFERENCES bundles (sequence)
);

-- Bearer tokens: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL
                CHECK (role IN ('admin', 'editor', 'publisher', 'viewer', 'sidecar')),
    token_hash  bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL,
    revoked_at  timestamptz
);

-- The latest status report of each sidecar (the fleet view).
CREATE TABLE sidecars (
    instance_id text PRIMARY KEY,
    labels      jsonb       NOT NULL DEFAULT '{}',
    revision    text,
    sequence    bigint,
    state       text        NOT NULL,
    errors      jsonb       NOT NULL DEFAULT '[]',
    last_seen   timestamptz NOT NULL DEFAULT now()
);

-- Decision log events uploaded by sidecars; pruned by received_at (retention).
CREATE TABLE decision_logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id text        NOT NULL,
    instance_id text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    event       jsonb       NOT NULL
);
CREATE INDEX decision_logs_received_at ON decision_logs (received_at);

-- One row per accepted write, with the actor (token name and role).
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}'
);
