"""`python -m services.tools.bench` (`make bench`): how fast carelink is on this machine.

Starts its own broker and PostgreSQL with the same picker as the tests
(`services.tools.localinfra`), measures the raw limit of that broker and database,
then intake, the whole loop, intake again over a bulk-loaded store, and the
services' memory, stops everything and writes docs/bench/result.{json,md,png}.
"""
