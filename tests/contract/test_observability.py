"""deploy/observability agrees with the code, docker-compose.yml and the runbook.

No servers: the Prometheus configuration, alert rules, Grafana provisioning and
dashboard are parsed and compared with the metrics services/lib/runtime/metrics.py
defines, the services' health ports in docker-compose.yml and the alert entries of
docs/operators.md. promtool (from Debian's `prometheus` package) checks the rules and
the configuration, runs the alert unit tests of alerts.test.yml and parses every
dashboard query; where it is not installed it is taken, without installing anything,
from the package's .deb (`apt-get download`), and the tests that need it skip with the
reason when neither works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from services.lib.runtime import metrics
from services.lib.runtime.health import health_app
from services.tools.stack.deployables import SERVICES
from tests.contract.test_compose import _environment, _interpolated, _published

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS_DIR = OBSERVABILITY / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR = OBSERVABILITY / "grafana"
DASHBOARD = GRAFANA_DIR / "carelink.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "carelink.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "carelink.yml"
RUNBOOK = ROOT / "docs" / "operators.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"

PROFILE = "observability"
OBSERVABILITY_SERVICES = {"prometheus", "grafana", "jaeger", "kafka-exporter"}

# Label names a carelink metric may have: names of services, consumers, topics,
# outcomes, checks, task kinds and priorities. Never an id or a payload value.
# from_status, to_status: FHIR Task statuses of the contract, a closed set of words.
ALLOWED_LABELS = {
    "service",
    "consumer",
    "outcome",
    "source_topic",
    "check",
    "kind",
    "priority",
    "from_status",
    "to_status",
    "route",  # the console's route templates, e.g. /api/tasks/{service}/{task_id}
}

# Metrics the rules and the dashboard may use that carelink does not define, with who
# exports them: the scrape job that must exist for them.
EXTERNAL_METRICS = {
    "up": "prometheus",  # synthesised by Prometheus for every target
    "kafka_consumergroup_lag": "kafka-exporter",
    "kafka_consumergroup_current_offset": "kafka-exporter",
}

# Dashboard variables, replaced by a value of the right kind before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$service": ".*"}

# --------------------------------------------------------------------------- helpers


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        target["expr"]
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def _variable_queries() -> list[str]:
    """The PromQL inside the dashboard's `label_values(<selector>, label)` variables."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((?P<selector>.+),\s*\w+\)", text.strip())
        assert match, f"variable {variable['name']}: not label_values(selector, label): {text}"
        found.append(match.group("selector"))
    return found


def _grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown dashboard variable in {expr}"
    return expr


_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}
_SELECTOR = re.compile(r"(?<![\w.:])(?P<name>[a-zA-Z_:][\w:]*)\s*(?P<labels>\{[^}]*\})?")


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every vector selector in a PromQL expression.

    Not a full parser, but enough for the expressions here: grouping clauses, ranges,
    durations and strings are removed first; an identifier followed by "(" is a function
    or an aggregation, a keyword is a keyword; every other identifier is a metric.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    found = []
    for match in _SELECTOR.finditer(text):
        name = match.group("name")
        following = text[match.end() :].lstrip()
        if name.lower() in _KEYWORDS or (following.startswith("(") and not match.group("labels")):
            continue
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", match.group("labels") or ""))
        found.append((name, labels))
    return found


def _carelink_metrics() -> dict[str, set[str]]:
    """Every sample name the services expose (counter `_total`, histogram `_bucket`…),
    with the metric's label names."""
    exposed: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, kind = value._name, str(value._type)
        labels = set(value._labelnames)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(kind, [""]):
            exposed[name + suffix] = labels
    return exposed


def _runbook_alert_headings() -> list[str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    return re.findall(r"^###\s+`?(Carelink\w+)`?\s*$", text, flags=re.MULTILINE)


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _runbook_anchors() -> set[str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    return {_github_anchor(h) for h in re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.MULTILINE)}


# --------------------------------------------------------------------------- promtool

PROMTOOL_CACHE = ROOT / ".local" / "tools" / "promtool"


def _find_promtool() -> tuple[str | None, str]:
    """promtool's path, or None and why not.

    CARELINK_PROMTOOL, else on PATH, else extracted once from Debian's `prometheus`
    package into .local/tools (apt-get download + dpkg-deb: nothing installed, no root).
    """
    explicit = os.environ.get("CARELINK_PROMTOOL")
    if explicit:
        return (explicit, "") if Path(explicit).is_file() else (None, f"no {explicit}")
    on_path = shutil.which("promtool")
    if on_path:
        return on_path, ""
    cached = PROMTOOL_CACHE / "usr" / "bin" / "promtool"
    if cached.is_file():
        return str(cached), ""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None, "promtool not found; install Debian's `prometheus` package for it"
    # Per process, then renamed into place: parallel sessions never see half a tree.
    download = PROMTOOL_CACHE.parent / f"download-{os.getpid()}"
    download.mkdir(parents=True, exist_ok=True)
    try:
        fetched = subprocess.run(
            ["apt-get", "download", "prometheus"],
            cwd=download,
            capture_output=True,
            text=True,
            timeout=300,
        )
        debs = sorted(download.glob("prometheus_*.deb"))
        if fetched.returncode != 0 or not debs:
            return None, (
                "promtool not found and `apt-get download prometheus` failed "
                f"({fetched.stderr.strip()[-200:]}); install Debian's `prometheus` package"
            )
        tree = download / "tree"
        subprocess.run(
            ["dpkg-deb", "-x", str(debs[-1]), str(tree)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        if not cached.is_file():
            shutil.rmtree(PROMTOOL_CACHE, ignore_errors=True)
            tree.rename(PROMTOOL_CACHE)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"promtool not found and could not be extracted: {exc}"
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return (str(cached), "") if cached.is_file() else (None, "the package holds no promtool")


@pytest.fixture(scope="module")
def promtool() -> str:
    path, why = _find_promtool()
    if path is None:
        pytest.skip(why)
    return path


def _run_promtool(promtool: str, *args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(raw_compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _interpolated(raw_compose)["services"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scrape_jobs() -> dict[str, dict[str, Any]]:
    config = _yaml(PROMETHEUS_CONFIG)
    return {job["job_name"]: job for job in config["scrape_configs"]}


# --------------------------------------------------------------------------- metrics


def test_no_metric_label_can_carry_personal_data() -> None:
    exposed = _carelink_metrics()
    assert "carelink_messages_total" in exposed, "the metrics walk found nothing"
    for name, labels in exposed.items():
        assert name.startswith("carelink_"), name
        assert labels <= ALLOWED_LABELS, f"{name}: labels {labels - ALLOWED_LABELS}"


def test_the_metrics_endpoint_is_served_on_the_health_port() -> None:
    async def ok() -> bool:
        return True

    app = health_app(service="probe", live=lambda: True, checks={"broker": ok})
    paths = {getattr(route, "path", None) for route in app.routes}
    assert {"/metrics", "/health/ready", "/health/live"} <= paths


# --------------------------------------------------------------------------- alert rules


def test_alert_rules_parse_and_every_alert_is_complete() -> None:
    alerts = _alerts()
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert len(names) >= 8, names
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"Carelink[A-Z]\w+", name), name
        assert isinstance(rule["expr"], str), name
        assert rule["expr"].strip(), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["runbook_url"] == f"docs/operators.md#{name.lower()}", name
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", str(rule["for"])), f"{name}: for {rule['for']}"


def test_the_required_conditions_each_have_an_alert() -> None:
    """Issue 11: outbox backlog and age, set-aside rows, dead letters growing, consumer
    lag, a service not ready or down, escalations piling up."""
    named = {name for rule in _alerts() for name, _ in _selectors(rule["expr"])}
    required = {
        "carelink_outbox_backlog",
        "carelink_outbox_oldest_age_seconds",
        "carelink_outbox_set_aside",
        "carelink_dead_letters_total",
        "kafka_consumergroup_lag",
        "carelink_ready",
        "up",
        "carelink_tasks_overdue",
    }
    assert required <= named, f"no alert reads {required - named}"


def test_every_alert_has_a_runbook_entry_and_every_entry_an_alert() -> None:
    alerts = sorted(rule["alert"] for rule in _alerts())
    headings = _runbook_alert_headings()
    assert len(headings) == len(set(headings)), f"a runbook entry twice: {headings}"
    assert sorted(headings) == alerts, (
        f"only in alerts.yml: {sorted(set(alerts) - set(headings))}; "
        f"only in docs/operators.md: {sorted(set(headings) - set(alerts))}"
    )
    anchors = _runbook_anchors()
    for rule in _alerts():
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"


def test_the_runbooks_own_links_resolve() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    links = set(re.findall(r"\]\(#([\w-]+)\)", text))
    assert links, "no internal links found"
    assert links <= _runbook_anchors(), f"no heading for {sorted(links - _runbook_anchors())}"


def test_every_alert_has_a_promtool_unit_test_that_expects_it_to_fire() -> None:
    tests = _yaml(ALERT_TESTS)
    assert tests["rule_files"] == [ALERTS.name]
    firing = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    missing = {rule["alert"] for rule in _alerts()} - firing
    assert not missing, f"alerts.test.yml never expects these to fire: {sorted(missing)}"


def test_every_metric_in_the_rules_and_dashboard_is_defined_with_those_labels(
    scrape_jobs: dict[str, dict[str, Any]],
) -> None:
    exposed = _carelink_metrics()
    # Labels every scraped series has besides its own: the job, the instance, and the
    # target's `service` label in the carelink job.
    target_labels = {"job", "instance", "service"}
    expressions = [rule["expr"] for rule in _rules()]
    expressions += [_grafana_to_promql(q) for q in [*_dashboard_queries(), *_variable_queries()]]
    assert len(expressions) > 20, "no dashboard queries found"
    seen = set()
    for expr in expressions:
        selectors = _selectors(expr)
        assert selectors, f"no metric found in {expr}"
        for name, labels in selectors:
            seen.add(name)
            if name in EXTERNAL_METRICS:
                assert EXTERNAL_METRICS[name] in scrape_jobs, f"{name}: nothing scrapes it"
                continue
            assert name in exposed, f"{name} (in {expr!r}) is not defined by the code"
            unknown = labels - exposed[name] - target_labels
            assert not unknown, f"{name} has no label {unknown} (in {expr!r})"
    assert "carelink_handler_seconds_bucket" in seen, seen


def test_promtool_checks_the_configuration_and_the_rules(promtool: str) -> None:
    output = _run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG.name)
    assert f"SUCCESS: {len(_rules())} rules found" in output, output


def test_promtool_alert_unit_tests_pass(promtool: str) -> None:
    output = _run_promtool(promtool, "test", "rules", ALERT_TESTS.name)
    assert "SUCCESS" in output, output


def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    queries = [_grafana_to_promql(q) for q in [*_dashboard_queries(), *_variable_queries()]]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    output = _run_promtool(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert f"SUCCESS: {len(queries)} rules found" in output, output


# --------------------------------------------------------------------------- Prometheus


def test_carelink_scrape_targets_are_the_services_health_ports(
    scrape_jobs: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]]
) -> None:
    job = scrape_jobs["carelink"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scheme", "http") == "http"
    targets = {
        target: config.get("labels", {})
        for config in job["static_configs"]
        for target in config["targets"]
    }
    expected = {
        f"{name}:{_environment(services[name])['CARELINK_HEALTH_PORT']}": name for name in SERVICES
    }
    assert set(targets) == set(expected)
    for target, labels in targets.items():
        # The `service` label `up` gets must be the one the service's own metrics carry.
        assert labels.get("service") == expected[target], target
    assert job.get("honor_labels") is True


def test_every_scrape_target_is_a_compose_service_and_port(
    scrape_jobs: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]]
) -> None:
    ports = {
        "prometheus": "9090",
        "kafka-exporter": "9308",
        "console": _environment(services["console"])["CARELINK_CONSOLE_METRICS_PORT"],
    }
    for name, job in scrape_jobs.items():
        for config in job["static_configs"]:
            for target in config["targets"]:
                host, _, port = target.rpartition(":")
                if name == "prometheus":
                    assert host == "localhost"
                    continue
                assert host in services, f"{name}: {host} is no compose service"
                if host in SERVICES:
                    assert port == _environment(services[host])["CARELINK_HEALTH_PORT"]
                else:
                    assert port == ports[host], target


def test_the_alert_rules_are_loaded_from_the_mounted_folder(
    services: dict[str, dict[str, Any]],
) -> None:
    config = _yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == [ALERTS.name]
    prometheus = services["prometheus"]
    mounts = [str(volume).split(":") for volume in prometheus["volumes"]]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = config_arg.partition("=")[2]
    folder = [m for m in mounts if (ROOT / m[0]).resolve() == PROMETHEUS_DIR]
    assert folder, f"{PROMETHEUS_DIR} is not mounted: {mounts}"
    assert config_path == f"{folder[0][1]}/{PROMETHEUS_CONFIG.name}"


# --------------------------------------------------------------------------- Grafana


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    mounts = {
        (ROOT / source).resolve(): target
        for source, target, *_ in (str(v).split(":") for v in grafana["volumes"])
    }
    for path in (DASHBOARD, DATASOURCES.parent, DASHBOARD_PROVIDERS.parent):
        assert path.exists(), path
        assert path in mounts, f"{path} is not mounted into grafana"
    assert mounts[DATASOURCES.parent] == "/etc/grafana/provisioning/datasources"
    assert mounts[DASHBOARD_PROVIDERS.parent] == "/etc/grafana/provisioning/dashboards"

    providers = _yaml(DASHBOARD_PROVIDERS)["providers"]
    folders = {provider["options"]["path"] for provider in providers}
    assert str(Path(mounts[DASHBOARD]).parent) in folders

    sources = {source["uid"]: source for source in _yaml(DATASOURCES)["datasources"]}
    prometheus = urlsplit(sources["carelink-prometheus"]["url"])
    assert (prometheus.hostname, prometheus.port) == ("prometheus", 9090)
    assert _published(services["prometheus"]["ports"][0])[2] == "9090"
    jaeger = urlsplit(sources["carelink-jaeger"]["url"])
    assert (jaeger.hostname, jaeger.port) == ("jaeger", 16686)

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {
        target["datasource"]["uid"]
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    } | {panel["datasource"]["uid"] for panel in _panels(dashboard) if "datasource" in panel}
    assert used == {"carelink-prometheus"}, used
    home = _environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home == mounts[DASHBOARD]


def test_the_dashboard_shows_what_operators_act_on() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    shown = {name for q in _dashboard_queries() for name, _ in _selectors(_grafana_to_promql(q))}
    required = {
        "carelink_messages_total",  # throughput
        "carelink_handler_seconds_bucket",  # handler latency
        "carelink_outbox_backlog",
        "carelink_outbox_oldest_age_seconds",
        "carelink_outbox_set_aside",
        "carelink_dead_letters_total",
        "kafka_consumergroup_lag",
        "carelink_ready",
        "up",
        "carelink_tasks_overdue",
        "carelink_escalations_total",
    }
    assert required <= shown, f"not on the dashboard: {required - shown}"
    assert dashboard["uid"] == "carelink"


# --------------------------------------------------------------------------- compose


def test_observability_services_start_only_with_their_profile(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) >= OBSERVABILITY_SERVICES
    for name, service in services.items():
        profiles = service.get("profiles") or []
        if name in OBSERVABILITY_SERVICES:
            assert profiles == [PROFILE], name
        else:
            assert PROFILE not in profiles, name
    for name in OBSERVABILITY_SERVICES:
        for volume in services[name].get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_kafka_exporter_reads_the_brokers_internal_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka_env = _environment(services["kafka"])
    advertised = {
        listener.split("://", 1)[1]
        for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    command = services["kafka-exporter"]["command"]
    servers = [arg.partition("=")[2] for arg in command if arg.startswith("--kafka.server=")]
    assert servers, command
    assert set(servers) <= advertised, (servers, advertised)
    assert services["kafka-exporter"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_services_export_traces_to_jaeger_only_when_told(
    raw_compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    # No value in the file: compose passes the variable through from the shell or .env
    # when it is set there, and leaves it unset in the container otherwise, so without
    # the profile no service tries to reach a Jaeger that is not there.
    for name in SERVICES:
        environment = raw_compose["services"][name]["environment"]
        assert isinstance(environment, dict), name
        for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            assert key in environment, f"{name}: {key} not passed through"
            assert environment[key] is None, f"{name}: {key} is set in the file"
    jaeger = services["jaeger"]
    assert _environment(jaeger)["COLLECTOR_OTLP_ENABLED"] == "true"
    published = {_published(port)[2] for port in jaeger["ports"]}
    assert {"16686", "4317", "4318"} <= published
