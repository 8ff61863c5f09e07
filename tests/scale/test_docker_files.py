"""The container files: the Dockerfile's pinned base, non-root user and healthcheck; the compose file's
topology and per-process settings; and `docker-compose config` (no Docker engine is needed for it).

This machine has no Docker engine, so nothing here builds or starts a container: the files are checked
by parsing and by Compose's own validator, as docs/deployment.md says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LEANOPS = ("dashboard", "api", "worker", "jobs", "init")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")]


def test_dockerfile_pins_its_base_runs_as_non_root_and_has_a_healthcheck() -> None:
    steps = instructions()
    base = [arg for op, arg in steps if op == "FROM"]
    assert len(base) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base[0]), base
    users = [(i, arg) for i, (op, arg) in enumerate(steps) if op == "USER"]
    assert users and users[-1][1] not in ("root", "0"), "the image must end on a non-root USER"
    assert all(op not in ("RUN", "COPY", "ADD") or "--chown" in arg or i < users[-1][0]
               for i, (op, arg) in enumerate(steps)), "no build step after switching to the non-root user"
    assert any(op == "HEALTHCHECK" and "/_stcore/health" in arg for op, arg in steps)
    copies = [arg for op, arg in steps if op == "COPY"]
    assert copies[0].startswith("requirements.txt"), "requirements first, so code edits keep the pip layer"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".leanops", ".env"} <= set(ignored)


def test_compose_has_the_grown_up_topology(compose: dict) -> None:
    services = compose["services"]
    assert set(services) >= {"postgres", "minio", *LEANOPS}
    for name in ("postgres", "minio"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image must be pinned: {image}"
        assert "healthcheck" in services[name]
    assert services["worker"]["command"][-1] == "worker" and services["worker"]["deploy"]["replicas"] == 1
    assert "--jobs-only" in services["jobs"]["command"] and services["jobs"]["deploy"]["replicas"] >= 2
    assert services["api"]["command"][:3] == ["python", "cli.py", "serve"] and "healthcheck" in services["api"]
    for name in ("dashboard", "api", "worker", "jobs"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert any(v.startswith("workspace:") for v in services[name]["volumes"])
    assert set(compose["volumes"]) >= {"pgdata", "s3data", "workspace"}


def test_every_leanops_process_gets_the_shared_stores_and_known_settings(compose: dict) -> None:
    fields = {f"LEANOPS_{name.upper()}" for name in Settings.model_fields}
    for name in LEANOPS:
        env = compose["services"][name]["environment"]
        unknown = {k for k in env if k.startswith("LEANOPS_")} - fields
        assert not unknown, f"{name}: settings that do not exist: {unknown}"
        assert env["LEANOPS_SCHEDULER"] == "external", name  # only `cli.py worker` runs schedules
        assert env["LEANOPS_DB_URL"].startswith("postgresql+psycopg://"), name
        assert env["LEANOPS_MLFLOW_URI"].startswith("postgresql+psycopg://") and env["LEANOPS_MLFLOW_URI"].endswith(
            "/mlflow"), name
        assert env["LEANOPS_ARTIFACTS"].startswith("s3://") and env["LEANOPS_S3_ENDPOINT_URL"], name


def compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed (.ci/run installs one)")
    env = {**os.environ, "LEANOPS_ADMIN_PASSWORD": "checked-by-config"}
    done = subprocess.run([*cli, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    without = {k: v for k, v in env.items() if k != "LEANOPS_ADMIN_PASSWORD"}
    refused = subprocess.run([*cli, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], cwd=ROOT, env=without,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "LEANOPS_ADMIN_PASSWORD" in refused.stderr
