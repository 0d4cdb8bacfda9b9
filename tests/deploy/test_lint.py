"""`make lint-deploy` must fail on broken deployment files: each test breaks a copy and
expects the lint to name the problem."""

import shutil
from pathlib import Path

import lint

CHART = lint.ROOT / "helm" / "chaukas"
COMPOSE = lint.ROOT / "docker-compose.yml"


def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "chaukas"
    shutil.copytree(CHART, copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_real_files_pass():
    assert lint.check_chart(CHART) == []
    assert lint.check_compose(COMPOSE) == []


def test_a_broken_template_fails(tmp_path):
    chart = chart_copy(tmp_path)
    edit(chart / "templates" / "writer.yaml", "replicas: {{ .Values.writer.replicas }}",
         "replicas: {{ .Values.writer.replicas ")
    problems = lint.check_chart(chart)
    assert any("writer.yaml" in p for p in problems), problems


def test_a_schema_invalid_manifest_fails(tmp_path):
    chart = chart_copy(tmp_path)
    # Renders fine, but a Deployment has no `replica` field and ports are numbers.
    edit(chart / "templates" / "query.yaml", "replicas: {{ .Values.query.replicas }}",
         "replica: {{ .Values.query.replicas }}")
    edit(chart / "templates" / "writer.yaml", "containerPort: {{ .Values.writer.httpPort }}",
         "containerPort: health")
    problems = lint.check_chart(chart)
    assert any("Deployment/chaukas-query" in p and "replica" in p for p in problems), problems
    assert any("Deployment/chaukas-writer" in p and "containerPort" in p for p in problems), problems


def test_values_the_schema_refuses_fail(tmp_path):
    chart = chart_copy(tmp_path)
    (chart / "ci" / "bad-values.yaml").write_text("gateway:\n  grpcPort: fifty\nwriterr: {}\n")
    problems = lint.check_chart(chart)
    assert any("bad-values.yaml" in p for p in problems), problems


def test_a_config_the_services_refuse_fails(tmp_path):
    chart = chart_copy(tmp_path)
    (chart / "ci" / "bad-config.yaml").write_text("config:\n  writer:\n    max_batch_event: 5\n")
    problems = lint.check_chart(chart)
    assert any("config.toml does not load" in p and "max_batch_event" in p for p in problems), problems


def test_a_broken_compose_file_fails(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    shutil.copy(COMPOSE, broken)
    for name in ("Dockerfile", "deploy"):
        (tmp_path / name).symlink_to(lint.ROOT / name)
    assert lint.check_compose(broken) == []
    edit(broken, "    stop_grace_period: 60s", "    stop_grace_periode: 60s")
    edit(broken, "      gateway:\n        condition: service_healthy", "      gatewy:\n        condition: service_healthy")
    problems = lint.check_compose(broken)
    assert any("Compose specification" in p for p in problems), problems
    assert any("unknown service gatewy" in p for p in problems), problems
