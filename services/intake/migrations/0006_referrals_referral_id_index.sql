-- carelink: no-transaction
-- A search by the hospital's referral id, whichever hospital sent it (the primary key
-- leads with the hospital).
CREATE INDEX CONCURRENTLY IF NOT EXISTS referrals_referral_id ON referrals (referral_id);
