"""The care coordinators' console: web pages and an HTTP JSON API.

A small gateway: it reads and acts only through the owning services' code
(services.lib.tasks, referral's and scheduling's use cases, intake's queries) and
decides no rule itself. `python -m services.console` runs it; settings come
from `CARELINK_CONSOLE_*` environment variables (see settings.py).
"""
