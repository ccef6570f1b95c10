-- carelink: no-transaction
-- A person's cases, open or closed: a search by name and birth date, and the earlier
-- cases linked on the case page, start from the person (cases_open_by_person of 0001
-- holds only open ones).
CREATE INDEX CONCURRENTLY IF NOT EXISTS cases_person ON cases (person_id);
