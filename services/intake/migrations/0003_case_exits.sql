-- A coordinator's exits from a case (issue 10): who ended it, when, with which coded
-- reason and note. The note is free text a person typed (it may name someone), so it
-- lives here only, never on a topic or in a log; the coded facts are the audit.
CREATE TABLE case_exits (
    id           bigserial PRIMARY KEY,
    case_id      text        NOT NULL REFERENCES cases (case_id),
    action       text        NOT NULL,   -- cancel
    reason_code  text        NOT NULL,
    note         text,
    actor        text        NOT NULL,
    centre_id    text        NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_exits_case ON case_exits (case_id, at);
