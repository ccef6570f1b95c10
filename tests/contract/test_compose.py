"""docker-compose.yml, deploy/Dockerfile and the database init script agree with the code.

No servers and no Docker: the files are parsed and compared with the settings
models, the repository layout and each other. No Docker engine runs on the
development machines, so these checks stand between a typo and a broken
`docker compose up`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import AliasChoices, BaseModel

from services.fhirgateway.settings import FhirGatewaySettings
from services.intake.settings import IntakeSettings
from services.lib.runtime.settings import KafkaSettings, ServiceSettings
from services.outcome.settings import OutcomeSettings
from services.portal.settings import PortalSettings
from services.referral.settings import ReferralSettings
from services.scheduling.settings import SchedulingSettings
from services.tools.stack.deployables import (
    FHIR_GATEWAY,
    FHIR_GATEWAY_PORT,
    PORTAL,
    PORTAL_PORT,
    SERVICES,
)
from services.tools.stack.deployables import HEALTH_PORTS as DEFAULT_HEALTH_PORTS
from tests.imports import import_closure, module_file

# Each service's own settings class (tests may import deployables; tools may not).
SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "referral": ReferralSettings,
    "scheduling": SchedulingSettings,
    "outcome": OutcomeSettings,
}
# The hospital-side deployables (issues 13, 14): services with their own databases
# that act as hospitals towards carelink; people and EHRs reach them, the console not.
HOSPITAL_SIDE: dict[str, type[ServiceSettings]] = {
    PORTAL: PortalSettings,
    FHIR_GATEWAY: FhirGatewaySettings,
}
HOSPITAL_SIDE_PORTS = {PORTAL: PORTAL_PORT, FHIR_GATEWAY: FHIR_GATEWAY_PORT}

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LOCK_FILE = ROOT / "requirements.lock"
INIT_SQL = ROOT / "deploy" / "postgres" / "init-databases.sql"

Compose = dict[str, Any]

# --------------------------------------------------------------------------- helpers

_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))"
)


def _interpolate(value: str) -> str:
    """Compose's variable substitution on a fresh checkout: nothing set, defaults apply."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op.endswith("-"):
            return match.group("arg")
        if op.endswith("?"):
            raise AssertionError(f"{match.group(0)} needs a variable set: no out-of-the-box start")
        return ""

    return _VARIABLE.sub(replace, value)


def _interpolated(node: Any) -> Any:
    if isinstance(node, str):
        return _interpolate(node)
    if isinstance(node, dict):
        return {key: _interpolated(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(item) for item in node]
    return node


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _seconds(duration: str | int | float) -> float:
    """A compose duration ("30s", "1m30s", "500ms", or a bare number of seconds)."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts, f"not a duration: {duration!r}"
    assert "".join(n + u for n, u in parts) == duration.replace(" ", ""), duration
    return sum(float(number) * units[unit] for number, unit in parts)


def _published(port: str | int | dict[str, Any]) -> tuple[str | None, str, str]:
    """(host ip, host port, container port) of one `ports` entry, short or long syntax."""
    if isinstance(port, dict):
        return port.get("host_ip"), str(port.get("published", "")), str(port["target"])
    spec = str(port).split("/", 1)[0]
    ipv6 = re.match(r"^\[(?P<ip>[^]]+)\]:(?P<rest>.*)$", spec)
    if ipv6:
        host_port, _, target = ipv6.group("rest").rpartition(":")
        return ipv6.group("ip"), host_port, target
    parts = spec.split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, "", parts[0]


def _setting_names(model: type[BaseModel]) -> set[str]:
    """The environment variables a pydantic-settings model reads, nested models left out."""
    prefix = str(model.model_config.get("env_prefix", ""))
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            continue
        names.add(f"{prefix}{name}".upper())
        # A setting read under names of its own (e.g. the console's CARELINK_ENV).
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
    return names


def _allowed_settings_variables() -> set[str]:
    from services.console.settings import ConsoleSettings

    return (
        set().union(*(_setting_names(cls) for cls in (*SETTINGS.values(), *HOSPITAL_SIDE.values())))
        | _setting_names(KafkaSettings)
        | _setting_names(ConsoleSettings)
    )


def _created_databases() -> dict[str, str]:
    """Database name -> owner role, as created by the init script."""
    sql = re.sub(r"--[^\n]*", "", INIT_SQL.read_text(encoding="utf-8"))
    created = re.findall(
        r"CREATE\s+DATABASE\s+\"?(\w+)\"?(?:\s+WITH)?\s+OWNER\s*=?\s*\"?(\w+)\"?", sql, re.I
    )
    return dict(created)


def _created_roles() -> set[str]:
    sql = re.sub(r"--[^\n]*", "", INIT_SQL.read_text(encoding="utf-8"))
    return set(re.findall(r"CREATE\s+(?:ROLE|USER)\s+\"?(\w+)\"?", sql, re.I))


def _dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        instruction, _, arguments = logical.partition(" ")
        yield instruction.upper(), arguments.strip()
        logical = ""


def _arguments(arguments: str) -> list[str]:
    if arguments.startswith("["):
        return [str(part) for part in json.loads(arguments)]
    return shlex.split(arguments)


Instructions = list[tuple[str, str]]


def _stages() -> list[Instructions]:
    """The Dockerfile's stages in order, each its instructions from its FROM on; global
    ARGs (before the first FROM) are left out."""
    stages: list[Instructions] = []
    for instruction, arguments in _dockerfile_instructions():
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, arguments))
    assert stages, "deploy/Dockerfile has no FROM"
    return stages


def _final_stage() -> Instructions:
    """The stage that becomes the image."""
    return _stages()[-1]


def _base_image(stage: Instructions) -> str:
    """A stage's base image, global ARG defaults substituted."""
    defaults: dict[str, str] = {}
    for instruction, arguments in _dockerfile_instructions():
        if instruction == "FROM":
            break
        if instruction == "ARG":
            name, _, default = arguments.partition("=")
            defaults[name.strip()] = default.strip()
    image = stage[0][1].split()[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), ""), image)


def _copy_sources(stage: Instructions | None = None) -> list[str]:
    """Paths of the build context copied by COPY/ADD (all stages, or one); a copy from
    another stage (`--from=`) copies nothing from the context."""
    sources = []
    instructions = stage if stage is not None else list(_dockerfile_instructions())
    for instruction, arguments in instructions:
        if instruction not in {"COPY", "ADD"}:
            continue
        parts = _arguments(arguments)
        if any(part.startswith("--from=") for part in parts):
            continue
        # Flags such as --chown are not sources.
        parts = [part for part in parts if not part.startswith("--")]
        sources += [part.removeprefix("./").rstrip("/") for part in parts[:-1]]
    return sources


def _dockerfile_env() -> dict[str, str]:
    """The environment the image runs with: the final stage's ENV instructions."""
    env: dict[str, str] = {}
    for instruction, arguments in _final_stage():
        if instruction != "ENV":
            continue
        tokens = shlex.split(arguments)
        if "=" not in tokens[0]:  # legacy `ENV KEY value`
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def _locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock: distribution name -> (pinned version, its hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    logical = ""
    for raw in LOCK_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        requirement, *options = logical.split(" --")
        name, _, version = requirement.split(";")[0].strip().partition("==")
        hashes = [o.removeprefix("hash=").strip() for o in options if o.startswith("hash=")]
        pins[canonicalize_name(name)] = (version.strip(), hashes)
        logical = ""
    return pins


def _imported_top_level_names(directory: Path) -> set[str]:
    names: set[str] = set()
    for path in directory.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _covered(path: str, sources: list[str]) -> bool:
    """Whether a COPY of one of `sources` (or of the whole context) puts `path` in the image."""
    return any(src in {"", "."} or path == src or path.startswith(src + "/") for src in sources)


def _runtime_distributions() -> set[str]:
    """pyproject's runtime dependencies and everything they require, as installed here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pending = [Requirement(spec) for spec in project["dependencies"]]
    resolved: set[str] = set()
    expanded: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in expanded:
            continue
        expanded.add(key)
        resolved.add(name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for spec in requires:
            dependency = Requirement(spec)
            marker = dependency.marker
            extras = requirement.extras or {""}
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(dependency)
    return resolved


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> Compose:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml is not a mapping"
    return _interpolated(loaded)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def services(compose: Compose) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- services


def test_each_of_the_four_services_runs_its_own_package(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES:
        assert name in services, f"docker-compose.yml has no {name!r} service"
        assert _command(services[name]) == ["python", "-m", f"services.{name}"]
        package = ROOT / "services" / name
        assert (package / "__init__.py").is_file(), f"services/{name}/ is not a package yet"
        assert (package / "__main__.py").is_file(), (
            f"services/{name}/__main__.py is missing: `python -m services.{name}` cannot run"
        )


def test_each_service_uses_its_own_database_created_by_the_init_script(
    services: dict[str, dict[str, Any]],
) -> None:
    created = _created_databases()
    roles = _created_roles()
    databases = {}
    for name in SERVICES:
        url = urlsplit(_environment(services[name])["CARELINK_DATABASE_URL"])
        assert url.scheme in {"postgresql", "postgres"}, url.scheme
        assert url.hostname in services, f"{name}: database host {url.hostname!r} is no service"
        database = url.path.lstrip("/")
        assert database in created, f"{name}: {database!r} is not created in {INIT_SQL.name}"
        assert url.username in roles, f"{name}: role {url.username!r} is not created"
        assert created[database] == url.username, f"{name}: {url.username!r} does not own it"
        databases[name] = database
    assert len(set(databases.values())) == len(SERVICES), f"shared databases: {databases}"


def test_init_script_is_mounted_into_the_postgres_entrypoint(
    services: dict[str, dict[str, Any]],
) -> None:
    postgres = next(s for s in services.values() if str(s.get("image", "")).startswith("postgres"))
    assert str(postgres["image"]).split(":")[1].split(".")[0] == "17"
    mounts = [str(volume).split(":") for volume in postgres.get("volumes", [])]
    init = [m for m in mounts if m[1].startswith("/docker-entrypoint-initdb.d/")]
    assert init, "init-databases.sql is not mounted into /docker-entrypoint-initdb.d"
    assert all((ROOT / m[0]).resolve() == INIT_SQL for m in init)


def test_every_carelink_variable_in_compose_is_a_setting(
    services: dict[str, dict[str, Any]],
) -> None:
    allowed = _allowed_settings_variables()
    used = {
        (service_name, key)
        for service_name, service in services.items()
        for key in _environment(service)
        if key.startswith("CARELINK_")
    }
    assert used, "no CARELINK_ variables found"
    unknown = sorted(f"{service}: {key}" for service, key in used if key not in allowed)
    assert not unknown, f"not fields of the services' settings: {unknown}"


def test_each_service_environment_parses_into_settings_for_that_service(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SERVICES:
        with monkeypatch.context() as patch:
            for key in _allowed_settings_variables():
                patch.delenv(key, raising=False)
            env = _environment(services[name])
            for key, value in env.items():
                patch.setenv(key, value)
            settings = SETTINGS[name]()
        assert settings.service == name
        assert settings.resolved_database_url() == env["CARELINK_DATABASE_URL"]
        assert settings.health_host == "0.0.0.0"
        assert settings.log_format == "json"
        assert settings.kafka.enable_idempotence is True
        assert settings.kafka.session_timeout_ms >= 6000, "Apache Kafka's minimum by default"


def test_the_portal_and_fhir_gateway_run_as_services_with_their_own_databases(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.lib.signin.startup import ENV_VAR as LOCAL_RUN_ENV

    created, roles = _created_databases(), _created_roles()
    databases = {
        urlsplit(_environment(services[n])["CARELINK_DATABASE_URL"]).path for n in SERVICES
    }
    for name, model in HOSPITAL_SIDE.items():
        service = services[name]
        assert _command(service) == ["python", "-m", f"services.{name}"]
        env = _environment(service)
        with monkeypatch.context() as patch:
            for key in _allowed_settings_variables():
                patch.delenv(key, raising=False)
            for key, value in env.items():
                patch.setenv(key, value)
            settings = model()
        assert settings.service == name
        assert settings.health_host == "0.0.0.0"
        assert settings.kafka.enable_idempotence is True
        assert not getattr(settings, "api_callers", None), f"{name} serves no /v1 API"
        # Its own database, created by the init script, owned by its own role.
        url = urlsplit(settings.resolved_database_url())
        assert url.hostname in services
        assert created.get(url.path.lstrip("/")) == url.username == f"carelink_{name}", name
        assert url.username in roles
        assert url.path not in databases, f"{name} shares a database"
        # Like the services: waits for the topics, checks /health/ready, stops gracefully.
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert "/health/ready" in " ".join(service["healthcheck"]["test"])
        period = _seconds(service.get("stop_grace_period", "10s"))
        assert period > settings.shutdown_grace_s, name
        published = {_published(p)[2]: _published(p)[1] for p in service["ports"]}
        assert published[env["CARELINK_HEALTH_PORT"]] == str(HOSPITAL_SIDE_PORTS[name]), name
        # Each reads its configuration file from a mount, not the image's defaults.
        file_setting = {PORTAL: "portal_users_file", FHIR_GATEWAY: "fhir_clients_file"}[name]
        targets = {str(v).split(":")[1] for v in service.get("volumes", [])}
        assert str(getattr(settings, file_setting)) in targets, name
    # No live demo defaults: the portal's demo accounts and a random session key only in
    # an explicit local run (CARELINK_ENV=local in .env), as the console.
    portal = _environment(services[PORTAL])
    assert portal[LOCAL_RUN_ENV] != "local"
    assert portal["CARELINK_PORTAL_SECRET_KEY"] == ""
    # The gateway exits without an EHR client, and the repository lists none: it starts
    # only when asked for (`--profile fhir`), with the clients file given.
    assert services[FHIR_GATEWAY]["profiles"] == ["fhir"]
    assert "profiles" not in services[PORTAL]


# The services whose HTTP APIs the console calls.
CONSOLE_CALLS = ("intake", "referral", "scheduling", "outcome")


def test_the_console_holds_no_database_url_only_the_services_apis(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.console.settings import ConsoleSettings

    console = services["console"]
    env = _environment(console)
    assert not [key for key in env if "DATABASE_URL" in key], "the console is a gateway"
    assert not [value for value in env.values() if value.startswith("postgres")]
    for name in CONSOLE_CALLS:
        # On the internal network, at the port the service serves its API (its health port).
        port = _environment(services[name])["CARELINK_HEALTH_PORT"]
        assert env[f"CARELINK_CONSOLE_{name.upper()}_URL"] == f"http://{name}:{port}"
        assert console["depends_on"][name]["condition"] == "service_healthy", name
    with monkeypatch.context() as patch:
        for key in _allowed_settings_variables():
            patch.delenv(key, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        settings = ConsoleSettings()
    assert settings.api_token is not None


def test_each_service_the_console_calls_accepts_the_consoles_token(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _environment(services["console"])["CARELINK_CONSOLE_API_TOKEN"]
    for name in SERVICES:
        with monkeypatch.context() as patch:
            for key in _allowed_settings_variables():
                patch.delenv(key, raising=False)
            for key, value in _environment(services[name]).items():
                patch.setenv(key, value)
            settings = SETTINGS[name]()
        callers = getattr(settings, "api_callers", {})
        if name in CONSOLE_CALLS:
            assert set(callers) == {"console"}, name
            assert callers["console"].get_secret_value() == token, name
        else:
            assert not callers, f"{name} serves no API"


def test_stop_grace_period_outlasts_each_service_shutdown_grace(
    services: dict[str, dict[str, Any]],
) -> None:
    default_grace = ServiceSettings.model_fields["shutdown_grace_s"].default
    for name in SERVICES:
        env = _environment(services[name])
        grace = float(env.get("CARELINK_SHUTDOWN_GRACE_S", default_grace))
        # Docker's default is 10 s, no longer than the default grace: it must be set.
        period = _seconds(services[name].get("stop_grace_period", "10s"))
        assert period > grace, f"{name}: SIGKILL after {period}s, graceful shutdown takes {grace}s"


def test_every_published_port_binds_localhost_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name} bypasses port publishing"
        for port in service.get("ports", []):
            host_ip, _, _ = _published(port)
            assert host_ip == "127.0.0.1", f"{name}: {port!r} is reachable from the network"


def test_health_ports_are_published_distinctly_at_the_local_defaults(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES:
        container_port = _environment(services[name])["CARELINK_HEALTH_PORT"]
        published = {_published(p)[2]: _published(p)[1] for p in services[name].get("ports", [])}
        assert container_port in published, f"{name}: health port {container_port} not published"
        # The same host port as a locally run service, so docs and scripts need one list.
        assert published[container_port] == str(DEFAULT_HEALTH_PORTS[name])


def test_services_health_check_gets_health_ready_with_python(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES:
        test = services[name]["healthcheck"]["test"]
        command = " ".join(test) if isinstance(test, list) else str(test)
        assert "/health/ready" in command, name
        # The image is python:*-slim: there is no curl or wget in it.
        assert "python" in command, name
        assert "curl" not in command, name
        assert "wget" not in command, name


def test_kafka_and_postgres_have_health_checks_the_services_wait_for(
    services: dict[str, dict[str, Any]],
) -> None:
    assert "kafka-broker-api-versions" in str(services["kafka"]["healthcheck"]["test"]) or (
        "kafka-topics" in str(services["kafka"]["healthcheck"]["test"])
    )
    postgres_check = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in str(postgres_check)
    # Over TCP: during initdb the temporary server listens on the Unix socket only.
    assert "-h" in postgres_check
    for name in SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["kafka"]["condition"] == "service_healthy", name
        assert depends_on["postgres"]["condition"] == "service_healthy", name


def test_topics_job_creates_every_topic_before_any_service_starts(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    assert _command(topics) == ["python", "-m", "services.lib.runtime.topics", "--create"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    # A one-shot job: `unless-stopped`/`always` would re-run it after every success.
    restart = topics.get("restart", "no")
    assert restart in {"no", False} or str(restart).startswith("on-failure"), restart
    for name in SERVICES:
        condition = services[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully", name
        assert services[name].get("restart") == "unless-stopped", name
    assert (ROOT / "services" / "lib" / "runtime" / "topics.py").is_file() or (
        ROOT / "services" / "lib" / "runtime" / "topics" / "__main__.py"
    ).is_file(), "services.lib.runtime.topics does not exist yet"


def test_topics_job_reads_the_same_kafka_settings_as_the_services(
    services: dict[str, dict[str, Any]],
) -> None:
    topics_env = _environment(services["topics"])
    kafka_names = _setting_names(KafkaSettings)
    for name in SERVICES:
        env = _environment(services[name])
        for key in kafka_names & env.keys():
            assert topics_env.get(key) == env[key], f"topics and {name} differ on {key}"


def test_services_and_ui_reach_kafka_on_its_internal_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka_env = _environment(services["kafka"])
    advertised = {
        listener.split("://", 1)[1]
        for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    internal = {address for address in advertised if address.split(":")[0] in services}
    assert internal, f"no listener advertised under a service name: {advertised}"
    for name in (*SERVICES, "topics"):
        assert _environment(services[name])["CARELINK_KAFKA_BOOTSTRAP"] in internal, name
    ui = next(s for s in services.values() if "kafka-ui" in str(s.get("image", "")))
    assert _environment(ui)["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] in internal


def test_kafka_ui_is_the_maintained_kafbat_image(services: dict[str, dict[str, Any]]) -> None:
    images = [str(service.get("image", "")) for service in services.values()]
    assert not [image for image in images if "provectuslabs" in image]
    assert [image for image in images if image.startswith("ghcr.io/kafbat/kafka-ui:")]


def test_kafka_runs_in_kraft_mode_without_zookeeper(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = _environment(services["kafka"])
    roles = {role.strip() for role in kafka_env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}, roles
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka_env
    for name, service in services.items():
        assert "zookeeper" not in name.lower()
        assert "zookeeper" not in str(service.get("image", "")).lower(), name
        assert not [key for key in _environment(service) if "ZOOKEEPER" in key], name


def test_kafka_and_postgres_keep_their_data_in_named_volumes(compose: Compose) -> None:
    volumes = compose.get("volumes") or {}
    services = compose["services"]
    mounts = {
        name: [str(v).split(":")[0] for v in services[name].get("volumes", [])]
        for name in ("kafka", "postgres")
    }
    data_dir = _environment(services["kafka"])["KAFKA_LOG_DIRS"]
    assert any(str(v).split(":")[1] == data_dir for v in services["kafka"]["volumes"])
    for name, sources in mounts.items():
        assert any(source in volumes for source in sources), f"{name} data would not survive"


# --------------------------------------------------------------------------- Dockerfile


# What runs in production: the deployables' entry points and the topics job.
ENTRY_POINTS = [
    *(f"services.{name}.__main__" for name in (*SERVICES, "console")),
    "services.lib.runtime.topics",
]


def test_dockerfile_copies_what_the_deployables_import_and_no_tool() -> None:
    sources = _copy_sources(_final_stage())
    closure = import_closure(ENTRY_POINTS)
    modules = {
        str(path.relative_to(ROOT))
        for path in (module_file(name) for name in closure.local)
        if path is not None
    }
    assert "services/lib/runtime/service.py" in modules, "the import walk is broken"
    # Configuration the code reads from the repository at run time.
    from services.lib.policy.policy import DEFAULT_POLICY_DIR
    from services.lib.policy.registry import DEFAULT_REGISTRY_FILE

    needed = modules | {
        Path(default).relative_to(ROOT).as_posix()
        for default in (DEFAULT_REGISTRY_FILE, DEFAULT_POLICY_DIR)
    }
    missing = sorted(path for path in needed if not _covered(path, sources))
    assert not missing, f"deploy/Dockerfile does not copy {missing} (copies {sources})"
    # Tools are run by people, never deployed: the image holds none of them.
    assert not _covered("services/tools/cli/main.py", sources), sources
    assert not any(name.startswith("services.tools") for name in closure.local)


def test_dockerfile_builds_a_runtime_only_non_root_image_in_two_stages() -> None:
    stages = _stages()
    assert len(stages) >= 2, "multi-stage: a build stage installs, the image only copies"
    assert {_base_image(stage) for stage in stages} == {"python:3.11-slim"}
    build, final = stages[0], stages[-1]
    build_name = build[0][1].split()[-1]
    assert build[0][1].split()[-2].upper() == "AS", "the build stage is named"

    # The build stage installs the locked runtime dependencies, hashes checked.
    build_runs = " ".join(args for instruction, args in build if instruction == "RUN")
    assert "requirements.lock" in _copy_sources(build)
    assert re.search(
        r"pip install [^&;]*--require-hashes[^&;]* -r \S*requirements\.lock", build_runs
    )
    assert "--only-binary=:all:" in build_runs, "wheels only: nothing compiled in the build"
    assert not re.search(r"\.\[[^\]]*\]", build_runs), "extras (dev/local) installed"
    assert "pyproject.toml" not in _copy_sources(), "dependencies come from the lock only"

    # The image copies the installed packages from the build stage and installs nothing.
    final_runs = " ".join(args for instruction, args in final if instruction == "RUN")
    assert "pip install" not in final_runs
    copied_from_build = [
        _arguments(args)
        for instruction, args in final
        if instruction == "COPY" and f"--from={build_name}" in _arguments(args)
    ]
    assert copied_from_build, f"the image copies nothing from the {build_name!r} stage"
    assert "requirements.lock" not in _copy_sources(final)

    # A numeric uid:gid, so Kubernetes' runAsNonRoot can check it; the last USER wins.
    users = [args for instruction, args in final if instruction == "USER"]
    assert users, "the image runs as root"
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), f"USER {users[-1]} is not numeric"
    assert users[-1] == "10001:10001", "the uid the Kubernetes manifests run as"
    assert _dockerfile_env().get("PYTHONUNBUFFERED") == "1"
    assert ("STOPSIGNAL", "SIGTERM") in final


def test_the_image_listens_where_a_container_is_reached() -> None:
    from services.console.settings import ConsoleSettings

    env = _dockerfile_env()
    # 127.0.0.1, the laptop default, is unreachable from outside the container.
    assert env["CARELINK_HEALTH_HOST"] == "0.0.0.0"
    assert "CARELINK_CONSOLE_HOST" not in env or env["CARELINK_CONSOLE_HOST"] == "0.0.0.0"
    exposed = {
        port
        for instruction, args in _final_stage()
        if instruction == "EXPOSE"
        for port in args.split()
    }
    assert env["CARELINK_HEALTH_PORT"] in exposed
    assert str(ConsoleSettings.model_fields["port"].default) in exposed


def test_requirements_lock_pins_every_runtime_dependency_with_hashes() -> None:
    # When this fails after a change of pyproject's dependencies: `make lock`, commit.
    locked = _locked()
    assert locked, "requirements.lock pins nothing"
    unhashed = sorted(name for name, (_, hashes) in locked.items() if not hashes)
    assert not unhashed, f"pinned without --hash (pip --require-hashes refuses): {unhashed}"
    assert all(version for version, _ in locked.values()), "every entry pinned with =="
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is a runtime dependency but not in requirements.lock"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, pyproject wants {requirement.specifier}"
        )
    # Everything those require (as installed here, extras included) is pinned too.
    missing = sorted(_runtime_distributions() - locked.keys())
    assert not missing, f"required by the runtime dependencies, not locked: {missing}"


def test_requirements_lock_holds_no_dev_or_local_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = {
        canonicalize_name(Requirement(spec).name)
        for group in project["optional-dependencies"].values()
        for spec in group
    } - {"carelink"}
    runtime = _runtime_distributions()
    leaked = sorted((extras - runtime) & _locked().keys())
    assert not leaked, f"dev/local packages in the image's lock: {leaked}"
    assert "faker" not in _locked()


def test_make_lock_refreshes_the_lock_with_hashes_from_pyproject() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^lock:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no `make lock` target"
    command = recipe.group(1)
    assert "pip compile" in command
    assert "--generate-hashes" in command
    assert "pyproject.toml" in command
    assert "requirements.lock" in command
    header = LOCK_FILE.read_text(encoding="utf-8").splitlines()[:3]
    assert any("make lock" in line for line in header), "the lock says how it was made"


def test_dockerfile_carelink_variables_are_read_by_the_code_and_point_into_the_image() -> None:
    from services.lib.policy.policy import POLICY_DIR_ENV
    from services.lib.policy.registry import REGISTRY_FILE_ENV

    allowed = _allowed_settings_variables() | {POLICY_DIR_ENV, REGISTRY_FILE_ENV}
    workdirs = [
        args for instruction, args in _dockerfile_instructions() if instruction == "WORKDIR"
    ]
    assert workdirs, "no WORKDIR: relative COPY destinations are undefined"
    workdir = workdirs[-1].rstrip("/")
    sources = _copy_sources()
    for key, value in _dockerfile_env().items():
        if not key.startswith("CARELINK_"):
            continue
        assert key in allowed, f"{key} is read by nothing"
        if value.startswith(workdir + "/"):
            relative = value.removeprefix(workdir + "/")
            assert (ROOT / relative).exists(), f"{key}={value}: {relative} is not in the repo"
            assert _covered(relative, sources), f"{key}={value}: {relative} is not copied"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".local"} <= ignored
    for source in _copy_sources():
        assert source not in ignored, f"{source} is copied but excluded from the context"


def test_runtime_dependencies_cover_every_third_party_import_of_the_services() -> None:
    # The image installs `pip install .`: runtime dependencies only. A module the
    # services import that only a dev/local extra brings would fail at start-up.
    entry_points = [f"services.{name}.__main__" for name in SERVICES]
    entry_points.append("services.lib.runtime.topics")
    imported = import_closure(entry_points).third_party
    assert imported, "no third-party imports found: the import walk is broken"
    installed = _runtime_distributions()
    providers = importlib.metadata.packages_distributions()
    missing = sorted(
        name
        for name in imported
        if not {canonicalize_name(dist) for dist in providers.get(name, [])} & installed
    )
    assert not missing, f"imported by the services, not in pyproject dependencies: {missing}"


def test_the_local_stack_knows_each_service_by_its_own_settings() -> None:
    # The tools may not import a deployable, so they keep their own table of names and
    # ports: it must agree with what each service says about itself.
    assert set(SETTINGS) == set(SERVICES)
    for name, cls in SETTINGS.items():
        settings = cls()
        assert settings.service == name
        assert settings.health_port == DEFAULT_HEALTH_PORTS[name], name
