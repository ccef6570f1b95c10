"""Declared topics on the real broker: what ensure_topics creates is what the catalogue says.

On the embedded Tansu broker the topic configs (`retention.ms`, `min.insync.replicas`)
are kept and described back, so they are checked here. Tansu does not honour a
replication factor (it accepts any and keeps one copy, reporting one replica) and
does not enforce retention: the replication factor sent is checked without a broker
(tests/unit/contracts/test_topics_declared.py), and on Apache Kafka (testcontainers,
where Docker answers) this test checks the one-broker durability it can hold.
"""

from __future__ import annotations

import uuid

import pytest

from contracts import topics
from contracts.topics import LOCAL, all_topics
from services.lib.runtime import kafka
from services.lib.runtime.topics import describe, differences
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import kafka_settings

pytestmark = pytest.mark.integration


async def test_created_topics_have_the_declared_partitions_and_configs(
    endpoints: Endpoints,
) -> None:
    # Fresh hospitals, so their topics are new on a broker other sessions share.
    hospitals = [f"t{uuid.uuid4().hex[:8]}-{n}" for n in ("a", "b")]
    settings = kafka_settings(endpoints)
    specs = [
        spec
        for spec in all_topics(hospitals, LOCAL)
        if topics.hospital_of(spec.name.removesuffix(".dlq")) in hospitals
    ]
    assert len(specs) == 6

    created = await kafka.ensure_topics(settings, specs)
    assert sorted(created) == sorted(spec.name for spec in specs)

    observed = await describe(settings, [spec.name for spec in specs])
    for spec in specs:
        assert differences(spec, observed.get(spec.name)) == [], spec.name
    dlq = topics.dead_letters(topics.referrals(hospitals[0]))
    assert observed[dlq].configs["retention.ms"] == str(14 * topics.DAY_MS)

    # A second run creates nothing and changes nothing.
    assert await kafka.ensure_topics(settings, specs) == []
    assert await describe(settings, [spec.name for spec in specs]) == observed


async def test_check_reports_a_topic_created_without_its_declaration(
    endpoints: Endpoints,
) -> None:
    settings = kafka_settings(endpoints)
    name = f"t{uuid.uuid4().hex[:8]}.legacy.dlq"
    declared = topics.TopicSpec(name, 1, topics.DLQ_RETENTION_MS)
    # As topics were created before retention was declared: no topic configs.
    await kafka.ensure_topics(settings, [topics.TopicSpec(name, 1)])

    observed = await describe(settings, [name])
    # "unset" on Tansu; Apache Kafka describes its default (7 days) instead.
    (found,) = differences(declared, observed[name])
    assert found.startswith("retention.ms ")
    assert found.endswith(f", declared {topics.DLQ_RETENTION_MS}")
