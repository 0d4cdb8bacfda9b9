"""`make lint-deploy`: the Helm chart and docker-compose.yml, checked without a cluster, a
Docker engine or a helm binary.

* The chart is linted (strict) and rendered by Helm's own Go library (helm-python-sdk) with its
  default values and with helm/chaukas/ci/*.yaml; values.schema.json is enforced on the way.
* Every rendered manifest is validated against the Kubernetes schemas (kubernetes-validate,
  strict: unknown fields are errors). Custom resources of CRDs the chart documents as optional
  (the Prometheus Operator's ServiceMonitor) are checked for their required fields only.
* docker-compose.yml is validated against the Compose specification's JSON schema, then for
  what the schema cannot see: files it mounts and builds from exist, dependencies name real
  services, and a `service_healthy` dependency has a health check.

Usage: python lint.py [CHART_DIR] [COMPOSE_FILE]   (exit 1 and a list of problems on failure)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE_VERSION = "1.31.0"
OPTIONAL_CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"): ["spec.selector", "spec.endpoints"]}


def values_files(chart: Path) -> list[tuple[str, dict]]:
    """(label, values) for the defaults and every file under ci/."""
    cases = [("default values", {})]
    for path in sorted((chart / "ci").glob("*.yaml")):
        cases.append((str(path.relative_to(chart)), yaml.safe_load(path.read_text()) or {}))
    return cases


def render(chart: Path, values: dict) -> list[tuple[str, dict]]:
    """(template, manifest) for everything the chart renders with `values`."""
    loaded = helm.Chart.load(str(chart))
    rendered = loaded.render(values, name="chaukas", namespace="chaukas", is_install=True)
    manifests = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                manifests.append((template, document))
    return manifests


def check_custom_resource(manifest: dict, required: list[str]) -> list[str]:
    problems = []
    for dotted in required:
        node = manifest
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if not node:
            problems.append(f"{manifest['kind']}: {dotted} is missing")
    return problems


def chaukas_binary() -> Path:
    """This checkout's `chaukas` (built if missing), to load rendered configs as the services do."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "chaukas"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--quiet", "-p", "chaukas"], cwd=ROOT, check=True)
    return binary


def check_config(label: str, manifest: dict) -> list[str]:
    """The rendered config.toml, loaded by every role exactly as in a pod."""
    config = ROOT / "target" / "deploy-lint" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(manifest["data"]["config.toml"])
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHAUKAS_")}
    result = subprocess.run(
        [str(chaukas_binary()), "check-config", "--config", str(config)],
        capture_output=True, text=True, env=env,
    )
    if result.returncode != 0:
        return [f"{label}: the rendered config.toml does not load: {result.stderr.strip()}"]
    return []


def check_chart(chart: Path) -> list[str]:
    problems = []
    for label, values in values_files(chart):
        report = helm.lint(str(chart), values, strict=True, kube_version=f"v{KUBE_VERSION}")
        for message in report.get("messages", []):
            if message.get("severity", 0) >= 2:
                problems.append(f"helm lint ({label}): {message.get('path')}: {message.get('error')}")
        problems += [f"helm lint ({label}): {error}" for error in report.get("errors") or []]
        try:
            manifests = render(chart, values)
        except helm.HelmError as error:
            problems.append(f"helm render ({label}): {error}")
            continue
        if not manifests:
            problems.append(f"helm render ({label}): nothing rendered")
        kinds = []
        for template, manifest in manifests:
            kind = (manifest.get("apiVersion"), manifest.get("kind"))
            kinds.append(kind[1])
            name = f"{template} {kind[1]}/{manifest.get('metadata', {}).get('name')}"
            if kind == ("v1", "ConfigMap") and "config.toml" in manifest.get("data", {}):
                problems += check_config(label, manifest)
            if kind in OPTIONAL_CRDS:
                problems += [f"{label}: {name}: {p}" for p in check_custom_resource(manifest, OPTIONAL_CRDS[kind])]
                continue
            try:
                kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problems.append(f"{label}: {name}: {path}: {error.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
                problems.append(f"{label}: {name}: no Kubernetes {KUBE_VERSION} schema: {error}")
        print(f"chart {chart.name} ({label}): {len(manifests)} manifests ({', '.join(sorted(set(kinds)))})")
    return problems


def check_compose(compose: Path) -> list[str]:
    problems = []
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(compose)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        problems.append(f"{compose.name} against the Compose specification:\n{result.stdout}{result.stderr}")
    spec = yaml.safe_load(compose.read_text())
    services = spec.get("services", {})
    base = compose.parent
    for name, service in services.items():
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        if context and not (base / context / "Dockerfile").exists():
            problems.append(f"{compose.name}: {name}: build context {context} has no Dockerfile")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")) and not (base / source).exists():
                problems.append(f"{compose.name}: {name}: mounts {source}, which does not exist")
        depends = service.get("depends_on", {})
        for other, condition in (depends.items() if isinstance(depends, dict) else [(d, {}) for d in depends]):
            if other not in services:
                problems.append(f"{compose.name}: {name}: depends on unknown service {other}")
            elif (condition or {}).get("condition") == "service_healthy" and "healthcheck" not in services[other]:
                problems.append(f"{compose.name}: {name}: waits for {other} to be healthy, which has no healthcheck")
    print(f"{compose.name}: {len(services)} services ({', '.join(services)})")
    return problems


def main(chart: str = str(ROOT / "helm" / "chaukas"), compose: str = str(ROOT / "docker-compose.yml")) -> int:
    problems = check_chart(Path(chart)) + check_compose(Path(compose))
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("deploy files are valid")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HELM_CACHE_HOME", str(ROOT / "target" / "deploy-lint" / "helm-cache"))
    sys.exit(main(*sys.argv[1:]))
