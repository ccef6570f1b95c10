"""deploy/k8s renders to valid resources that agree with the code: no cluster needed.

What is checked, and how:

- the generated files (KafkaTopic, KafkaUser, ScaledObject) equal what
  `python -m services.tools.k8s` renders from the topic catalogue and the registry;
- each overlay is rendered as `kubectl apply -k` would see it, with the Kustomize built
  into kubectl (`kubectl kustomize`; a `kustomize` binary is used where kubectl is not
  installed; without either, the tests on rendered output skip and say so);
- every core resource of the rendered output validates against the Kubernetes
  OpenAPI schemas bundled (offline) in `kubernetes-validate`, strict (no unknown
  field), for the oldest and the newest Kubernetes version checked;
- every custom resource (Strimzi kafka.strimzi.io/v1, CloudNativePG, KEDA) validates
  against the `openAPIV3Schema` of the operator's own CRD in ../shared/crds (made
  strict: an unknown field is an error, as with kubectl's server-side field
  validation). The CRDs' CEL rules (`x-kubernetes-validations`) are not evaluated; the
  one that applies to these resources (KEDA's minReplicaCount <= maxReplicaCount) is
  checked here by hand. Without ../shared/crds those tests skip and say so;
- and what the resources mean: security contexts, probes, settings the services
  really read, secrets only by reference, network policies, topics, ACLs, scaling caps
  and databases, against the code (settings classes, topic catalogue, registry).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml
from pydantic import BaseModel
from referencing import Registry, Resource

from contracts.topics import LOCAL, PRODUCTION, Durability, all_topics
from services.console.settings import ConsoleSettings
from services.fhirgateway.settings import FhirGatewaySettings
from services.intake.app import SPEC as INTAKE_SPEC
from services.intake.settings import IntakeSettings
from services.lib.policy import load_registry
from services.lib.runtime.settings import ServiceSettings
from services.outcome.app import SPEC as OUTCOME_SPEC
from services.outcome.settings import OutcomeSettings
from services.portal.settings import PortalSettings
from services.referral.app import SPEC as REFERRAL_SPEC
from services.referral.settings import ReferralSettings
from services.scheduling.app import SPEC as SCHEDULING_SPEC
from services.scheduling.settings import SchedulingSettings
from services.tools import k8s
from services.tools.k8s import generate
from services.tools.stack.deployables import CONSOLE, FHIR_GATEWAY, PORTAL, SERVICES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "production")
CRD_DIR = Path(os.environ.get("CARELINK_CRDS_DIR", ROOT.parent / "shared" / "crds"))
# The oldest and the newest Kubernetes release the schemas are checked against.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
IMAGE_USER = 10001  # deploy/Dockerfile: USER 10001:10001

SETTINGS: dict[str, type[BaseModel]] = {
    "intake": IntakeSettings,
    "referral": ReferralSettings,
    "scheduling": SchedulingSettings,
    "outcome": OutcomeSettings,
    CONSOLE: ConsoleSettings,
    PORTAL: PortalSettings,
    FHIR_GATEWAY: FhirGatewaySettings,
}
# The hospital-side deployables (issues 13, 14): each a service with its own database
# and Kafka principal that, towards carelink, acts as the hospitals it serves.
HOSPITAL_SIDE = (PORTAL, FHIR_GATEWAY)
SPECS = {
    "intake": INTAKE_SPEC,
    "referral": REFERRAL_SPEC,
    "scheduling": SCHEDULING_SPEC,
    "outcome": OUTCOME_SPEC,
}
# The services whose HTTP API the console calls.
CALLED_BY_CONSOLE = ("intake", "referral", "scheduling", "outcome")
# Secrets the operators (Strimzi, CloudNativePG) write themselves; every other Secret a
# manifest refers to is created by people and listed in docs/operators.md.
OPERATOR_SECRETS = {
    "carelink-cluster-ca-cert",
    "carelink-pg-ca",
    *(generate.kafka_user(service) for service in (*SERVICES, *HOSPITAL_SIDE)),
}

Doc = dict[str, Any]


# --------------------------------------------------------------------------- rendering


def _renderer() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    """Each overlay rendered as `kubectl apply -k` sees it (both at once: it is slow)."""
    command = _renderer()
    if command is None:
        pytest.skip(
            "no Kustomize here (neither `kubectl` nor `kustomize` on PATH): the rendered "
            "manifests are not checked"
        )
    running = {
        overlay: subprocess.Popen(
            [*command, str(K8S / "overlays" / overlay)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for overlay in OVERLAYS
    }
    out = {}
    for overlay, process in running.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"{' '.join(command)} {overlay} failed:\n{stderr}"
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        out[overlay] = [doc for doc in yaml.load_all(stdout, Loader=loader) if doc]
    return out


def _of(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in _of(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _container(deployment: Doc) -> Doc:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _env(deployment: Doc) -> dict[str, Doc]:
    return {entry["name"]: entry for entry in _container(deployment).get("env", [])}


def _resolved_env(deployment: Doc) -> dict[str, str]:
    """The container's environment as the kubelet builds it: a Secret's value stands in
    as a recognisable placeholder, `$(NAME)` refers to a variable defined before."""
    resolved: dict[str, str] = {}
    for entry in _container(deployment).get("env", []):
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            placeholder = f"from-secret-{ref['name']}-{ref['key']}"
            if entry["name"].endswith("_CALLERS"):
                # A whole JSON map of caller -> token in the Secret (the providers').
                placeholder = json.dumps({"from-secret": placeholder})
            resolved[entry["name"]] = placeholder
            continue
        value = str(entry.get("value", ""))
        resolved[entry["name"]] = re.sub(
            r"\$\((\w+)\)", lambda m: resolved.get(m.group(1), m.group(0)), value
        )
    return resolved


def _settings_variables(model: type[BaseModel]) -> set[str]:
    prefix = str(model.model_config.get("env_prefix", ""))
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= _settings_variables(annotation)
            continue
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names |= {str(choice).upper() for choice in choices}
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def _deployments(docs: list[Doc]) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in _of(docs, "Deployment")}


# --------------------------------------------------------------------------- generated


def test_generated_resources_match_the_catalogue_and_registry() -> None:
    drifted = k8s.check()
    assert drifted == [], f"out of date: {drifted}; run `make k8s` and commit the result"


def test_generated_resources_render_deterministically() -> None:
    assert k8s.render() == k8s.render()


def test_every_service_reads_what_its_own_spec_consumes() -> None:
    # The generator may not import a deployable; this test may, and holds them together.
    registry = load_registry()
    access = k8s.service_access(registry.hospital_ids)
    assert set(access) == set(SERVICES)
    for service, spec in SPECS.items():
        assert sorted(spec.topics(registry)) == sorted(access[service].reads), service
        assert ServiceSettings(service=service).group_id == generate.group_id(service)


def test_the_config_kustomization_holds_every_configuration_file_but_the_accounts() -> None:
    config_dir = ROOT / "deploy/config"
    config = yaml.safe_load((config_dir / "kustomization.yaml").read_text("utf-8"))
    files = {item["name"]: set(item["files"]) for item in config["configMapGenerator"]}
    assert files["carelink-registry"] == {"registry.yaml"}
    assert files["carelink-providers"] == {"providers.yaml"}
    assert files["carelink-findings"] == {"findings.yaml"}
    policies = {p.relative_to(config_dir).as_posix() for p in config_dir.glob("policy/*.yaml")}
    assert files["carelink-policy"] == policies, "add the new policy file to the list"
    # Every other configuration file too (a new one needs its ConfigMap and a mount).
    on_disk = {p.relative_to(config_dir).as_posix() for p in config_dir.rglob("*.yaml")}
    listed = set().union(*files.values())
    accounts = {"users.yaml", "portal-users.yaml"}  # the console's and the portal's
    assert on_disk - listed == {"kustomization.yaml", *accounts}, "not in any ConfigMap"
    # The accounts are Secrets (the console's and the portal's users files), never ConfigMaps.
    assert not accounts & listed


def test_the_local_demo_accounts_are_the_readmes() -> None:
    local = yaml.safe_load((K8S / "overlays/local/demo-users.yaml").read_text("utf-8"))
    demo = yaml.safe_load((ROOT / "deploy/config/users.yaml").read_text("utf-8"))
    assert local == demo, "copy deploy/config/users.yaml to deploy/k8s/overlays/local/"
    local = yaml.safe_load((K8S / "overlays/local/demo-portal-users.yaml").read_text("utf-8"))
    demo = yaml.safe_load((ROOT / "deploy/config/portal-users.yaml").read_text("utf-8"))
    assert local == demo, "copy deploy/config/portal-users.yaml to deploy/k8s/overlays/local/"


# --------------------------------------------------------------------------- schemas


_SCHEMAS = resources.files("kubernetes_validate") / "kubernetes-json-schema"


@functools.cache
def _definitions(version: str) -> Resource[Any]:
    path = _SCHEMAS / f"v{version}-local-strict" / "_definitions.json"
    return Resource.from_contents(json.loads(path.read_text(encoding="utf-8")))


@functools.cache
def _core_validator(kind: str, api_version: str, version: str) -> jsonschema.Validator | None:
    """kubernetes-validate's strict schema for one kind (as its `validate()` finds it,
    kept between calls: loading the definitions is what takes the time)."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _SCHEMAS / f"v{version}-local-strict" / f"{kind.lower()}-{group}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    registry = _definitions(version) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _strict(schema: Any) -> Any:
    """A CRD's structural schema with unknown fields refused, as the API server's strict
    field validation refuses them (it would otherwise prune them silently)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@pytest.fixture(scope="module")
def crd_validators() -> dict[tuple[str, str], jsonschema.Validator]:
    if not CRD_DIR.is_dir():
        pytest.skip(
            f"{CRD_DIR} is absent (the operators' CRDs, kept beside the repository in "
            "shared/crds): custom resources are not validated"
        )
    validators = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        # libyaml's loader where PyYAML has it: the CRDs are 1.6 MB of YAML.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served"):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                validators[key] = jsonschema.Draft7Validator(schema)
    assert validators, f"no CustomResourceDefinition in {CRD_DIR}"
    return validators


def _errors(validator: jsonschema.Validator, doc: Doc) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(doc)
    ]


def test_the_schema_checks_catch_a_misspelt_field() -> None:
    # The checks below pass only if the validators refuse what the API server refuses.
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "x", "readinessProbes": {}}]},
            },
        },
    }
    validator = _core_validator("Deployment", "apps/v1", KUBERNETES_VERSIONS[-1])
    assert validator is not None
    assert any("readinessProbes" in error for error in _errors(validator, deployment))
    crd = _strict({"type": "object", "properties": {"spec": {"type": "object", "properties": {}}}})
    assert _errors(jsonschema.Draft7Validator(crd), {"spec": {"replica": 1}})


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_resources_validate_against_the_kubernetes_schemas(
    rendered: dict[str, list[Doc]], overlay: str, version: str
) -> None:
    checked, problems = 0, []
    for doc in rendered[overlay]:
        validator = _core_validator(doc["kind"], doc["apiVersion"], version)
        if validator is None:
            continue
        checked += 1
        problems += [
            f"{doc['kind']}/{doc['metadata']['name']}: {e}" for e in _errors(validator, doc)
        ]
    assert checked >= 25, f"only {checked} core resources validated: is the renderer right?"
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_the_operators_crds(
    rendered: dict[str, list[Doc]],
    overlay: str,
    crd_validators: dict[tuple[str, str], jsonschema.Validator],
) -> None:
    problems, kinds = [], set()
    for doc in rendered[overlay]:
        if _core_validator(doc["kind"], doc["apiVersion"], KUBERNETES_VERSIONS[-1]):
            continue
        key = (doc["apiVersion"], doc["kind"])
        assert key in crd_validators, f"{key}: neither a core kind nor one of the CRDs"
        kinds.add(doc["kind"])
        problems += [
            f"{doc['kind']}/{doc['metadata']['name']}: {e}"
            for e in _errors(crd_validators[key], doc)
        ]
    assert problems == [], "\n".join(problems)
    assert kinds == {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "Database",
        "ScaledObject",
        "TriggerAuthentication",
    }
    # The CEL rule of KEDA's CRD that applies here (CEL is not evaluated above).
    for scaled in _of(rendered[overlay], "ScaledObject"):
        assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_names_are_valid_kubernetes_names(rendered: dict[str, list[Doc]], overlay: str) -> None:
    subdomain = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
    label = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
    for doc in rendered[overlay]:
        name = doc["metadata"]["name"]
        assert len(name) <= 253, f"{doc['kind']}/{name}"
        assert subdomain.fullmatch(name), f"{doc['kind']}/{name}"
        if doc["kind"] in {"Service", "Namespace"}:
            assert len(name) <= 63, f"{doc['kind']}/{name}"
            assert label.fullmatch(name), f"{doc['kind']}/{name}"


# --------------------------------------------------------------------------- deployables


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_deployment_per_deployable_running_its_package_from_one_image(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    deployments = _deployments(rendered[overlay])
    assert set(deployments) == {*SERVICES, CONSOLE, *HOSPITAL_SIDE}
    images = {_container(d)["image"] for d in deployments.values()}
    assert len(images) == 1, images
    for name, deployment in deployments.items():
        assert _container(deployment)["command"] == ["python", "-m", f"services.{name}"]
    if overlay == "production":
        (image,) = images
        assert not image.endswith((":local", ":latest")), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_the_images_numeric_user_with_a_read_only_root(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    for name, deployment in _deployments(rendered[overlay]).items():
        pod = deployment["spec"]["template"]["spec"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == security["runAsGroup"] == IMAGE_USER, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        container = _container(deployment)
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        # Python's tempfile needs a writable /tmp on a read-only root.
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        resources_ = container["resources"]
        assert {"cpu", "memory"} <= resources_["requests"].keys(), name
        assert "memory" in resources_["limits"], name


def _probe_port(container: Doc, probe: Doc) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)  # type: ignore[no-any-return]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_health_endpoints_on_the_port_the_process_listens_on(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    deployments = _deployments(rendered[overlay])
    for name in (*SERVICES, *HOSPITAL_SIDE):
        container = _container(deployments[name])
        env = _resolved_env(deployments[name])
        settings = SETTINGS[name]()  # defaults, then the manifest's values below
        port = int(env.get("CARELINK_HEALTH_PORT", getattr(settings, "health_port", 0)))
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready", name
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live", name
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert _probe_port(container, container[kind]) == port, f"{name} {kind}"
        # The readiness checks give up after 3 s; the probe waits longer than that.
        assert container["readinessProbe"]["timeoutSeconds"] > 3, name
        grace = float(env.get("CARELINK_SHUTDOWN_GRACE_S", "10"))
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > grace + 5, name
    console = _container(deployments[CONSOLE])
    console_port = int(_resolved_env(deployments[CONSOLE])["CARELINK_CONSOLE_PORT"])
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert _probe_port(console, console[kind]) == console_port, kind
        assert console[kind]["httpGet"]["path"] in {"/login", "/api/health"}, kind


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_carelink_variable_is_a_setting_of_that_deployable(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    from services.lib.policy.policy import POLICY_DIR_ENV
    from services.lib.policy.registry import REGISTRY_FILE_ENV
    from services.lib.signin.startup import ENV_VAR as LOCAL_RUN_ENV

    for name, deployment in _deployments(rendered[overlay]).items():
        allowed = _settings_variables(SETTINGS[name]) | {POLICY_DIR_ENV, REGISTRY_FILE_ENV}
        if name == PORTAL:
            allowed.add(LOCAL_RUN_ENV)  # read by services.lib.signin at start
        unknown = sorted(key for key in _env(deployment) if key.startswith("CARELINK_"))
        unknown = [key for key in unknown if key not in allowed]
        assert unknown == [], f"{name}: read by nothing: {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_environment_parses_into_its_production_settings(
    rendered: dict[str, list[Doc]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, deployment in _deployments(rendered[overlay]).items():
        if name == CONSOLE:
            continue
        env = _resolved_env(deployment)
        with monkeypatch.context() as patch:
            for key in list(os.environ):
                if key.startswith("CARELINK_"):
                    patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            settings = SETTINGS[name]()
        assert isinstance(settings, ServiceSettings)
        assert settings.service == name
        assert settings.health_host == "0.0.0.0", "a probe cannot reach 127.0.0.1"
        assert settings.log_format == "json"
        kafka = settings.kafka
        assert kafka.security_protocol == "SASL_SSL", name
        assert kafka.sasl_mechanism == "SCRAM-SHA-512", name
        assert kafka.sasl_username == generate.kafka_user(name), name
        assert kafka.sasl_password is not None
        assert (
            kafka.sasl_password.get_secret_value() == f"from-secret-{kafka.sasl_username}-password"
        )
        assert kafka.enable_idempotence is True, name
        assert kafka.session_timeout_ms >= 6000, "Apache Kafka's minimum by default"
        assert kafka.create_topics is False, "topics are KafkaTopic resources"
        assert kafka.bootstrap.split(":")[0] == f"{generate.CLUSTER}-kafka-bootstrap"
        # Its own database, as its own role, over verified TLS; the password is not in it.
        url = urlsplit(settings.resolved_database_url())
        assert url.path == f"/carelink_{name}", name
        assert url.username == f"carelink_{name}", name
        assert url.password is None, f"{name}: a password in the database URL"
        assert parse_qs(url.query)["sslmode"] == ["verify-full"], name
        assert env["PGPASSWORD"] == f"from-secret-carelink-{name}-db-password", name
        callers = getattr(settings, "api_callers", None)
        if name in CALLED_BY_CONSOLE:
            assert callers is not None, name
            assert set(callers) == {"console"}, name
            token = callers["console"].get_secret_value()
            assert token == "from-secret-carelink-api-token-console-token", name
        else:
            assert not callers, f"{name} serves no API"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_is_a_gateway_with_no_database_and_no_broker(
    rendered: dict[str, list[Doc]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered[overlay]
    deployment = _deployments(docs)[CONSOLE]
    env = _resolved_env(deployment)
    assert not [key for key in env if "DATABASE" in key or "KAFKA" in key or key == "PGPASSWORD"]
    with monkeypatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("CARELINK_"):
                patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        settings = ConsoleSettings()
    assert settings.host == "0.0.0.0"
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "from-secret-carelink-api-token-console-token"
    assert settings.secret_key is not None
    assert str(settings.users_file).startswith("/etc/carelink/users/"), "never the demo file"
    assert settings.cookie_secure is (overlay == "production")
    services = {doc["metadata"]["name"]: doc for doc in _of(docs, "Service")}
    for name in CALLED_BY_CONSOLE:
        url = urlsplit(getattr(settings, f"{name}_url"))
        assert url.hostname in services, f"{name}: no Service {url.hostname}"
        ports = {p["port"] for p in services[url.hostname]["spec"]["ports"]}
        assert url.port in ports, f"{name}: the Service has no port {url.port}"


def _settings_from(env: dict[str, str], model: type[BaseModel], patch: pytest.MonkeyPatch) -> Any:
    with patch.context() as context:
        for key in list(os.environ):
            if key.startswith("CARELINK_"):
                context.delenv(key)
        for key, value in env.items():
            context.setenv(key, value)
        return model()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_portal_signs_in_from_a_users_secret_and_is_local_only_in_the_local_overlay(
    rendered: dict[str, list[Doc]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = _deployments(rendered[overlay])[PORTAL]
    env = _resolved_env(deployment)
    settings = _settings_from(env, PortalSettings, monkeypatch)
    assert settings.portal_secret_key is not None
    assert (
        settings.portal_secret_key.get_secret_value()
        == "from-secret-carelink-portal-session-secret-key"
    )
    # The users file is mounted from a Secret, never a ConfigMap nor the image's demo file.
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(deployment)["volumeMounts"]}
    users = volumes[mounts[str(settings.portal_users_file.parent)]]
    assert users["secret"]["secretName"] == "carelink-portal-users"
    assert settings.portal_cookie_secure is (overlay == "production")
    # Demo accounts and a published key are accepted in a local run only.
    assert (env.get("CARELINK_ENV") == "local") is (overlay == "local")
    # One replica: its sessions are in memory.
    assert deployment["spec"]["replicas"] == 1


def _ingress_routes(docs: list[Doc]) -> dict[str, list[tuple[str, str, str, str]]]:
    """Ingress name -> (host, path, pathType, backend Service) of each of its paths."""
    routes: dict[str, list[tuple[str, str, str, str]]] = {}
    for ingress in _of(docs, "Ingress"):
        spec = ingress["spec"]
        tls_hosts = {host for entry in spec.get("tls", []) for host in entry.get("hosts", [])}
        for rule in spec["rules"]:
            assert rule["host"] in tls_hosts, f"{ingress['metadata']['name']}: no TLS"
            for path in rule["http"]["paths"]:
                routes.setdefault(ingress["metadata"]["name"], []).append(
                    (
                        rule["host"],
                        path["path"],
                        path["pathType"],
                        path["backend"]["service"]["name"],
                    )
                )
    return routes


def test_production_publishes_only_the_people_and_ehr_paths(
    rendered: dict[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered["production"]
    routes = _ingress_routes(docs)
    # Only the front doors and referral's provider routes are reachable from outside.
    assert {backend for paths in routes.values() for *_, backend in paths} == {
        CONSOLE,
        PORTAL,
        FHIR_GATEWAY,
        "referral",
    }
    for name, paths in routes.items():
        for _, path, kind, _ in paths:
            # The runtime's probes and metrics share the services' ports: never published.
            if name != "console":
                assert not path.startswith(("/health", "/metrics")), (name, path)
                assert (path, kind) != ("/", "Prefix"), f"{name} publishes everything"
    # The portal: exactly the paths docs/security.md (section 8) names.
    assert {(path, kind) for _, path, kind, _ in routes["portal"]} == {
        ("/", "Exact"),
        ("/login", "Exact"),
        ("/logout", "Exact"),
        ("/static/", "Prefix"),
        ("/referrals/", "Prefix"),
        ("/drafts/", "Prefix"),
        ("/api/", "Prefix"),
    }
    # Providers: referral's /v1/provider/ only, not the console's /v1.
    assert [(path, kind, backend) for _, path, kind, backend in routes["referral-providers"]] == [
        ("/v1/provider/", "Prefix", "referral")
    ]
    # The FHIR base: /fhir, on the host the gateway names as its base URL (the audience
    # of the clients' assertions and the address in notifications).
    ((host, path, kind, _),) = routes["fhirgateway"]
    settings = _settings_from(
        _resolved_env(_deployments(docs)[FHIR_GATEWAY]), FhirGatewaySettings, monkeypatch
    )
    assert (path, kind) == ("/fhir", "Prefix")
    assert settings.public_base_url == f"https://{host}/fhir"
    assert settings.fhir_allow_http_endpoints is False
    services = {doc["metadata"]["name"] for doc in _of(docs, "Service")}
    assert {backend for paths in routes.values() for *_, backend in paths} <= services


def test_the_local_overlay_publishes_nothing(rendered: dict[str, list[Doc]]) -> None:
    assert _of(rendered["local"], "Ingress") == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_registry_and_policies_come_from_the_generated_config_maps(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    maps = {doc["metadata"]["name"]: doc for doc in _of(docs, "ConfigMap")}
    registry = next(m for n, m in maps.items() if n.startswith("carelink-registry-"))
    policy = next(m for n, m in maps.items() if n.startswith("carelink-policy-"))
    providers = next(m for n, m in maps.items() if n.startswith("carelink-providers-"))
    findings = next(m for n, m in maps.items() if n.startswith("carelink-findings-"))
    clients = next(m for n, m in maps.items() if n.startswith("carelink-fhir-clients-"))
    assert clients["data"]["fhir-clients.yaml"] == (
        ROOT / "deploy/config/fhir-clients.yaml"
    ).read_text("utf-8")
    assert findings["data"]["findings.yaml"] == (ROOT / "deploy/config/findings.yaml").read_text(
        "utf-8"
    )
    assert providers["data"]["providers.yaml"] == (ROOT / "deploy/config/providers.yaml").read_text(
        "utf-8"
    )
    assert registry["data"]["registry.yaml"] == (ROOT / "deploy/config/registry.yaml").read_text(
        "utf-8"
    )
    assert set(policy["data"]) == {p.name for p in (ROOT / "deploy/config/policy").glob("*.yaml")}
    for name, deployment in _deployments(docs).items():
        env = _resolved_env(deployment)
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in _container(deployment)["volumeMounts"]}
        wanted = {"CARELINK_REGISTRY_FILE": registry["metadata"]["name"]}
        if name in {"intake", "referral", "scheduling"}:
            wanted["CARELINK_POLICY_DIR"] = policy["metadata"]["name"]
        if name == "referral":
            wanted["CARELINK_PROVIDERS_FILE"] = providers["metadata"]["name"]
        if name in {"scheduling", "outcome", "console"}:
            wanted["CARELINK_FINDINGS_FILE"] = findings["metadata"]["name"]
        if name == FHIR_GATEWAY:
            wanted["CARELINK_FHIR_CLIENTS_FILE"] = clients["metadata"]["name"]
        for variable, config_map in wanted.items():
            path = env[variable]
            directory = path if variable == "CARELINK_POLICY_DIR" else str(Path(path).parent)
            assert volumes[mounts[directory]]["configMap"]["name"] == config_map, name


# --------------------------------------------------------------------------- secrets


def _secret_references(docs: list[Doc]) -> set[str]:
    """Every Secret name a rendered resource refers to."""
    names: set[str] = set()

    def walk(node: Any, parent: str = "") -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"secretKeyRef", "passwordSecret"} and isinstance(value, dict):
                    names.add(value["name"])
                elif key == "secret" and isinstance(value, dict) and "secretName" in value:
                    names.add(value["secretName"])
                elif key == "secret" and parent == "initdb":
                    names.add(value["name"])
                elif key == "secretTargetRef":
                    names.update(ref["name"] for ref in value)
                elif key == "tls" and isinstance(value, list):
                    names.update(t["secretName"] for t in value if "secretName" in t)
                walk(value, key)
        elif isinstance(node, list):
            for item in node:
                walk(item, parent)

    for doc in docs:
        walk(doc)
    return names


def test_production_holds_no_secret_and_names_every_one_it_needs(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["production"]
    assert _of(docs, "Secret") == [], "production Secrets are created by people, never here"
    referenced = _secret_references(docs)
    needed = referenced - OPERATOR_SECRETS
    assert needed >= {
        "carelink-console",
        "carelink-console-users",
        "carelink-api-token-console",
        "carelink-keda-kafka",
        *(f"carelink-{s}-db" for s in (*SERVICES, *HOSPITAL_SIDE)),
        "carelink-portal-session",
        "carelink-portal-users",
        "carelink-console-tls",
        "carelink-portal-tls",
        "carelink-fhir-tls",
        "carelink-providers-tls",
    }
    runbook = (ROOT / "docs" / "operators.md").read_text(encoding="utf-8")
    undocumented = sorted(name for name in needed if f"`{name}`" not in runbook)
    assert undocumented == [], f"docs/operators.md does not say how to create {undocumented}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_values_only_by_reference(rendered: dict[str, list[Doc]], overlay: str) -> None:
    secretive = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|CALLERS", re.I)
    for name, deployment in _deployments(rendered[overlay]).items():
        for key, entry in _env(deployment).items():
            if not secretive.search(key):
                continue
            if "valueFrom" in entry:
                assert "secretKeyRef" in entry["valueFrom"], f"{name}: {key}"
                continue
            # A literal may only put referenced secrets together ($(NAME)).
            literal = re.sub(r"\$\(\w+\)", "", str(entry.get("value", "")))
            assert not re.search(r"[A-Za-z0-9]{12,}", literal), f"{name}: {key} holds a value"


def test_the_local_overlay_secrets_say_they_are_local(rendered: dict[str, list[Doc]]) -> None:
    import base64

    secrets = _of(rendered["local"], "Secret")
    assert {s["metadata"]["name"] for s in secrets} >= _secret_references(
        rendered["local"]
    ) - OPERATOR_SECRETS, "a Secret the local overlay needs is not generated"
    for secret in secrets:
        for key, value in secret["data"].items():
            text = base64.b64decode(value).decode("utf-8")
            if key in {"username", "users.yaml"}:
                continue
            assert "local" in text, f"{secret['metadata']['name']}/{key} is not obviously local"


# --------------------------------------------------------------------------- disruption, network


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_disruption_budget_per_deployable_that_lets_drains_proceed(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    budgets = _of(docs, "PodDisruptionBudget")
    for name, deployment in _deployments(docs).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, name
        # maxUnavailable, so a drain proceeds even with one replica running.
        assert matching[0]["spec"].get("maxUnavailable") == 1, name


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "Exists" and key not in labels:
            return False
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
    return True


def _policies_for(docs: list[Doc], labels: dict[str, str]) -> list[Doc]:
    return [p for p in _of(docs, "NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]


def _peer(peer: Doc) -> str:
    """A short, comparable description of a NetworkPolicy peer."""
    parts = []
    if "namespaceSelector" in peer:
        parts.append(
            "ns:"
            + ",".join(
                f"{k}={v}"
                for k, v in sorted(peer["namespaceSelector"].get("matchLabels", {}).items())
            )
        )
    if "podSelector" in peer:
        parts.append(
            "pod:"
            + ",".join(
                f"{k}={v}" for k, v in sorted(peer["podSelector"].get("matchLabels", {}).items())
            )
        )
    if "ipBlock" in peer:
        parts.append("ip:" + peer["ipBlock"]["cidr"])
    return " ".join(parts)


def _allowed(docs: list[Doc], labels: dict[str, str], direction: str) -> set[tuple[str, str]]:
    """(peer, port) pairs the pod with these labels may reach (egress) or be reached
    from (ingress); "*" stands for any peer."""
    allowed: set[tuple[str, str]] = set()
    key = "to" if direction == "egress" else "from"
    for policy in _policies_for(docs, labels):
        for rule in policy["spec"].get(direction, []):
            peers = [_peer(p) for p in rule.get(key, [])] or ["*"]
            ports = [str(p.get("port")) for p in rule.get("ports", [])] or ["*"]
            allowed |= {(peer, port) for peer in peers for port in ports}
    return allowed


KAFKA_PEER = f"pod:strimzi.io/cluster={generate.CLUSTER},strimzi.io/kind=Kafka"
POSTGRES_PEER = "pod:cnpg.io/cluster=carelink-pg"
DNS = {
    ("ns:kubernetes.io/metadata.name=kube-system pod:k8s-app=kube-dns", "53"),
}
SCRAPER = (
    "ns:kubernetes.io/metadata.name=monitoring pod:app.kubernetes.io/name=prometheus",
    "http",
)
INGRESS_CONTROLLER = (
    "ns:kubernetes.io/metadata.name=ingress-nginx pod:app.kubernetes.io/name=ingress-nginx"
)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_each_deployable_only_what_it_needs(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    for name, deployment in _deployments(docs).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        policies = _policies_for(docs, labels)
        # A default deny selects it for both directions, so only the rules below count.
        assert any(
            {"Ingress", "Egress"} <= set(p["spec"]["policyTypes"])
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in policies
        ), f"{name}: no default deny"
        egress = _allowed(docs, labels, "egress")
        ingress = _allowed(docs, labels, "ingress")
        if name == CONSOLE:
            assert egress == DNS | {
                (f"pod:app.kubernetes.io/name={s}", "8080") for s in CALLED_BY_CONSOLE
            }, egress
            assert ("*", "http") in ingress, "the front door"
            continue
        broker_and_database = {(KAFKA_PEER, "9093"), (POSTGRES_PEER, "5432")}
        if name in HOSPITAL_SIDE:
            # Front doors (people, EHRs) that call no service: only broker and database,
            # and the gateway's notifications to the hospitals' https endpoints.
            notify = {("ip:0.0.0.0/0", "443")} if name == FHIR_GATEWAY else set()
            assert egress == DNS | broker_and_database | notify, f"{name}: {egress}"
            assert ingress == {("*", "http"), SCRAPER}, f"{name}: {ingress}"
            continue
        assert egress == DNS | broker_and_database, f"{name}: {egress}"
        expected_in = {SCRAPER}
        if name in CALLED_BY_CONSOLE:
            expected_in.add(("pod:app.kubernetes.io/name=console", "http"))
        if name == "referral" and overlay == "production":
            # Contracted providers, through the ingress controller (provider-ingress.yaml).
            expected_in.add((INGRESS_CONTROLLER, "http"))
        assert ingress == expected_in, f"{name}: {ingress}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_broker_and_database_let_in_the_services(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    kafka = _one(docs, "Kafka", generate.CLUSTER)
    listener = next(x for x in kafka["spec"]["kafka"]["listeners"] if x["port"] == 9093)
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"
    peers = listener["networkPolicyPeers"]
    postgres = _policies_for(docs, {"cnpg.io/cluster": "carelink-pg"})
    assert postgres, "nothing guards PostgreSQL"
    for name in (*SERVICES, *HOSPITAL_SIDE):
        labels = _deployments(docs)[name]["spec"]["template"]["metadata"]["labels"]
        assert any(
            _selects(p["podSelector"], labels)
            for p in peers
            if "podSelector" in p and "namespaceSelector" not in p
        ), name
        assert any(
            _selects(peer["podSelector"], labels)
            for policy in postgres
            for rule in policy["spec"]["ingress"]
            for peer in rule.get("from", [])
            if "podSelector" in peer and "namespaceSelector" not in peer
        ), name
    console = _deployments(docs)[CONSOLE]["spec"]["template"]["metadata"]["labels"]
    assert not any(_selects(p["podSelector"], console) for p in peers if "podSelector" in p)


# --------------------------------------------------------------------------- Kafka


def _durability(overlay: str) -> Durability:
    return PRODUCTION if overlay == "production" else LOCAL


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_kafka_topic_per_catalogue_topic_as_declared(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    specs = all_topics(load_registry().hospital_ids, _durability(overlay))
    topics = {doc["metadata"]["name"]: doc for doc in _of(docs, "KafkaTopic")}
    assert set(topics) == {spec.name for spec in specs}
    for spec in specs:
        topic = topics[spec.name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == generate.CLUSTER
        assert topic["spec"].get("topicName", spec.name) == spec.name
        assert topic["spec"]["partitions"] == spec.partitions, spec.name
        assert topic["spec"]["replicas"] == spec.replication_factor, spec.name
        assert {k: str(v) for k, v in topic["spec"]["config"].items()} == spec.configs()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_cluster_holds_the_declared_durability(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    durability = _durability(overlay)
    kafka = _one(docs, "Kafka", generate.CLUSTER)
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert config["default.replication.factor"] == durability.replication_factor
    assert config["min.insync.replicas"] == durability.min_insync_replicas
    assert config["offsets.topic.replication.factor"] == durability.replication_factor
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert {"topicOperator", "userOperator"} <= kafka["spec"]["entityOperator"].keys()
    pools = [
        p
        for p in _of(docs, "KafkaNodePool")
        if p["metadata"]["labels"]["strimzi.io/cluster"] == generate.CLUSTER
    ]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert brokers >= durability.replication_factor, "fewer brokers than copies"
    assert controllers % 2 == 1, "a KRaft quorum needs an odd number of controllers"


def _acls(user: Doc) -> dict[tuple[str, str, str], set[str]]:
    return {
        (
            acl["resource"]["type"],
            acl["resource"]["name"],
            acl["resource"].get("patternType", "literal"),
        ): set(acl["operations"])
        for acl in user["spec"]["authorization"]["acls"]
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_hospital_writes_only_its_referrals_and_reads_only_its_updates(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    hospitals = load_registry().hospital_ids
    users = {doc["metadata"]["name"]: doc for doc in _of(docs, "KafkaUser")}
    assert {n for n in users if n.startswith("hospital-")} == {f"hospital-{h}" for h in hospitals}
    for hospital in hospitals:
        user = users[f"hospital-{hospital}"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert _acls(user) == {
            ("topic", f"hospital.{hospital}.referrals", "literal"): {"Write", "Describe"},
            ("topic", f"hospital.{hospital}.updates", "literal"): {"Read", "Describe"},
            ("group", f"hospital.{hospital}.", "prefix"): {"Read"},
        }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_gets_exactly_its_topics_and_its_group(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    registry = load_registry()
    access = k8s.service_access(registry.hospital_ids)
    users = {doc["metadata"]["name"]: doc for doc in _of(docs, "KafkaUser")}
    for service in SERVICES:
        acls = _acls(users[generate.kafka_user(service)])
        consumed = set(SPECS[service].topics(registry))
        group = ServiceSettings(service=service).group_id
        expected: dict[tuple[str, str, str], set[str]] = {("group", group, "literal"): {"Read"}}
        for topic in consumed | set(access[service].writes):
            operations = {"Describe"}
            operations |= {"Read"} if topic in consumed else set()
            operations |= {"Write"} if topic in access[service].writes else set()
            expected[("topic", topic, "literal")] = operations
        assert acls == expected, service
    # The portal and the FHIR gateway act as hospitals: each writes only referrals topics
    # and reads only updates topics (of registered hospitals), in its own group.
    for name in HOSPITAL_SIDE:
        acls = _acls(users[generate.kafka_user(name)])
        expected = {("group", ServiceSettings(service=name).group_id, "literal"): {"Read"}}
        for hospital in registry.hospital_ids:
            expected[("topic", f"hospital.{hospital}.referrals", "literal")] = {
                "Write",
                "Describe",
            }
            expected[("topic", f"hospital.{hospital}.updates", "literal")] = {"Read", "Describe"}
        assert acls == expected, name
    for user in users.values():
        for (_, name, pattern), operations in _acls(user).items():
            assert name != "*", user
            assert not operations & {"All", "Create", "Delete", "Alter"}, user
            assert pattern == "literal" or user["metadata"]["name"].startswith("hospital-")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_scaled_object_per_consumer_group_capped_at_its_partitions(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    registry = load_registry()
    partitions = {spec.name: spec.partitions for spec in all_topics(registry.hospital_ids)}
    scaled = {doc["metadata"]["name"]: doc for doc in _of(docs, "ScaledObject")}
    assert set(scaled) == set(SERVICES)
    namespace = _of(docs, "Namespace")[0]["metadata"]["name"]
    authentications = {d["metadata"]["name"] for d in _of(docs, "TriggerAuthentication")}
    deployments = _deployments(docs)
    for service, obj in scaled.items():
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == service
        # KEDA owns the replica count: a `replicas` in the Deployment would fight it.
        assert "replicas" not in deployments[service]["spec"], service
        consumed = set(SPECS[service].topics(registry))
        triggers = spec["triggers"]
        assert {t["metadata"]["topic"] for t in triggers} == consumed, service
        assert spec["maxReplicaCount"] <= max(partitions[t] for t in consumed), service
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], service
        for trigger in triggers:
            metadata = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert metadata["consumerGroup"] == ServiceSettings(service=service).group_id
            assert metadata["allowIdleConsumers"] == "false"
            # KEDA's operator runs in its own namespace: the address names ours.
            assert (
                metadata["bootstrapServers"]
                == f"{generate.CLUSTER}-kafka-bootstrap.{namespace}.svc:9093"
            )
            assert trigger["authenticationRef"]["name"] in authentications


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_database_and_owner_role_per_service(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    (cluster,) = _of(docs, "Cluster")
    name = cluster["metadata"]["name"]
    spec = cluster["spec"]
    databases = {d["spec"]["name"]: d["spec"] for d in _of(docs, "Database")}
    initdb = spec["bootstrap"]["initdb"]
    roles = {role["name"]: role for role in spec["managed"]["roles"]}
    role_secret = {r: role["passwordSecret"]["name"] for r, role in roles.items()}
    role_secret[initdb["owner"]] = initdb["secret"]["name"]
    hba = [" ".join(line.split()) for line in spec["postgresql"]["pg_hba"]]
    deployments = _deployments(docs)
    for service in (*SERVICES, *HOSPITAL_SIDE):
        database = role = f"carelink_{service}"
        assert databases[database]["owner"] == role, service
        assert databases[database]["cluster"]["name"] == name
        assert databases[database].get("databaseReclaimPolicy") == "retain", service
        assert role in role_secret, f"{role}: no role"
        if role in roles:
            assert roles[role]["login"] is True
            assert roles[role]["superuser"] is False
        # The Secret CloudNativePG sets the password from is the one the service reads.
        pg_password = _env(deployments[service])["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
        assert pg_password["name"] == role_secret[role], service
        # Its own database only: allowed there over TLS, refused anywhere else.
        allow = hba.index(f"hostssl {database} {role} all scram-sha-256")
        assert allow < hba.index(f"host all {role} all reject"), service
        url = urlsplit(_resolved_env(deployments[service])["CARELINK_DATABASE_URL"])
        assert url.hostname == f"{name}-rw", "the primary's service"
    assert spec["enableSuperuserAccess"] is False
    if overlay == "production":
        assert spec["instances"] >= 3


def test_session_pooling_is_said_where_it_matters() -> None:
    # The relay's advisory lock and LISTEN need a session: no transaction-mode PgBouncer.
    cluster = (K8S / "base/postgres/cluster.yaml").read_text(encoding="utf-8")
    assert "poolMode: session" in cluster
    assert "transaction" in cluster
    runbook = (ROOT / "docs" / "operators.md").read_text(encoding="utf-8")
    assert re.search(r"session pooling|poolMode: session", runbook), "docs/operators.md"


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_no_pooler_in_transaction_mode(rendered: dict[str, list[Doc]]) -> None:
    for overlay in OVERLAYS:
        for pooler in _of(rendered[overlay], "Pooler"):
            assert pooler["spec"]["pgbouncer"].get("poolMode", "session") == "session"
        assert not any(
            isinstance(n, dict) and n.get("poolMode") == "transaction"
            for n in _walk(copy.deepcopy(rendered[overlay]))
        )
