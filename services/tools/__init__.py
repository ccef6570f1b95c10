"""Tools run by people (operators' CLI, simulators, benchmark, chaos, the local stack): never deployed."""
