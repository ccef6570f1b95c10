-- What closing a case waits for (issue 9): the case completes when every line of its plan
-- has ended (referral's services-delivered) and the post-discharge visit is done
-- (scheduling's visit-done); outcome combines the two.
-- {"ordered": bool, "delivery": <services-delivered>, "post_visit": {"precautions_acknowledged": bool}}
ALTER TABLE cases ADD COLUMN closure jsonb NOT NULL DEFAULT '{}';
