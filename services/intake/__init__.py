"""Intake: reads the hospitals' referral topics, validates and triages, keeps
the personal data in its own database, and appends case events to care.cases."""
