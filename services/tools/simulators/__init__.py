"""Simulated hospitals and staff: fake but realistic traffic for tests, demos and benchmarks."""
