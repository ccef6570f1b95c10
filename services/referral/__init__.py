"""Referral: the coordinators' review and the care plan, priced by policy and
checked against the person's annual cap."""
