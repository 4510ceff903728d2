"""The container and Kubernetes files: they parse, and they say what lrun understands."""

from __future__ import annotations

import yaml

from conftest import ROOT
from runner.cli import run
from runner.distributed.protocol import DEFAULT_PORT

K8S = ROOT / "deploy" / "k8s"


def documents(name: str) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc}


def options_of(args: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}


def test_the_master_is_a_job_behind_a_service() -> None:
    master = documents("master.yaml")
    assert set(master) == {"Service", "Job"}
    service, job = master["Service"], master["Job"]
    pod = job["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert [p["port"] for p in service["spec"]["ports"]] == [DEFAULT_PORT]
    container = pod["spec"]["containers"][0]
    assert [p["containerPort"] for p in container["ports"]] == [DEFAULT_PORT]
    assert "--master" in container["args"] and f"--master-bind-port={DEFAULT_PORT}" in container["args"]
    assert container["args"][0] == "/scenario/quickstart.yaml"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["scenario"] == "/scenario"
    assert pod["spec"]["enableServiceLinks"] is False  # LRUN_MASTER_PORT=tcp://… would break --master-port
    assert container["env"][0]["name"] == "LRUN_MASTER_TOKEN"


def test_the_workers_are_a_deployment_that_finds_the_service() -> None:
    workers = documents("workers.yaml")["Deployment"]
    service = documents("master.yaml")["Service"]
    pod = workers["spec"]["template"]
    assert workers["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    args = container["args"]
    assert "--worker" in args
    assert f"--master-host={service['metadata']['name']}" in args and f"--master-port={DEFAULT_PORT}" in args
    assert pod["spec"]["enableServiceLinks"] is False
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "lrun-token"
    expected = next(a for a in documents("master.yaml")["Job"]["spec"]["template"]["spec"]["containers"][0]["args"]
                    if a.startswith("--expect-workers="))  # fmt: skip
    assert expected == f"--expect-workers={workers['spec']['replicas']}"


def test_every_option_in_the_manifests_exists() -> None:
    known = {opt for param in run.params for opt in getattr(param, "opts", []) if opt.startswith("--")}
    for name in ("master.yaml", "workers.yaml"):
        for doc in documents(name).values():
            spec = doc["spec"].get("template", {}).get("spec")
            for container in spec["containers"] if spec else []:
                assert options_of(container["args"]) <= known, (name, options_of(container["args"]) - known)


def test_the_dockerfile_installs_lrun_and_exposes_the_port() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ." in text
    assert f"EXPOSE {DEFAULT_PORT}" in text
    assert 'ENTRYPOINT ["lrun"]' in text
    for copied in ("pyproject.toml", "README.md", "runner"):
        assert (ROOT / copied).exists()
