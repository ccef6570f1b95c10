"""Outcome: the one voice back to hospitals. Turns case events into the
hospital's status updates with a gap-free sequence, and closes the loop."""
