"""The chaos plans and the harness's pure helpers: no servers."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

from services.tools.chaos.harness import Options, _still_finishing, check_loopback, window_for
from services.tools.chaos.load import split
from services.tools.chaos.scenarios import SCENARIOS, PlanContext, Step
from services.tools.stack.deployables import SERVICES
from services.tools.stack.system import SystemInfo


def plan(name: str, *, quick: bool = False, seed: int = 1, window: float = 118.0) -> list[Step]:
    return SCENARIOS[name].plan(random.Random(seed), PlanContext(window, quick, None))


def test_the_five_scenarios_are_there() -> None:
    assert list(SCENARIOS) == [
        "kill",
        "two-instances",
        "broker-freeze",
        "postgres",
        "slow-consumer",
    ]


@pytest.mark.parametrize(("quick", "kills"), [(False, 3), (True, 2)])
def test_every_service_is_killed_several_times_with_room_to_restart(
    quick: bool, kills: int
) -> None:
    window = 60.0 if quick else 118.0
    steps = plan("kill", quick=quick, window=window)
    assert Counter(s.target for s in steps) == dict.fromkeys(SERVICES, kills)
    for service in SERVICES:
        times = sorted(s.at_s for s in steps if s.target == service)
        assert all(b - a >= 8.0 for a, b in itertools.pairwise(times))
    assert all(0 < s.at_s < window for s in steps)
    assert all(s.action == "kill-restart" and s.duration_s <= 2.5 for s in steps)


def test_one_instance_of_each_pair_is_killed() -> None:
    steps = plan("two-instances")
    assert sorted(s.target.split("#")[0] for s in steps) == sorted(SERVICES)
    assert {s.action for s in steps} == {"kill"}


def test_the_broker_is_frozen_for_fifteen_seconds_inside_the_window() -> None:
    [step] = plan("broker-freeze")
    assert (step.action, step.target, step.duration_s) == ("freeze-broker", "broker", 15.0)
    assert step.at_s + step.duration_s < 118.0


def test_postgres_restarts_then_one_database_closes_for_thirty_seconds() -> None:
    restart, close = plan("postgres", window=110.0)
    assert restart.action == "restart-postgres"
    assert close.action == "close-database"
    assert close.target in SERVICES
    assert close.duration_s == 30.0
    assert restart.at_s < close.at_s
    chosen = SCENARIOS["postgres"].plan(random.Random(1), PlanContext(110.0, False, "outcome"))
    assert chosen[1].target == "outcome"


def test_the_slow_consumer_is_paused_then_resumed() -> None:
    [step] = plan("slow-consumer")
    assert step.action == "pause"
    assert step.target in SERVICES
    assert step.duration_s == 40.0
    [quick] = plan("slow-consumer", quick=True, window=60.0)
    assert quick.duration_s == 20.0


def test_the_same_seed_gives_the_same_plan() -> None:
    for name in SCENARIOS:
        assert plan(name, seed=5) == plan(name, seed=5)


def test_the_window_leaves_room_for_the_faults_and_follows_the_count() -> None:
    options = Options(referrals=300, quick=True, seed=1, hospitals=["h"], base_dir=Path("/tmp"))
    assert window_for(SCENARIOS["postgres"], options) == 80.0
    options = Options(referrals=2000, quick=False, seed=1, hospitals=["h"], base_dir=Path("/tmp"))
    assert window_for(SCENARIOS["kill"], options) == pytest.approx(2000 / 17.0)


def test_split_spreads_the_referrals_over_the_hospitals() -> None:
    assert split(2000, 3) == [667, 667, 666]
    assert split(2, 3) == [1, 1, 0]


def test_still_finishing_looks_at_the_last_thirty_seconds() -> None:
    assert _still_finishing([(0.0, 10), (20.0, 50), (40.0, 60)])
    assert not _still_finishing([(0.0, 10), (20.0, 60), (40.0, 60), (55.0, 60)])
    assert not _still_finishing([(0.0, 10)])
    assert not _still_finishing([])


def _info(bootstrap: str, postgres: str) -> SystemInfo:
    return SystemInfo(
        infrastructure="embedded",
        kafka_bootstrap=bootstrap,
        postgres_admin_url=f"postgresql://postgres@{postgres}:5432/postgres",
        databases={"intake": f"postgresql://postgres@{postgres}:5432/x"},
        health={},
        metrics={},
        logs={},
        infrastructure_logs=None,
    )


def test_only_loopback_servers_are_accepted() -> None:
    check_loopback(_info("127.0.0.1:9092", "127.0.0.1"))
    check_loopback(_info("localhost:9092,127.0.0.1:9093", "localhost"))
    with pytest.raises(RuntimeError, match="loopback"):
        check_loopback(_info("kafka.example.org:9092", "127.0.0.1"))
    with pytest.raises(RuntimeError, match=r"10\.0\.0\.5"):
        check_loopback(_info("127.0.0.1:9092", "10.0.0.5"))
