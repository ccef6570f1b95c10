"""Chaos runs: the whole system under faults, with a verdict on loss and duplication.

`python -m services.tools.chaos` (`make chaos`) starts a fresh local system per scenario,
drives it with simulated hospitals and coordinators while it injects faults, waits
for quiet and checks the hospitals' topics and the service databases. See
`services/tools/chaos/cli.py` for the options and `services/tools/chaos/verify.py` for the rules.
"""
