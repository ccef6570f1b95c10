-- Who looked at a case's personal data, when and why: every view of the
-- submission through the coordinators' console leaves one row here.
CREATE TABLE access_audit (
    id       bigserial PRIMARY KEY,
    case_id  text        NOT NULL,
    viewer   text        NOT NULL,
    purpose  text        NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_audit_case ON access_audit (case_id, at);
