"""The hospital's side of the contract, for gateways that act as a hospital system.

A library, never run on its own. The social workers' portal and the FHIR gateway
both stand in for hospitals that cannot produce Kafka events themselves; this is
the one place that knows how a hospital talks to carelink (contracts/hospital_v1.py,
`../shared/hospital-contract-v1.md`), so both talk exactly like any hospital would:

- `publishing`: a hospital event (`carelink.referral.submitted.v1`,
  `carelink.referral.updated.v1`, `carelink.patient.discharged.v1`,
  `carelink.referral.cancelled.v1`) is written to the gateway's own outbox, inside
  the transaction that records why it was sent, keyed by the referral id, with
  CloudEvents headers whose `ce_source` is the hospital's own (`hospital/<id>`).
  The runtime's outbox relay (services/lib/runtime/outbox.py) publishes it on
  `hospital.<id>.referrals`; with the broker down the row waits in the outbox, so
  nothing is lost.
- `updates`: a record handler for the runtime's consumer pipeline that follows
  `hospital.<id>.updates` for the hospitals the gateway serves (and only those:
  `updates_topics`) into the table `hospital_updates`, one row per
  (hospital, referral, sequence). Repeats (at-least-once delivery) are dropped by
  that key; a record that is not a readable update is noted in
  `hospital_unreadable_updates` with its offset, never dropped silently and never
  blocking the partition.
- `timeline`: pure functions over a referral's stored updates: ordered by
  sequence, with the gaps (missing sequences) explicit, so a screen can show a gap
  as a gap.

How a gateway uses it (a deployable with its own database, run by
`services.lib.runtime.service.run_service`):

    SPEC = ServiceSpec(
        name="portal",
        ...,
        extra_migrations=[("hospitalside", hospitalside.MIGRATIONS)],
        topics=lambda registry: updates_topics(settings.hospitals),
        handler=lambda context: UpdatesFollower(settings.hospitals),
    )

    async with pool.acquire() as conn, conn.transaction():
        ...  # the gateway's own state (a draft marked sent, a FHIR Task row ...)
        await publishing.enqueue(conn, hospital_id, ReferralSubmitted(...))

`run_service` applies the runtime's outbox/inbox migrations and this package's,
runs the outbox relay and subscribes the handler with an explicit consumer group.
"""

from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")
