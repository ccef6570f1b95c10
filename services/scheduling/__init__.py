"""Scheduling: pre- and post-discharge visits as tasks with time windows."""
