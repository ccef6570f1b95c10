-- The FHIR gateway's own database (issue 14). No personal data: the Task keeps the
-- referral's identifiers, services, the dates and flags a later PUT is compared
-- with (care precautions only as a SHA-256), and the feed's status. The submitted
-- referral itself travels through the outbox to the hospital's referrals topic.
CREATE TABLE tasks (
    id                        text        PRIMARY KEY,
    hospital_id               text        NOT NULL,
    referral_id               text        NOT NULL,
    identifier_system         text        NOT NULL,
    fingerprint               text        NOT NULL,  -- of the submission: tells a retry from a conflict
    services                  text[]      NOT NULL,
    priority                  text        NOT NULL,
    authored_on               timestamptz NOT NULL,
    expected_discharge_date   date        NOT NULL,
    do_not_contact            boolean     NOT NULL,
    care_precautions_sha256   text        NOT NULL,
    discharged_at             timestamptz,
    cancel_requested          boolean     NOT NULL DEFAULT false,
    status                    text        NOT NULL,
    business_status           text,
    reason_code               text,
    reason                    text,
    reason_ko                 text,
    sequence                  integer     NOT NULL DEFAULT 0,
    gaps                      integer     NOT NULL DEFAULT 0,
    case_id                   text,
    centre_id                 text,
    outcome_report            jsonb,
    completed_at              timestamptz,
    version                   integer     NOT NULL DEFAULT 1,
    last_updated              timestamptz NOT NULL,
    UNIQUE (hospital_id, referral_id)
);
CREATE INDEX tasks_by_hospital_updated ON tasks (hospital_id, last_updated);

-- Client assertions already used (RFC 7523: a jti is accepted once), until they expire.
CREATE TABLE used_assertions (
    client_id   text        NOT NULL,
    jti         text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- Access tokens, by the SHA-256 of the opaque token (the token itself is never stored).
CREATE TABLE access_tokens (
    token_sha256  text        PRIMARY KEY,
    client_id     text        NOT NULL,
    hospital_id   text        NOT NULL,
    scope         text        NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- R4 Subscriptions Backport, rest-hook channel, id-only payloads.
CREATE TABLE subscriptions (
    id           text        PRIMARY KEY,
    hospital_id  text        NOT NULL,
    endpoint     text        NOT NULL,
    headers      text[]      NOT NULL DEFAULT '{}',
    status       text        NOT NULL,   -- active | error | off
    events       bigint      NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_by_hospital ON subscriptions (hospital_id) WHERE status = 'active';

-- One notification per subscription and Task change; retried with backoff, bounded.
CREATE TABLE notifications (
    id               bigserial   PRIMARY KEY,
    subscription_id  text        NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    task_id          text        NOT NULL,
    event_number     bigint      NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_due ON notifications (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
