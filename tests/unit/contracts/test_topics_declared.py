"""Declared topics: partitions, replication factor, min.insync.replicas and retention
come from the catalogue, and topic creation sends exactly that (no broker here; the
same against the real embedded broker is tests/integration/test_topics_kafka.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts import topics
from contracts.topics import DAY_MS, LOCAL, PRODUCTION, Durability, TopicSpec, all_topics
from services.lib.runtime import kafka
from services.lib.runtime import topics as topics_job
from services.lib.runtime.settings import KafkaSettings, ServiceSettings
from services.lib.runtime.topics import Observed, differences

HOSPITALS = ["police-hospital", "seoul-medical-center"]


def _by_name(specs: list[TopicSpec]) -> dict[str, TopicSpec]:
    return {spec.name: spec for spec in specs}


def test_every_declared_topic_has_a_retention() -> None:
    for spec in all_topics(HOSPITALS):
        assert spec.retention_ms is not None, spec.name
        assert spec.configs()["retention.ms"] == str(spec.retention_ms)


def test_dead_letters_are_kept_fourteen_days_as_the_readme_promises() -> None:
    dlqs = [spec for spec in all_topics(HOSPITALS) if spec.name.endswith(".dlq")]
    assert {spec.name for spec in dlqs} == {
        *(topics.dead_letters(topics.referrals(h)) for h in HOSPITALS),
        topics.dead_letters(topics.CASES),
    }
    for spec in dlqs:
        assert spec.configs()["retention.ms"] == "1209600000", spec.name  # 14 days


def test_hospital_referrals_with_personal_data_are_kept_no_longer_than_a_week() -> None:
    by_name = _by_name(all_topics(HOSPITALS))
    for hospital in HOSPITALS:
        assert by_name[topics.referrals(hospital)].retention_ms == 7 * DAY_MS
        # A hospital's only answer: kept longer than its records are.
        assert by_name[topics.updates(hospital)].retention_ms == 30 * DAY_MS


def test_partitions_are_the_catalogues() -> None:
    by_name = _by_name(all_topics(HOSPITALS))
    assert by_name[topics.CASES].partitions == topics.CASES_PARTITIONS
    assert by_name[topics.ESCALATIONS].partitions == topics.ESCALATIONS_PARTITIONS
    assert by_name[topics.referrals("police-hospital")].partitions == topics.HOSPITAL_PARTITIONS
    assert by_name[topics.updates("police-hospital")].partitions == topics.HOSPITAL_PARTITIONS
    assert by_name["care.cases.dlq"].partitions == topics.DLQ_PARTITIONS


def test_local_durability_is_one_copy_and_production_three_with_two_in_sync() -> None:
    assert {(s.replication_factor, s.min_insync_replicas) for s in all_topics(HOSPITALS)} == {
        (1, 1)
    }
    production = all_topics(HOSPITALS, PRODUCTION)
    assert {(s.replication_factor, s.min_insync_replicas) for s in production} == {(3, 2)}
    assert all(s.configs()["min.insync.replicas"] == "2" for s in production)
    # Durability changes nothing else.
    assert [(s.name, s.partitions, s.retention_ms) for s in production] == [
        (s.name, s.partitions, s.retention_ms) for s in all_topics(HOSPITALS)
    ]


@pytest.mark.parametrize(("replication", "in_sync"), [(0, 1), (1, 0), (1, 2), (3, 4)])
def test_impossible_durability_is_refused(replication: int, in_sync: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        Durability(replication, in_sync)


def test_kafka_settings_default_to_one_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REPLICATION_FACTOR", "MIN_INSYNC_REPLICAS", "CREATE_TOPICS"):
        monkeypatch.delenv(f"CARELINK_KAFKA_{name}", raising=False)
    settings = KafkaSettings()
    assert settings.durability == LOCAL
    assert settings.create_topics is True


def test_kafka_settings_take_production_durability_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CARELINK_KAFKA_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("CARELINK_KAFKA_CREATE_TOPICS", "false")
    assert KafkaSettings().durability == PRODUCTION
    assert KafkaSettings().create_topics is False
    # Services read the same variables through their nested Kafka settings.
    service = ServiceSettings(service="any")
    assert service.kafka.durability == PRODUCTION


def test_kafka_settings_refuse_more_in_sync_replicas_than_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_REPLICATION_FACTOR", "1")
    monkeypatch.setenv("CARELINK_KAFKA_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(ValidationError, match=r"min\.insync\.replicas"):
        KafkaSettings()


class _FakeAdmin:
    """Stands in for AIOKafkaAdminClient: records what topic creation asks the broker."""

    instances: list[_FakeAdmin] = []  # per test: the fixture resets it

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.requested: list[Any] = []
        self.existing = {"care.cases"}
        _FakeAdmin.instances.append(self)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return sorted(self.existing)

    async def create_topics(self, new_topics: list[Any]) -> Any:
        self.requested = new_topics

        class Response:
            topic_errors = [(t.name, 0, None) for t in new_topics]

        return Response()


@pytest.fixture
def fake_admin(monkeypatch: pytest.MonkeyPatch) -> type[_FakeAdmin]:
    _FakeAdmin.instances = []
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", _FakeAdmin)
    return _FakeAdmin


async def test_ensure_topics_sends_partitions_replication_and_topic_configs(
    fake_admin: type[_FakeAdmin],
) -> None:
    settings = KafkaSettings(replication_factor=3, min_insync_replicas=2)
    specs = all_topics(HOSPITALS, settings.durability)

    created = await kafka.ensure_topics(settings, specs)

    (admin,) = fake_admin.instances
    requested = {t.name: t for t in admin.requested}
    assert "care.cases" not in requested, "an existing topic is left alone"
    assert sorted(created) == sorted(requested) == sorted(s.name for s in specs[1:])
    for spec in specs[1:]:
        sent = requested[spec.name]
        assert sent.num_partitions == spec.partitions
        assert sent.replication_factor == 3
        assert sent.topic_configs == {
            "min.insync.replicas": "2",
            "retention.ms": str(spec.retention_ms),
        }


async def test_ensure_topics_does_nothing_where_the_platform_declares_topics(
    fake_admin: type[_FakeAdmin],
) -> None:
    settings = KafkaSettings(create_topics=False)
    assert await kafka.ensure_topics(settings, all_topics(HOSPITALS)) == []
    assert fake_admin.instances == [], "no admin client, so no Describe or Create ACL needed"


def test_differences_names_what_drifted() -> None:
    spec = TopicSpec("care.cases.dlq", 1, 14 * DAY_MS, 3, 2)
    matching = Observed(1, 3, {"retention.ms": "1209600000", "min.insync.replicas": "2"})
    assert differences(spec, matching) == []
    assert differences(spec, None) == ["missing"]
    assert differences(spec, Observed(2, 1, {"retention.ms": "604800000"})) == [
        "partitions 2, declared 1",
        "replication factor 1, declared 3",
        "min.insync.replicas unset, declared 2",
        "retention.ms 604800000, declared 1209600000",
    ]


def test_topics_job_lists_every_declaration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CARELINK_KAFKA_MIN_INSYNC_REPLICAS", "2")
    assert topics_job.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == [
        "TOPIC",
        "PARTITIONS",
        "REPLICATION",
        "MIN.INSYNC",
        "RETENTION",
    ]
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in lines[1:]}
    assert rows["care.cases"] == ["12", "3", "2", "30d"]
    assert rows["care.cases.dlq"] == ["1", "3", "2", "14d"]
