"""Coordinators' tasks: the queue, exclusive claims with expiring leases,
completion, release, reassignment and deadline escalation.

A library, not a service: referral (review, care plan) and scheduling (visits)
each keep a `tasks` table in their own database (this package's migration)
and expose these operations for the interfaces to call.
"""

from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")
