"""The whole system on one machine: infrastructure from `services.tools.localinfra`,
one database per service, every topic, and the four services as separate
processes. Used alike by `make run`, the end-to-end tests and benchmarks."""

from services.tools.stack.system import LocalSystem, SystemInfo

__all__ = ["LocalSystem", "SystemInfo"]
