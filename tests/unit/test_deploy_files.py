"""The deployment files hold up without Docker or a cluster: schemas, parsers and the
numbers they must agree on (probe paths, ports, user ids, grace periods vs. the drain).

Compose files: the Compose Specification's JSON Schema (vendored in tests/data, see its
NOTICE). Dockerfiles: BuildKit's own parser (``dockerfile``). Kubernetes: the API's JSON
schemas for 1.30, strict (``kubernetes-validate``). systemd: ``systemd-analyze verify``.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import yaml

from aegra import project, scaffold
from aegra.cli import db_app
from aegra.config import ENV_NAMES, Config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
UNIT = ROOT / "deploy" / "systemd" / "aegra.service"
K8S_VERSION = "1.30"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SHUTDOWN = Config().shutdown
# The worst-case stop after SIGTERM: drain, hand-back of cancelled runs (worker CLEANUP_S),
# HTTP grace, closing pools (boot.py's bound); whatever kills aegra must wait longer.
STOP_S = SHUTDOWN.drain_timeout_s + 10 + SHUTDOWN.http_grace_s + 10


def _compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _seconds(value: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([hms])", value))


def _compose_files() -> dict[str, dict[str, Any]]:
    return {"repository": yaml.safe_load((ROOT / "compose.yaml").read_text()),
            "aegra init": yaml.safe_load(scaffold.compose_yaml())}


def test_compose_files_match_the_compose_specification():
    validator = _compose_validator()
    for name, doc in _compose_files().items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], name
        broken = json.loads(json.dumps(doc))
        broken["services"]["app"]["healthcheck"]["intervall"] = "5s"
        assert not validator.is_valid(broken)  # the schema really is strict


def test_compose_stacks_agree_with_the_server():
    for name, doc in _compose_files().items():
        services = doc["services"]
        assert set(services) == {"postgres", "redis", "app"}, name
        assert all(s["restart"] == "unless-stopped" for s in services.values())
        assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
        assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        app = services["app"]
        assert app["command"] == ["aegra", "serve", "--host", "0.0.0.0", "--port", "2026"]
        assert app["ports"] == ["${AEGRA_PORT:-2026}:2026"]
        assert "localhost:2026/health" in " ".join(app["healthcheck"]["test"])
        assert app["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                     "redis": {"condition": "service_healthy"}}
        env = app["environment"]
        assert env["REDIS_BROKER_ENABLED"] == "true" and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert set(env) <= set(ENV_NAMES)
        assert _seconds(app["stop_grace_period"]) > STOP_S, name
        for volume in services["postgres"]["volumes"]:
            assert volume.split(":")[0] in doc["volumes"]


def test_repository_compose_serves_the_example_graph():
    app = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["app"]
    assert app["build"] == "." and (ROOT / "Dockerfile").is_file()
    # Tagged as the server image a project's Dockerfile builds FROM.
    assert app["image"] == scaffold.base_image(VERSION)
    mounts = {}
    for volume in app["volumes"]:
        source, target, mode = volume.split(":")
        assert mode == "ro" and (ROOT / source).exists(), volume
        mounts[target] = ROOT / source
    assert mounts["/app/aegra.json"] == ROOT / "examples" / "agent" / "aegra.json"
    loaded = project.load(mounts["/app/aegra.json"])
    assert set(loaded.graphs) == {"agent"}
    for graph in loaded.graphs.values():  # every graph file is inside a mounted folder
        rel = Path(graph.target).relative_to(ROOT / "examples" / "agent")
        assert mounts[f"/app/{rel.parts[0]}"] == ROOT / "examples" / "agent" / rel.parts[0]


def _instructions(text: str) -> list[dockerfile.Command]:
    return list(dockerfile.parse_string(text))


def test_repository_dockerfile_builds_the_server_image():
    cmds = _instructions((ROOT / "Dockerfile").read_text())
    assert cmds[0].cmd == "FROM" and cmds[0].value[0].startswith("python:3.11")
    by = {c.cmd: c for c in cmds}
    assert by["CMD"].json and by["CMD"].value == ("aegra", "serve")
    assert by["USER"].value == ("aegra",) and by["WORKDIR"].value == ("/app",)
    assert "localhost:2026/health" in " ".join(by["HEALTHCHECK"].value)
    copied = [src for c in cmds if c.cmd == "COPY" for src in c.value[:-1]]
    assert copied and all((ROOT / src).exists() for src in copied)
    ignored = [p for p in (ROOT / ".dockerignore").read_text().splitlines()
               if p and not p.startswith("#")]
    for needed in ("pyproject.toml", "README.md", "src", "migrations"):
        assert not any(fnmatch.fnmatch(needed, p) for p in ignored), needed


def test_init_writes_a_dockerfile_and_compose_file_that_fit(tmp_path):
    lines = list(scaffold.create(tmp_path))
    for name in ("Dockerfile", ".dockerignore", "compose.yaml"):
        assert f"created {name}" in lines
    cmds = _instructions((tmp_path / "Dockerfile").read_text())
    # ARG before FROM is how the base image is chosen; FROM is the first build step.
    assert [c.cmd for c in cmds[:2]] == ["ARG", "FROM"]
    assert cmds[0].value == (f"AEGRA_IMAGE={scaffold.base_image()}",)
    assert cmds[1].value == ("${AEGRA_IMAGE}",)
    assert [c.cmd for c in cmds].count("FROM") == 1
    cmd = cmds[-1]
    assert cmd.cmd == "CMD" and cmd.json
    assert cmd.value == ("aegra", "serve", "--host", "0.0.0.0", "--port", "2026")
    users = [c.value[0] for c in cmds if c.cmd == "USER"]
    assert users == ["root", "aegra"]  # installs as root, serves as the image's user
    workdir = [c.value[0] for c in cmds if c.cmd == "WORKDIR"]
    assert workdir == ["/app"]  # where `aegra serve` finds aegra.json
    copies = [c.value for c in cmds if c.cmd == "COPY"]
    assert copies == [("aegra.json", "requirements*.txt", "./"), (".", ".")]

    app = yaml.safe_load((tmp_path / "compose.yaml").read_text())["services"]["app"]
    assert app["build"]["context"] == "."
    assert app["build"]["args"]["AEGRA_IMAGE"] == f"${{AEGRA_IMAGE:-{scaffold.base_image()}}}"

    ignored = [p.rstrip("/") for p in (tmp_path / ".dockerignore").read_text().splitlines()
               if p and not p.startswith(("#", "!"))]
    for secret in (".env", ".aegra", ".env.local"):
        assert any(fnmatch.fnmatch(secret, p) for p in ignored), secret
    for rel in ("aegra.json", "graphs/agent.py", "graphs/__init__.py"):
        assert (tmp_path / rel).is_file()
        assert not any(fnmatch.fnmatch(rel, p) or rel.startswith(p + "/") for p in ignored)


def test_base_image_tag_is_a_valid_docker_tag():
    assert scaffold.base_image("0.1.0") == "aegra:0.1.0"
    assert scaffold.base_image("0.0.0+local") == "aegra:0.0.0-local"


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for _, d in _manifests() if d["kind"] == kind]
    return doc


def test_kubernetes_manifests_match_the_api_schemas():
    manifests = _manifests()
    kinds = sorted(d["kind"] for _, d in manifests)
    assert kinds == sorted(["Namespace", "ConfigMap", "Secret", "Secret", "Deployment",
                            "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job"])
    for path, doc in manifests:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "aegra") == "aegra", path
    broken = json.loads(json.dumps(_kind("Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomizations_list_existing_files_and_deploy_one_image():
    app = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    migrate = yaml.safe_load((K8S / "migrate" / "kustomization.yaml").read_text())
    for folder, kust in ((K8S, app), (K8S / "migrate", migrate)):
        assert all((folder / r).is_file() for r in kust["resources"])
        assert kust["namespace"] == "aegra"
    assert "secret.example.yaml" not in app["resources"]  # never overwrite real secrets
    assert app["images"] == migrate["images"]
    images = {c["image"] for kind in ("Deployment", "Job")
              for c in _kind(kind)["spec"]["template"]["spec"]["containers"]}
    assert images == {app["images"][0]["name"]}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_deployment_probes_migrations_and_shutdown():
    deployment = _kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["command"][:2] == ["aegra", "serve"]
    port = int(server["command"][server["command"].index("--port") + 1])
    assert server["ports"] == [{"name": "http", "containerPort": port}]
    assert server["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > Config().postgres.startup_wait_s
    env = _env(server)
    assert env["RUN_MIGRATIONS_ON_STARTUP"] == "false"
    assert set(env) <= set(ENV_NAMES)
    config = _kind("ConfigMap")
    assert set(config["data"]) <= set(ENV_NAMES)
    assert config["data"]["REDIS_BROKER_ENABLED"] == "true"
    drain_s = float(config["data"]["WORKER_DRAIN_TIMEOUT"])
    assert drain_s == SHUTDOWN.drain_timeout_s
    pause_s = float(server["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause_s + STOP_S
    assert server["resources"]["requests"] and server["resources"]["limits"]["memory"]
    # The image's user (Dockerfile: useradd --uid 10001) is the one the pod runs as.
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid is not None and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_service_pdb_and_secrets_point_at_the_pods():
    deployment = _kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert _kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == "aegra"
    secrets = {d["metadata"]["name"]: d["stringData"] for _, d in _manifests()
               if d["kind"] == "Secret"}
    pods = [deployment["spec"]["template"]["spec"], _kind("Job")["spec"]["template"]["spec"]]
    refs = [v["secretKeyRef"] for p in pods for c in p["containers"]
            for v in _env(c).values() if isinstance(v, dict)]
    assert refs and all(r["key"] in secrets[r["name"]] for r in refs)
    (server,) = pods[0]["containers"]
    sources = {next(iter(s.values()))["name"] for s in server["envFrom"]}
    assert sources == {"aegra-config", "aegra-graph-env"} and "aegra-graph-env" in secrets


def test_migration_job_runs_aegra_db_upgrade():
    job = _kind("Job")
    pod = job["spec"]["template"]["spec"]
    (migrate,) = pod["containers"]
    assert migrate["command"] == ["aegra", "db", "upgrade"]
    assert "upgrade" in {c.name for c in db_app.registered_commands}
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    assert _env(migrate)["DATABASE_URL"]["secretKeyRef"]["key"] == "database-url"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_notifies_and_outlasts_the_drain():
    unit = _unit()
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert _seconds(service["TimeoutStopSec"] + "s") > STOP_S
    assert _seconds(service["TimeoutStartSec"] + "s") > Config().postgres.startup_wait_s
    assert int(service["WatchdogSec"]) > 0 and service["Restart"] == "on-failure"
    exec_start = service["ExecStart"].split()
    assert exec_start[0].startswith("/") and exec_start[0].endswith("/bin/aegra")
    assert exec_start[1:] == ["serve"]  # the entry point itself: no shell in between
    assert service["EnvironmentFile"] == "/etc/aegra/env" and service["User"] == "aegra"
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert service[key] in ("true", "strict"), key
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    example = (UNIT.parent / "aegra.env.example").read_text()
    names = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE)
    assert "DATABASE_URL" in names and set(names) - {"OPENAI_API_KEY"} <= set(ENV_NAMES)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian: apt-get install systemd)")
def test_systemd_unit_passes_systemd_analyze(tmp_path):
    # verify insists that ExecStart exists: point it at a stand-in, change nothing else.
    binary = tmp_path / "aegra"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    text = UNIT.read_text()
    exec_path = _unit()["Service"]["ExecStart"].split()[0]
    unit = tmp_path / "aegra.service"
    unit.write_text(text.replace(exec_path, str(binary)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    unit.write_text(text.replace(exec_path, str(binary)).replace("KillMode=mixed", "KillMode=mix"))
    typo = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert "KillMode" in typo.stderr or "kill mode" in typo.stderr  # it does read the keys


def test_deploy_guide_covers_every_file():
    guide = (ROOT / "docs" / "deploy.md").read_text()
    k8s_readme = (K8S / "README.md").read_text()
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.is_file() and path.name != "README.md":
            rel = path.relative_to(ROOT).as_posix()
            assert rel in guide or (path.is_relative_to(K8S) and
                                    f"`{path.relative_to(K8S).as_posix()}`" in k8s_readme), rel
    for link in re.findall(r"\]\(([^)#]+)\)", guide + (ROOT / "docs/systemd.md").read_text()):
        assert (ROOT / "docs" / link).resolve().exists(), link
