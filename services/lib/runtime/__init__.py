"""The plumbing every carelink service uses: settings, logging, database and
migrations, outbox, inbox, dead letters, the consumer pipeline, health and the
service lifespan. Nothing here knows about referrals."""
