"""infra/: compose file, Dockerfile, Grafana dashboard and the Helm chart, checked without a cluster.

No helm binary installs from the registries this project uses, so the chart's templates
keep to a small subset of Helm's template language, rendered here by ``render`` (which
refuses anything outside the subset, so a template that needs real helm fails this
test). Each rendered object is validated against the Kubernetes 1.30 OpenAPI schemas
(strict: unknown fields fail) with kubernetes-validate, offline.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from backend.observability.metrics import Metrics
from experts.registry import ExpertRegistry

INFRA = Path(__file__).resolve().parents[2] / "infra"
CHART = INFRA / "helm" / "expertgate"
K8S_VERSION = "1.30.0"

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _lookup(path: str, ctx: dict[str, Any]) -> Any:
    if not path.startswith("."):
        raise ValueError(f"unsupported template expression {path!r}")
    value: Any = ctx
    for part in path[1:].split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{path}: no {part!r}")
        value = value[part]
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _evaluate(expr: str, ctx: dict[str, Any]) -> str:
    head, *pipes = [p.strip() for p in expr.split("|")]
    words = head.split()
    if words[0] == "toYaml" and len(words) == 2:
        text = yaml.safe_dump(_lookup(words[1], ctx), default_flow_style=False, sort_keys=False).rstrip("\n")
    elif len(words) == 1:
        text = _scalar(_lookup(words[0], ctx))
    else:
        raise ValueError(f"unsupported template expression {expr!r}")
    for pipe in pipes:
        name, *args = pipe.split()
        if name == "quote" and not args:
            text = json.dumps(text)
        elif name == "nindent" and len(args) == 1:
            pad = " " * int(args[0])
            text = "\n" + "\n".join(pad + line if line else line for line in text.rstrip("\n").split("\n"))
        else:
            raise ValueError(f"unsupported template function {pipe!r}")
    return text


def render(template: str, ctx: dict[str, Any]) -> str:
    """Render the chart's template subset: values, quote, toYaml, nindent, if/end, trim markers."""
    pieces: list[str] = []
    pos = 0
    for match in _ACTION.finditer(template):
        pieces.append(template[pos : match.start()])
        pieces.append(match)  # type: ignore[arg-type]
        pos = match.end()
    pieces.append(template[pos:])
    # Trim markers eat the whitespace next to the action.
    for i, piece in enumerate(pieces):
        if isinstance(piece, re.Match):
            if piece.group(1) and i > 0:
                pieces[i - 1] = pieces[i - 1].rstrip()
            if piece.group(3) and i + 1 < len(pieces):
                pieces[i + 1] = pieces[i + 1].lstrip()
    out: list[str] = []
    active = [True]
    for piece in pieces:
        if not isinstance(piece, re.Match):
            if all(active):
                out.append(piece)
            continue
        expr = piece.group(2)
        if expr.startswith("if "):
            active.append(bool(_lookup(expr[3:].strip(), ctx)) if all(active) else False)
        elif expr == "end":
            active.pop()
            assert active, "unbalanced {{ end }}"
        elif all(active):
            out.append(_evaluate(expr, ctx))
    assert len(active) == 1, "unclosed {{ if }}"
    return "".join(out)


def rendered_chart(**overrides: Any) -> list[dict[str, Any]]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for dotted, value in overrides.items():
        node = values
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    ctx = {
        "Values": copy.deepcopy(values),
        "Release": {"Name": "eg", "Namespace": "default"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    }
    docs: list[dict[str, Any]] = []
    for path in sorted((CHART / "templates").glob("*.yaml")):
        text = render(path.read_text(), ctx)
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def test_renderer_refuses_what_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        render('{{ include "x" . }}', {"Values": {}})
    with pytest.raises(KeyError):
        render("{{ .Values.missing }}", {"Values": {}})
    assert (
        render(
            "a:\n  {{- if .Values.on }}\n  b: {{ .Values.v | quote }}\n{{- end }}\n", {"Values": {"on": True, "v": 1}}
        )
        == 'a:\n  b: "1"\n'
    )


@pytest.mark.parametrize(
    "overrides", [{}, {"vllm__enabled": True, "ingress__enabled": False, "api__autoscaling__enabled": False}]
)
def test_chart_renders_objects_valid_for_kubernetes(overrides: dict[str, Any]) -> None:
    docs = rendered_chart(**overrides)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    expected = {
        "ConfigMap/eg-config",
        "Secret/eg-secrets",
        "Deployment/eg-api",
        "Service/eg-api",
        "Deployment/eg-worker",
        "Deployment/eg-beat",
        "PersistentVolumeClaim/eg-shared",
    }
    assert expected <= set(kinds)
    assert ("Deployment/eg-vllm" in kinds) == bool(overrides.get("vllm__enabled"))
    assert ("HorizontalPodAutoscaler/eg-api" in kinds) == (not overrides)
    assert ("Ingress/eg" in kinds) == (not overrides)


def test_chart_workloads_have_probes_resources_and_run_as_non_root(tmp_path: Path) -> None:
    docs = rendered_chart(vllm__enabled=True)
    for name in ("eg-api", "eg-worker", "eg-beat"):
        pod = by_kind(docs, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["resources"]["limits"], name
            assert container["envFrom"][1]["secretRef"]["name"] == "eg-secrets"
    api = by_kind(docs, "Deployment", "eg-api")["spec"]["template"]["spec"]
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(api["containers"][0])
    assert api["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["initContainers"][0]["args"] == ["migrate"]
    beat = by_kind(docs, "Deployment", "eg-beat")["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"
    vllm = by_kind(docs, "Deployment", "eg-vllm")["spec"]["template"]["spec"]["containers"][0]
    assert "--enable-expert-parallel" in vllm["args"]
    assert "--tensor-parallel-size=2" in vllm["args"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 2
    config = by_kind(docs, "ConfigMap", "eg-config")["data"]
    experts_file = tmp_path / "experts.yaml"
    experts_file.write_text(config["experts.yaml"])
    assert [spec.name for spec in ExpertRegistry.from_yaml(experts_file)] == ["general"]
    hpa = by_kind(rendered_chart(), "HorizontalPodAutoscaler", "eg-api")["spec"]
    assert hpa["minReplicas"] == 2 and hpa["scaleTargetRef"]["name"] == "eg-api"


def test_ingress_keeps_metrics_internal() -> None:
    ingress = by_kind(rendered_chart(), "Ingress", "eg")
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert "/metrics" not in paths and not any(
        p == "/" and e["pathType"] == "Prefix"
        for p, e in zip(paths, ingress["spec"]["rules"][0]["http"]["paths"], strict=True)
    )


def test_compose_services_profiles_and_scaling() -> None:
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker", "beat", "llama", "vllm", "prometheus", "grafana"} <= set(
        services
    )
    # Scalable API: no fixed host port (`--scale api=N` would collide).
    assert "ports" not in services["api"]
    assert services["api"]["command"] == ["serve"]
    assert services["worker"]["command"][0] == "worker" and services["beat"]["command"][0] == "beat"
    for name in ("api", "worker", "beat"):
        env = services[name]["environment"]
        assert env["EXPERTGATE_REDIS_URL"].startswith("redis://redis:")
        assert env["EXPERTGATE_DATABASE_URL"].startswith("postgresql://")
        assert "shared:/var/lib/expertgate" in services[name]["volumes"]
    vllm = services["vllm"]
    assert vllm["profiles"] == ["gpu"]
    assert "--enable-expert-parallel" in vllm["command"]
    assert any(a.startswith("--tensor-parallel-size=") for a in vllm["command"])
    assert all("profiles" not in s for n, s in services.items() if n != "vllm")
    registry = ExpertRegistry.from_yaml(INFRA / "experts.compose.yaml")
    assert {spec.llm.api_base for spec in registry} == {"http://llama:8080/v1"}


def test_dockerfile_is_slim_non_root_with_healthcheck() -> None:
    text = (INFRA / "Dockerfile").read_text()
    final = text.rsplit("\nFROM ", 1)[1]
    assert final.startswith("python:3.11-slim")
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user is not None and not user.group(1).startswith(("root", "0"))
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert "build-essential" not in final
    # Migrations and the seed gate are not in a wheel: the image runs the source tree.
    assert "pip install --no-cache-dir -c constraints.txt -e ." in text
    assert "COPY --from=build /opt/expertgate/src /opt/expertgate/src" in final
    for needed in ("backend/db/migrations/versions", "router/artifacts/gate-seed-v1"):
        assert (INFRA.parent / needed).is_dir()


def test_dashboard_queries_only_metrics_we_export() -> None:
    dashboard = json.loads((INFRA / "grafana" / "dashboards" / "expertgate.json").read_text())
    exported = {
        m.name for m in Metrics(router_version=lambda: "v", index_versions=lambda: {"legal": "i1"}).registry.collect()
    }
    used = {
        name
        for panel in dashboard["panels"]
        for t in panel["targets"]
        for name in re.findall(r"expertgate_\w+", t["expr"])
    }
    assert used
    for name in used:
        base = re.sub(r"_(total|bucket|count|sum|info)$", "", name)
        assert base in exported, f"dashboard uses {name}, not exported"


def test_schema_check_catches_a_broken_object() -> None:
    api = copy.deepcopy(by_kind(rendered_chart(), "Deployment", "eg-api"))
    api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"bad": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSION, strict=True)
    api = copy.deepcopy(by_kind(rendered_chart(), "Deployment", "eg-api"))
    api["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, K8S_VERSION, strict=True)
