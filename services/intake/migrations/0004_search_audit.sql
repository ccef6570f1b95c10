-- A search of the centre's cases (issue 10) reads personal data (a name and birth date,
-- or ids that lead to them), so each one is recorded like a view: who searched, for which
-- centre, by what (referral-id, case-id or name-birth-date, never the values typed) and
-- how many cases it found. Each case found also gets an access_audit row (purpose
-- `search`), so a case's own view history shows the searches that reached it.
CREATE TABLE search_audit (
    id         bigserial PRIMARY KEY,
    viewer     text        NOT NULL,
    centre_id  text        NOT NULL,
    searched_by text       NOT NULL,
    found      int         NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX search_audit_viewer ON search_audit (viewer, at);
