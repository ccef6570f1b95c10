-- A coordinator's correction of a case's fee support before its care plan (issue 10):
-- who, when, from what to what, and their note (free text: it stays in this store).
CREATE TABLE fee_corrections (
    id           bigserial PRIMARY KEY,
    case_id      text        NOT NULL REFERENCES cases (case_id),
    previous     text        NOT NULL,
    fee_support  text        NOT NULL,
    note         text        NOT NULL,
    actor        text        NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fee_corrections_case ON fee_corrections (case_id, at);
