-- An event's identity is (ce_source, ce_id): CloudEvents makes ce_id unique only
-- within its source, and two hospitals may send the same ce_id. The source joins
-- the inbox key.
--
-- source = '' means "no CloudEvents source": rows written before this migration
-- (their source was not kept, so they stay as they are and the inbox still treats
-- them as handled for their ce_id, see services/lib/runtime/inbox.py), and records
-- without ce_id or ce_source, which are identified by topic:partition:offset.
ALTER TABLE inbox ADD COLUMN source text NOT NULL DEFAULT '';
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (consumer, source, event_id);
