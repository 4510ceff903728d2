"""A scenario's gRPC at load time: its .proto files compiled, each ``grpc:`` step's method found and its message
checked against the method's type, every problem at ``file:line:col`` (a .proto's syntax error at its own line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import runner.scenario.grpc_proto as grpc_proto
import runner.scenario.templating as templating
from runner.errors import Problem
from runner.scenario.analysis import step_lists, walk_steps
from runner.scenario.loader import DataPath, Document, existing_file
from runner.scenario.model import GrpcStep, Scenario


class LoadedScenario(Protocol):
    """What this needs of a ``runner.scenario.LoadedScenario``."""

    document: Document
    model: Scenario
    grpc: Any


def grpc_steps(loaded: LoadedScenario) -> Iterator[tuple[DataPath, GrpcStep]]:
    for base, steps in step_lists(loaded.model):
        for path, step in walk_steps(steps, base):
            if isinstance(step, GrpcStep):
                yield path, step


def load_grpc(loaded: LoadedScenario) -> list[Problem]:
    """Compile the scenario's .proto files into ``loaded.grpc`` and check its gRPC steps against them."""
    doc, settings = loaded.document, loaded.model.grpc
    steps = list(grpc_steps(loaded))
    if not steps and settings is None:
        return []
    if not grpc_proto.available():
        return [doc.problem(("grpc",) if settings else steps[0][0], "gRPC needs grpcio", grpc_proto.INSTALL_HINT)]
    if settings is None:
        hint = "add grpc: {protos: [service.proto]} (or grpc: {reflection: true}) at the top of the scenario"
        return [doc.problem((*steps[0][0], "grpc"), "a grpc step needs the service's descriptors", hint)]
    problems: list[Problem] = []
    if settings.ca is not None:
        folder = Path(doc.mark(("grpc", "ca")).file).parent
        if existing_file(folder / settings.ca) is None:
            problems.append(
                doc.problem(("grpc", "ca"), f"file not found: {settings.ca}", f"paths are relative to {folder}/")
            )
    if settings.reflection:
        return problems  # the server tells its services when the run starts
    protos: list[Path] = []
    for index, name in enumerate(settings.protos):
        where = ("grpc", "protos", index)
        folder = Path(doc.mark(where).file).parent
        found = existing_file(folder / name)
        if found is None:
            problems.append(doc.problem(where, f".proto file not found: {name}", f"paths are relative to {folder}/"))
        else:
            protos.append(found.resolve())
    imports = [
        (Path(doc.mark(("grpc", "import_paths", i)).file).parent / p).resolve()
        for i, p in enumerate(settings.import_paths)
    ]
    if problems:
        return problems
    try:
        loaded.grpc = grpc_proto.compile_protos(protos, imports)
    except grpc_proto.ProtoError as exc:
        named = doc.mark(("grpc", "protos"))
        if exc.file:
            message = f"{exc.message} (a .proto named at {named.file}:{named.line}:{named.col})"
            return [Problem(exc.file, exc.line, exc.col, message, "fix the .proto: protoc could not compile it")]
        return [doc.problem(("grpc", "protos"), f"protoc: {exc.message}")]
    for path, step in steps:
        problems += _step_problems(loaded, path, step)
    return problems


def _step_problems(loaded: LoadedScenario, path: DataPath, step: GrpcStep) -> list[Problem]:
    doc = loaded.document
    try:
        method = loaded.grpc.method(step.grpc)
    except KeyError as exc:
        return [doc.problem((*path, "grpc"), str(exc.args[0]))]
    if method.client_streaming and "message" in step.model_fields_set:
        return [doc.problem((*path, "message"), f"{step.grpc} streams its requests: write 'messages' (a list)")]
    if not method.client_streaming and step.messages is not None:
        return [doc.problem((*path, "messages"), f"{step.grpc} takes one request: write 'message', not 'messages'")]
    found: list[tuple[tuple, str, bool]] = []
    descriptor = method.input.DESCRIPTOR
    if step.messages is None:
        found += grpc_proto.message_problems(step.message or {}, descriptor, ("message",), templating.is_template)
    elif isinstance(step.messages, list):
        for index, item in enumerate(step.messages):
            found += grpc_proto.message_problems(item, descriptor, ("messages", index), templating.is_template)
    return [doc.problem((*path, *where), message, key=key) for where, message, key in found]


def grpc_files(loaded: Any) -> list[Path]:
    """The .proto files (imports within the scenario's folders included) and CA file a run of ``loaded`` reads."""
    files = list(loaded.grpc.files) if loaded.grpc is not None else []
    settings = loaded.model.grpc
    if settings is not None and settings.ca:
        files.append(Path(loaded.document.mark(("grpc", "ca")).file).parent / settings.ca)
    return files
