"""The Kubernetes resources derived from carelink's own declarations, generated so they
cannot drift: a Strimzi `KafkaTopic` per topic of the catalogue (contracts/topics.py), a
`KafkaUser` per service, for the portal and the FHIR gateway (hospital systems: write
referrals, read updates) and per registered hospital with exactly its ACLs, and a KEDA
`ScaledObject` per consumer group, capped at its topics' partitions.

    python -m services.tools.k8s          # write deploy/k8s/base/... (what `make k8s` runs)
    python -m services.tools.k8s --check  # exit 1 and list the files that drifted

tests/contract/test_k8s.py fails when the committed files differ from what this renders.
"""

from services.tools.k8s.generate import (
    CLUSTER,
    GENERATED,
    KAFKA_BOOTSTRAP,
    NAMESPACE,
    Access,
    check,
    hospital_side_access,
    render,
    service_access,
    write,
)

__all__ = [
    "CLUSTER",
    "GENERATED",
    "KAFKA_BOOTSTRAP",
    "NAMESPACE",
    "Access",
    "check",
    "hospital_side_access",
    "render",
    "service_access",
    "write",
]
