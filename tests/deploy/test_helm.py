"""The Helm chart helm/alert-router: lint, render, validate, and check what it grants and mounts.

Everything goes through PyPI ``helm-python-sdk`` (Helm's own Go library, no helm binary) and
``kubernetes-validate --strict`` at the newest Kubernetes version it knows. The prometheus-operator objects
(ServiceMonitor, PrometheusRule) are CRDs kubernetes-validate has no schema for: they are checked against the
subset of their CRD schema written below, and the PrometheusRule's rules go through ``promtool check rules``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_python.errors import HelmError
from kubernetes_validate import utils as kv_utils

from alert_router.config import load
from tests.deploy.promql import check_expressions, metric_names, unknown_metrics

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "alert-router"
PRODUCTION = CHART / "ci" / "production-values.yaml"
RELEASE = "alert-router"
NAMESPACE = "monitoring"
KUBE_VERSION = kv_utils.latest_version()  # the newest schemas kubernetes-validate ships
CRD_GROUP = "monitoring.coreos.com"

Obj = dict[str, Any]


def production_values() -> Obj:
    """ci/production-values.yaml as Helm parses it."""
    return helm.values_from_yaml(PRODUCTION.read_text())


def render_raw(values: Obj | None = None, *, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=namespace)


def render(values: Obj | None = None, *, namespace: str = NAMESPACE) -> list[Obj]:
    """Every rendered Kubernetes object (NOTES.txt and empty documents dropped)."""
    objects: list[Obj] = []
    for path, text in sorted(render_raw(values, namespace=namespace).items()):
        if not path.endswith(".yaml"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    """The objects of one kind."""
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The single object of ``kind`` (and ``name``)."""
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def render_error(values: Obj) -> str:
    """Render ``values`` expecting failure; return Helm's message."""
    with pytest.raises(HelmError) as info:
        render(values)
    return str(info.value)


VALUE_SETS = {"default": None, "production": "production"}


@pytest.fixture(params=sorted(VALUE_SETS))
def values(request: pytest.FixtureRequest) -> Obj | None:
    """The chart's defaults, and ci/production-values.yaml."""
    return production_values() if VALUE_SETS[request.param] else None


@pytest.fixture(scope="module")
def default_objects() -> list[Obj]:
    """The chart rendered with its default values."""
    return render()


@pytest.fixture(scope="module")
def production_objects() -> list[Obj]:
    """The chart rendered with ci/production-values.yaml."""
    return render(production_values())


# ---- lint and schema --------------------------------------------------------------------------------------------


def test_lint_strict_has_no_warning_or_error(values: Obj | None) -> None:
    """`helm lint --strict` at the newest Kubernetes version: no error, no warning (only the icon INFO)."""
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    assert report["total_charts_linted"] == 1
    assert report["errors"] == [], report
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious
    infos = [m["error"] for m in report["messages"]]
    assert set(infos) <= {"icon is recommended"}, infos


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    """The lint can fail: a template with a syntax error is an error in the report."""
    broken = tmp_path / "alert-router"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "service.yaml").write_text("{{ .Values.service.port \n")
    report = helm.lint(broken, strict=True)
    assert report["errors"] or any(m["severity"] == 3 for m in report["messages"]), report


def test_values_schema_accepts_both_value_files_and_rejects_typos() -> None:
    """values.schema.json passes the shipped values and refuses an unknown key and a wrong type."""
    with helm.Chart.load(CHART) as chart:
        assert chart.schema is not None
        chart.validate_schema(None)
        chart.validate_schema(production_values())
        with pytest.raises(HelmError, match="replicaCunt"):
            chart.validate_schema({"replicaCunt": 2})
        with pytest.raises(HelmError, match="replicaCount"):
            chart.validate_schema({"replicaCount": "three"})
        with pytest.raises(HelmError, match="namespaces"):
            chart.validate_schema({"rbac": {"namespaces": ["Not_A_Namespace"]}})
        defaults = chart.values
    every_key = set(defaults) | {"global"}
    assert set(chart_schema()["properties"]) == every_key, "schema and values.yaml must list the same keys"


def chart_schema() -> Obj:
    """values.schema.json."""
    return dict(yaml.safe_load((CHART / "values.schema.json").read_text()))


# ---- every object validates -------------------------------------------------------------------------------------


def test_every_object_validates_strictly_against_kubernetes(values: Obj | None) -> None:
    """kubernetes-validate --strict accepts every built-in object; CRD objects are the only ones it cannot know."""
    objects = render(values)
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith(f"{CRD_GROUP}/"):
            continue  # validated by test_prometheus_operator_objects_match_their_crd_schema
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")


def test_kubernetes_validate_cli_strict_passes_on_the_rendered_production_manifest(tmp_path: Path) -> None:
    """The `kubernetes-validate --strict` command itself accepts the rendered manifest (CRD kinds excluded)."""
    objects = [o for o in render(production_values()) if not o["apiVersion"].startswith(f"{CRD_GROUP}/")]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    cli = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(cli), "--strict", "-k", KUBE_VERSION, str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(objects), result.stdout
    assert "WARN" not in result.stdout, result.stdout
    assert "ERROR" not in result.stdout, result.stdout


def test_strict_validation_catches_a_misplaced_field(default_objects: list[Obj]) -> None:
    """The check above can fail: a field in the wrong place (as a template slip would put it) is refused."""
    deployment = yaml.safe_load(yaml.safe_dump(one(default_objects, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


# The part of prometheus-operator's CRD schemas (monitoring.coreos.com/v1) the chart uses; unknown fields fail
# as they would with the operator's structural schemas.
_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _META,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "matchExpressions": {"type": "array"},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}
_RULE = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string"},
        "record": {"type": "string"},
        "expr": {"type": ["string", "integer"]},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "rules": {"type": "array", "items": _RULE},
                        },
                    },
                },
            },
        },
    },
}
CRD_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "PrometheusRule": PROMETHEUS_RULE_SCHEMA}


def test_prometheus_operator_objects_match_their_crd_schema(production_objects: list[Obj]) -> None:
    """ServiceMonitor and PrometheusRule (enabled in production values) fit the operator's schema."""
    crds = [o for o in production_objects if o["apiVersion"].startswith(f"{CRD_GROUP}/")]
    assert sorted(o["kind"] for o in crds) == ["PrometheusRule", "PrometheusRule", "ServiceMonitor"]
    for obj in crds:
        jsonschema.validate(obj, CRD_SCHEMAS[obj["kind"]])
    bad = yaml.safe_load(yaml.safe_dump(one(production_objects, "ServiceMonitor")))
    bad["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SERVICE_MONITOR_SCHEMA)


def test_crds_are_off_by_default(default_objects: list[Obj]) -> None:
    """Without prometheus-operator the default install creates no CRD objects and no NetworkPolicy."""
    kinds = {o["kind"] for o in default_objects}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "NetworkPolicy"}


def test_prometheus_rule_is_the_shipped_rules_file_and_promtool_accepts_it(
    production_objects: list[Obj], tmp_path: Path
) -> None:
    """The PrometheusRule's spec is rules/prometheus/model-monitoring.yml, and promtool checks it."""
    rule = one(production_objects, "PrometheusRule", f"{RELEASE}-model-monitoring")
    shipped = yaml.safe_load((REPO / "rules" / "prometheus" / "model-monitoring.yml").read_text())
    assert rule["spec"] == shipped
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail("promtool not found: Debian package `prometheus`")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout, result.stdout


def test_chart_files_are_copies_of_the_repository_files() -> None:
    """helm/alert-router/files/ holds byte-identical copies of rules/, runbooks/ and the Prometheus rules.

    Fix a failure with the sync command in docs/deploy.md ("Keeping the chart's files in sync").
    """
    pairs = {
        CHART / "files" / "rules": REPO / "rules",
        CHART / "files" / "runbooks": REPO / "runbooks",
    }
    for copy_dir, source_dir in pairs.items():
        copies = {p.name: p.read_bytes() for p in copy_dir.glob("*.yaml")}
        sources = {p.name: p.read_bytes() for p in source_dir.glob("*.yaml")}
        assert sorted(copies) == sorted(sources), f"{copy_dir} and {source_dir} list different files"
        for name in sources:
            assert copies[name] == sources[name], f"{copy_dir / name} differs from {source_dir / name}"
        assert not list(copy_dir.glob("*.yml")), "use .yaml"
        assert not list(source_dir.glob("*.yml")), "the chart copies *.yaml only"
    for name in ("model-monitoring.yml", "alert-router.yml"):
        prom = (CHART / "files" / "prometheus" / name).read_bytes()
        assert prom == (REPO / "rules" / "prometheus" / name).read_bytes(), name


# ---- the Deployment ---------------------------------------------------------------------------------------------


def pod_spec(objects: list[Obj]) -> Obj:
    """The Deployment's pod spec."""
    spec: Obj = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(objects: list[Obj]) -> Obj:
    """The alert-router container."""
    (c,) = pod_spec(objects)["containers"]
    return dict(c)


def test_restricted_security_context(values: Obj | None) -> None:
    """Pod Security Standard "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp, and a read-only root filesystem, with only the data dir and /tmp writable."""
    objects = render(values)
    pod = pod_spec(objects)
    c = container(objects)
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] > 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc["runAsNonRoot"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc.get("privileged", False) is False
    assert psc["runAsUser"] == csc["runAsUser"] == 10001, "the UID the image creates the data dir for"
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/alert-router", "/tmp"}
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    for v in pod["volumes"]:
        assert "hostPath" not in v


def test_probes_and_resources(values: Obj | None) -> None:
    """Liveness on /healthz, readiness on /readyz, a startup probe, requests and a memory limit."""
    c = container(render(values))
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080}
    assert c["resources"]["requests"]["cpu"]
    assert c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert c["args"] == ["serve"]


def test_config_rules_and_runbooks_are_mounted_where_the_config_expects_them(values: Obj | None) -> None:
    """The config sits at $ALERT_ROUTER_CONFIG and rules/ and runbooks/ beside it, from the three ConfigMaps."""
    objects = render(values)
    c = container(objects)
    env = {e["name"]: e.get("value") for e in c["env"]}
    config_path = Path(env["ALERT_ROUTER_CONFIG"])
    assert env["ALERT_ROUTER_DATA_DIR"] == "/var/lib/alert-router"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    assert mounts["config"]["mountPath"] == str(config_path)
    assert mounts["config"]["subPath"] == config_path.name
    config = yaml.safe_load(one(objects, "ConfigMap", f"{RELEASE}-config")["data"][config_path.name])
    for kind in ("rules", "runbooks"):
        assert Path(mounts[kind]["mountPath"]) == config_path.parent / config[kind].rstrip("/")
        assert volumes[kind]["configMap"]["name"] == f"{RELEASE}-{kind}"
        one(objects, "ConfigMap", f"{RELEASE}-{kind}")
    assert volumes["config"]["configMap"]["name"] == f"{RELEASE}-config"
    assert config["data_dir"] == env["ALERT_ROUTER_DATA_DIR"] == mounts["data"]["mountPath"]
    assert config["listen"].endswith(f":{c['ports'][0]['containerPort']}")


def test_rule_and_runbook_configmaps_carry_the_repository_files(default_objects: list[Obj]) -> None:
    """The ConfigMaps hold rules/*.yaml and runbooks/*.yaml byte for byte (the chart's copies of them)."""
    for kind in ("rules", "runbooks"):
        data = one(default_objects, "ConfigMap", f"{RELEASE}-{kind}")["data"]
        expected = {p.name: p.read_text() for p in (REPO / kind).glob("*.yaml")}
        assert data == expected


def test_values_can_add_and_replace_rule_files() -> None:
    """rules.files adds a file or replaces a shipped one by name; defaults: false drops the shipped ones."""
    extra = "rules:\n  - name: pager\n    match: ['severity=\"critical\"']\n    receivers: [console]\n"
    data = one(render({"rules": {"files": {"zz-extra.yaml": extra}}}), "ConfigMap", f"{RELEASE}-rules")["data"]
    assert data["zz-extra.yaml"] == extra
    assert "routing.yaml" in data
    data = one(
        render({"rules": {"defaults": False, "files": {"routing.yaml": extra}}}), "ConfigMap", f"{RELEASE}-rules"
    )["data"]
    assert data == {"routing.yaml": extra}


def materialize(objects: list[Obj], root: Path) -> Path:
    """Lay the rendered ConfigMaps out as the pod sees them under ``root`` and return the config path.

    Paths under /etc/alert-router/secrets/ in the config are redirected to ``root/secrets`` (with fake secret
    files created), since the test cannot write to /etc.
    """
    config_map = one(objects, "ConfigMap", f"{RELEASE}-config")["data"]
    text = config_map["alert-router.yaml"].replace("/etc/alert-router/secrets", str(root / "secrets"))
    (root / "secrets").mkdir(parents=True)
    for key in {
        line.split(str(root / "secrets") + "/")[1].split()[0]
        for line in text.splitlines()
        if str(root / "secrets") in line
    }:
        (root / "secrets" / key).write_text("not-a-real-secret\n")
    config = root / "alert-router.yaml"
    config.write_text(text)
    for kind in ("rules", "runbooks"):
        (root / kind).mkdir()
        for name, content in one(objects, "ConfigMap", f"{RELEASE}-{kind}")["data"].items():
            (root / kind / name).write_text(content)
    return config


def test_rendered_config_is_accepted_by_alert_router(values: Obj | None, tmp_path: Path) -> None:
    """alert-router's own loader accepts the rendered config with the rendered rules and runbooks."""
    objects = render(values)
    config = load(materialize(objects, tmp_path), env={})
    assert config.settings.dry_run is True, "the chart must ship with remediation in dry run"
    assert str(config.data_dir) == "/var/lib/alert-router"
    assert {r.name for r in config.rules} >= {"model-latency", "model-service-down"}
    assert set(config.runbooks) == {p.stem for p in (REPO / "runbooks").glob("*.yaml")}
    if values is not None:
        assert config.settings.auth.enabled, "production must authenticate the webhook"
        assert config.store_url.startswith("postgresql://")


def test_checksum_annotations_follow_the_configmaps(default_objects: list[Obj]) -> None:
    """Each checksum annotation is the sha256 of its rendered ConfigMap template."""
    raw = render_raw()
    annotations = one(default_objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    for kind in ("config", "rules", "runbooks"):
        text = raw[f"alert-router/templates/configmap-{kind}.yaml"]
        assert annotations[f"checksum/{kind}"] == hashlib.sha256(text.encode()).hexdigest()


def checksums(values: Obj | None) -> dict[str, str]:
    """The Deployment's checksum annotations for ``values``."""
    annotations = one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_a_config_change_rolls_the_pods() -> None:
    """Changing the config changes checksum/config only; changing a rule file changes checksum/rules only."""
    base = checksums(None)
    assert set(base) == {"checksum/config", "checksum/rules", "checksum/runbooks"}
    assert checksums(None) == base, "rendering is deterministic"
    changed = checksums({"config": {"log": {"format": "json", "level": "debug"}}})
    assert changed["checksum/config"] != base["checksum/config"]
    assert changed["checksum/rules"] == base["checksum/rules"]
    rules = checksums({"rules": {"files": {"extra.yaml": "rules: []\n"}}})
    assert rules["checksum/rules"] != base["checksum/rules"]
    assert rules["checksum/config"] == base["checksum/config"]
    runbooks = checksums({"runbooks": {"defaults": False}})
    assert runbooks["checksum/runbooks"] != base["checksum/runbooks"]


# ---- replicas and the store -------------------------------------------------------------------------------------


def test_several_replicas_with_sqlite_fail_to_render_with_a_clear_message() -> None:
    """replicaCount 3 without a PostgreSQL store is refused, naming the fix."""
    message = render_error({"replicaCount": 3})
    assert "replicaCount is 3 but the store is SQLite" in message
    assert "store.url" in message
    assert "postgresql://" in message
    message = render_error({"replicaCount": 2, "store": {"url": "sqlite:///var/lib/alert-router/x.db"}})
    assert "store is SQLite" in message


def test_several_replicas_with_postgresql_render_with_a_rolling_update() -> None:
    """With PostgreSQL, 3 replicas render, roll one at a time and get the password from the Secret only."""
    objects = render(
        {
            "replicaCount": 3,
            "persistence": {"enabled": False},
            "store": {"url": "postgresql://ar@pg:5432/ar", "passwordSecret": {"name": "pg", "key": "password"}},
        }
    )
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["PGPASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "pg", "key": "password"}}
    assert not by_kind(objects, "PersistentVolumeClaim")


def test_single_sqlite_replica_recreates_and_keeps_its_volume(default_objects: list[Obj]) -> None:
    """The default: one replica, Recreate (one SQLite writer at a time), a PVC kept on uninstall."""
    deployment = one(default_objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pvc = one(default_objects, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volumes = {v["name"]: v for v in pod_spec(default_objects)["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"store": {"url": "postgresql://u:hunter2@pg/db"}}, "contains a password"),
        ({"store": {"url": "mysql://pg/db"}}, "/store/url"),
        ({"config": {"listen": "0.0.0.0:9999"}}, "config.listen is set by the chart"),
        ({"config": {"store": "postgresql://pg/db"}}, "config.store is set by the chart"),
        ({"rbac": {"clusterRole": True}}, "never cluster-wide"),
        (
            {"replicaCount": 2, "store": {"url": "postgresql://ar@pg/ar"}},
            "ReadWriteOnce volume cannot be shared",
        ),
    ],
)
def test_impossible_values_fail_with_a_message(values: Obj, message: str) -> None:
    """Values that cannot work are refused at render time, saying what to change."""
    assert message in render_error(values)


# ---- secrets ----------------------------------------------------------------------------------------------------


def test_secrets_are_referenced_never_rendered(production_objects: list[Obj]) -> None:
    """No Secret object is created; existingSecret is mounted read-only and the config reads the token file."""
    assert not by_kind(production_objects, "Secret")
    values = production_values()
    pod = pod_spec(production_objects)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == values["existingSecret"]
    mount = {m["name"]: m for m in container(production_objects)["volumeMounts"]}["secrets"]
    assert mount["readOnly"] is True
    assert mount["mountPath"] == "/etc/alert-router/secrets"
    config = yaml.safe_load(one(production_objects, "ConfigMap", f"{RELEASE}-config")["data"]["alert-router.yaml"])
    assert config["auth"] == {"bearer_token_file": f"/etc/alert-router/secrets/{values['webhookTokenKey']}"}
    assert config["store"] == values["store"]["url"]
    assert ":" not in config["store"].split("@")[0].split("//")[1]


def test_without_existing_secret_nothing_is_mounted(default_objects: list[Obj]) -> None:
    """The default install mounts no Secret and leaves auth to config (NOTES warns about it)."""
    assert "secrets" not in {v["name"] for v in pod_spec(default_objects)["volumes"]}
    config = yaml.safe_load(one(default_objects, "ConfigMap", f"{RELEASE}-config")["data"]["alert-router.yaml"])
    assert "auth" not in config
    assert "WARNING: no webhook credentials" in render_raw()["alert-router/templates/NOTES.txt"]


# ---- RBAC -------------------------------------------------------------------------------------------------------

# The RBAC the runbook actions need is derived from the code, the way the API server authorizes requests: every
# KubeSession method an action module calls is run on a dry-run session without a cluster, which records the exact
# request (method and path) it would send; the path and method give (apiGroup, resource, verb).

Grant = tuple[str, str, str]
_VERBS = {"PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"}


def rbac_of(method: str, path: str) -> Grant:
    """(apiGroup, resource, verb) of a namespaced request, as the API server's request info computes them."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":  # /api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]
        group, rest = "", parts[2:]
    else:  # /apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME[/SUB]]
        group, rest = parts[1], parts[3:]
    assert rest[0] == "namespaces", f"not a namespaced request: {path}"
    plural, name, sub = rest[2], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None
    resource = f"{plural}/{sub}" if sub else plural
    verb = ("get" if name else "list") if method == "GET" else _VERBS[method]
    return group, resource, verb


async def kube_session_grants() -> dict[str, Grant]:
    """KubeSession method name -> the grant its request needs."""
    from alert_router.remediation.kube import KubeSession

    dummies: dict[str, Any] = {"namespace": "ns", "name": "obj", "body": {}}
    out: dict[str, Grant] = {}
    for name, fn in inspect.getmembers(KubeSession, inspect.iscoroutinefunction):
        if name.startswith("_"):
            continue
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        args = {p.name: dummies[p.name] for p in params if p.default is inspect.Parameter.empty}
        session = KubeSession(None, dry_run=True)
        assert await getattr(session, name)(**args) is None, f"{name} must not reach a cluster in this dry run"
        (call,) = session.take_calls()
        out[name] = rbac_of(call.method, call.path)
    return out


async def action_grants() -> dict[str, set[Grant]]:
    """Action key -> the grants of the KubeSession methods its module calls."""
    from alert_router.remediation.actions import REGISTRY

    methods = await kube_session_grants()
    out: dict[str, set[Grant]] = {}
    for key, action in REGISTRY.items():
        module = inspect.getmodule(action.run)
        assert module is not None
        used = set(re.findall(r"\bkube\.(\w+)\(", inspect.getsource(module)))
        unknown = used - set(methods) - {"calls", "take_calls"}
        assert not unknown, f"action {key} calls kube.{unknown}, which KubeSession does not define"
        out[key] = {methods[m] for m in used & set(methods)}
    return out


async def evidence_grants() -> set[Grant]:
    """The grants of the KubeSession methods the evidence (remediation/evidence.py) calls."""
    from alert_router.remediation import evidence

    methods = await kube_session_grants()
    used = set(re.findall(r"\bsession\.(\w+)\(", inspect.getsource(evidence)))
    assert used and not used - set(methods), f"evidence calls unknown KubeSession methods {used - set(methods)}"
    return {methods[m] for m in used}


def test_rbac_of_follows_the_api_server() -> None:
    """The request-to-grant mapping: a named GET is get, an unnamed one is list, subresources are joined."""
    assert rbac_of("GET", "/apis/apps/v1/namespaces/p/deployments/x") == ("apps", "deployments", "get")
    assert rbac_of("GET", "/api/v1/namespaces/p/pods") == ("", "pods", "list")
    assert rbac_of("PATCH", "/apis/apps/v1/namespaces/p/deployments/x/scale") == ("apps", "deployments/scale", "patch")
    assert rbac_of("POST", "/apis/batch/v1/namespaces/p/jobs") == ("batch", "jobs", "create")


def test_only_kube_session_talks_to_the_cluster() -> None:
    """No module but remediation/kube.py uses the kubernetes client's API classes, so the scan below sees all."""
    package = REPO / "alert_router"
    offenders = [
        str(p.relative_to(REPO))
        for p in package.rglob("*.py")
        if p.name != "kube.py"
        and re.search(r"\b(CoreV1Api|AppsV1Api|BatchV1Api|CustomObjectsApi|ApiClient)\b", p.read_text())
    ]
    assert offenders == []


# What the Role holds; test_role_grants_exactly_what_the_actions_use proves it equal to what the code needs.
ROLE_GRANTS: set[Grant] = {
    ("apps", "deployments", "get"),
    ("apps", "deployments", "patch"),
    ("apps", "deployments/scale", "get"),
    ("apps", "deployments/scale", "patch"),
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "patch"),
    ("apps", "statefulsets/scale", "get"),
    ("apps", "statefulsets/scale", "patch"),
    ("apps", "replicasets", "list"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("autoscaling", "horizontalpodautoscalers", "patch"),
    ("", "pods/log", "get"),
    ("", "events", "list"),
    ("batch", "cronjobs", "get"),
    ("batch", "jobs", "create"),
    ("batch", "jobs", "get"),
    ("", "pods", "list"),
    ("", "pods", "delete"),
}


def grants(role: Obj) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role or ClusterRole allows; wildcards are refused outright."""
    out: set[tuple[str, str, str]] = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {role['metadata']['name']}: {rule}"
                    out.add((group, resource, verb))
    return out


async def test_role_grants_exactly_what_the_actions_use(default_objects: list[Obj]) -> None:
    """The Role allows the union of the runbook actions' and the evidence's requests: nothing missing, nothing more."""
    role = one(default_objects, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    per_action = await action_grants()
    evidence = await evidence_grants()
    required = set().union(*per_action.values(), evidence)
    missing = required - grants(role)
    extra = grants(role) - required
    assert not missing, f"the chart's Role lacks {sorted(missing)} (templates/_helpers.tpl alert-router.rbacRules)"
    assert not extra, f"the chart's Role grants {sorted(extra)}, which no action uses"
    assert grants(role) == ROLE_GRANTS
    # The kube-touching actions of the shipped runbooks are all known and covered.
    shipped_actions = {
        step["action"]
        for p in (REPO / "runbooks").glob("*.yaml")
        for section in ("steps", "on_failure")
        for step in yaml.safe_load(p.read_text()).get(section, [])
    }
    assert shipped_actions <= set(per_action), f"unknown actions in runbooks/: {shipped_actions - set(per_action)}"
    assert per_action["scale"] == {
        ("apps", "deployments/scale", "get"), ("apps", "deployments/scale", "patch"),
        ("apps", "statefulsets/scale", "get"), ("apps", "statefulsets/scale", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "list"), ("autoscaling", "horizontalpodautoscalers", "patch"),
    }
    assert per_action["rollout_undo"] == {("apps", "deployments", "get"), ("apps", "deployments", "patch"),
                                          ("apps", "replicasets", "list")}
    assert {("", "events", "list"), ("", "pods/log", "get"), ("apps", "replicasets", "list")} <= evidence


def test_role_per_listed_namespace_bound_to_the_service_account(production_objects: list[Obj]) -> None:
    """rbac.namespaces gives a Role and a RoleBinding in each namespace, bound to the release's ServiceAccount."""
    sa = one(production_objects, "ServiceAccount")
    roles = by_kind(production_objects, "Role")
    bindings = by_kind(production_objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["prod", "staging"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["prod", "staging"]
    for role in roles:
        assert grants(role) == ROLE_GRANTS
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"{RELEASE}-remediator",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
        ]
    assert not by_kind(production_objects, "ClusterRole")
    assert not by_kind(production_objects, "ClusterRoleBinding")
    assert pod_spec(production_objects)["serviceAccountName"] == sa["metadata"]["name"]


def test_cluster_role_switch_binds_per_namespace_only() -> None:
    """rbac.clusterRole: one ClusterRole with the same rules, a RoleBinding per namespace, no ClusterRoleBinding."""
    objects = render({"rbac": {"namespaces": ["prod", "staging", "ml"], "clusterRole": True}})
    cluster_role = one(objects, "ClusterRole")
    assert grants(cluster_role) == ROLE_GRANTS
    assert "namespace" not in cluster_role["metadata"]
    assert NAMESPACE in cluster_role["metadata"]["name"], "cluster-scoped names must not collide between releases"
    assert not by_kind(objects, "Role")
    assert not by_kind(objects, "ClusterRoleBinding")
    bindings = by_kind(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ml", "prod", "staging"]
    for b in bindings:
        assert b["roleRef"]["kind"] == "ClusterRole"
        assert b["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_rbac_can_be_left_to_the_operator() -> None:
    """rbac.create false renders no RBAC objects at all."""
    kinds = {o["kind"] for o in render({"rbac": {"create": False}})}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


# ---- Service, PDB, ServiceMonitor, NetworkPolicy ----------------------------------------------------------------


def test_selectors_point_at_the_pods(production_objects: list[Obj]) -> None:
    """Service, PDB, ServiceMonitor and NetworkPolicy select exactly the Deployment's pods, by the named port."""
    deployment = one(production_objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = one(production_objects, "Service")
    assert service["spec"]["selector"] == selector
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert one(production_objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    monitor = one(production_objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    policy = one(production_objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == selector


def test_pdb_allows_a_drain(values: Obj | None) -> None:
    """The PDB never blocks every eviction: with one replica it allows one unavailable pod."""
    objects = render(values)
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    replicas = one(objects, "Deployment")["spec"]["replicas"]
    if "minAvailable" in pdb:
        assert pdb["minAvailable"] < replicas
    else:
        assert pdb["maxUnavailable"] >= 1


def test_network_policy_admits_alertmanager_and_keeps_dns(production_objects: list[Obj]) -> None:
    """Ingress only to the http port from Alertmanager/Prometheus; with egress rules, DNS stays reachable."""
    spec = one(production_objects, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    names = {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in ingress["from"]}
    assert names == {"alertmanager", "prometheus"}
    assert {"port": 53, "protocol": "UDP"} in spec["egress"][0]["ports"]


def test_release_name_and_namespace_flow_through() -> None:
    """Another release name and namespace change every name and the RBAC subject consistently."""
    with helm.Chart.load(CHART) as chart:
        raw = chart.render(None, name="team-a", namespace="ml-ops")
    objects = [d for path, text in raw.items() if path.endswith(".yaml") for d in yaml.safe_load_all(text) if d]
    names = {o["metadata"]["name"] for o in objects}
    assert "team-a-alert-router" in names
    for o in objects:
        if o["kind"] not in ("ClusterRole",):
            assert o["metadata"]["namespace"] == "ml-ops"
    (binding,) = by_kind(objects, "RoleBinding")
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "team-a-alert-router", "namespace": "ml-ops"}


def test_image_defaults_to_the_app_version_and_a_digest_wins(default_objects: list[Obj]) -> None:
    """The image tag follows Chart.yaml's appVersion; image.digest pins by digest instead."""
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(default_objects)["image"] == f"ghcr.io/alert-router/alert-router:{app_version}"
    digest = "sha256:" + "a" * 64
    assert (
        container(render({"image": {"repository": "r.example/ar", "digest": digest}}))["image"]
        == f"r.example/ar@{digest}"
    )
    import alert_router

    assert app_version == alert_router.__version__, "Chart.yaml appVersion must follow the package version"


# ---- alert-router's own alerts and its Grafana dashboard ---------------------------------------------------------

DASHBOARD = CHART / "files" / "dashboards" / "alert-router.json"
# Grafana's variables, replaced by what they stand for at query time so promtool can parse the expression.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": "monitoring"}


def test_self_monitoring_rule_is_the_shipped_file_with_or_without_the_watchdog(tmp_path: Path) -> None:
    """The second PrometheusRule carries rules/prometheus/alert-router.yml; watchdog: false drops only the Watchdog."""
    shipped = yaml.safe_load((REPO / "rules" / "prometheus" / "alert-router.yml").read_text())
    objects = render({"prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}})
    rule = one(objects, "PrometheusRule", f"{RELEASE}-self-monitoring")
    assert rule["spec"] == shipped
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([promtool_bin(), "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and "SUCCESS: 7 rules found" in result.stdout, result.stdout + result.stderr
    without = one(render({"prometheusRule": {"enabled": True, "watchdog": False}}), "PrometheusRule",
                  f"{RELEASE}-self-monitoring")
    assert [g["name"] for g in without["spec"]["groups"]] == ["alert-router.self"]
    only_self = render({"prometheusRule": {"enabled": True, "modelMonitoring": False}})
    assert [o["metadata"]["name"] for o in by_kind(only_self, "PrometheusRule")] == [f"{RELEASE}-self-monitoring"]


def promtool_bin() -> str:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail("promtool not found: Debian package `prometheus`")
    return promtool


def dashboard_expressions(dashboard: Obj) -> dict[str, str]:
    """``panel title / refId`` -> expression, with Grafana's variables replaced."""
    exprs: dict[str, str] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {target['expr']}"
            exprs[f"{panel['title']} / {target['refId']}"] = expr
    return exprs


def test_dashboard_configmap_carries_the_sidecar_label_and_the_dashboard(production_objects: list[Obj]) -> None:
    """kube-prometheus-stack's Grafana sidecar loads ConfigMaps labelled grafana_dashboard: "1"."""
    cm = one(production_objects, "ConfigMap", f"{RELEASE}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert json.loads(cm["data"]["alert-router.json"]) == json.loads(DASHBOARD.read_text())
    assert not [o for o in render() if o["metadata"]["name"] == f"{RELEASE}-dashboard"], "off by default"


def test_every_dashboard_query_parses_and_reads_exported_metrics(tmp_path: Path) -> None:
    """promtool parses each panel's PromQL (as a recording rule) and every metric comes from metrics.py."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_expressions(dashboard)
    assert len(exprs) >= 15
    result = check_expressions(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout, result.stdout
    assert unknown_metrics(exprs.values()) == set()
    used = {name for e in exprs.values() for name in metric_names(e)}
    for name in ("alert_router_queue_oldest_age_seconds", "alert_router_reclaimed_total",
                 "alert_router_replicas_alive", "alert_router_deliveries_in_flight",
                 "alert_router_last_delivery_timestamp_seconds", "alert_router_deadman_firing"):
        assert name in used, f"no panel shows {name}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert dashboard["uid"] == "alert-router"


def test_the_dashboard_check_can_fail(tmp_path: Path) -> None:
    """A broken query, or one reading a metric alert-router does not export, is caught."""
    broken = check_expressions(["sum by (receiver) (rate(alert_router_notifications_total[5m])"], tmp_path)
    assert broken.returncode != 0
    assert unknown_metrics(["rate(alert_router_notification_total[5m])"]) == {"alert_router_notification_total"}
    assert unknown_metrics(["histogram_quantile(0.9, rate(alert_router_processing_seconds_bucket[5m]))"]) == set()



def test_notes_warn_exactly_when_the_webhook_has_no_credentials() -> None:
    """NOTES follow what the config gets: config.auth alone is credentials; a Secret without webhookTokenKey is not."""
    notes = "alert-router/templates/NOTES.txt"
    with_auth = {"config": {"auth": {"bearer_token": "${ALERT_ROUTER_TOKEN}"}}}
    assert "WARNING: no webhook credentials" not in render_raw(with_auth)[notes]
    assert "WARNING: no webhook credentials" not in render_raw({"existingSecret": "s"})[notes]
    assert "WARNING: no webhook credentials" in render_raw({"existingSecret": "s", "webhookTokenKey": ""})[notes]
