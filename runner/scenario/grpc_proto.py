"""gRPC descriptors: ``.proto`` files compiled at load time (``grpcio-tools``' protoc) or a server's reflection,
the methods they declare, and a static check of a YAML message against its type.

Nothing here calls a server except ``from_reflection``; nothing here runs under the engine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "install the grpc extra in lrun's checkout: pip install '.[grpc]' (grpcio, grpcio-tools, grpcio-reflection)"
)
PROTOC_TIMEOUT = 60.0
_PROTOC_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$", re.M)
_METHOD = re.compile(r"^/?(?P<service>[A-Za-z_][\w.]*)/(?P<method>[A-Za-z_]\w*)$")


class ProtoError(Exception):
    """A .proto that does not compile: ``file:line:col`` in the .proto when protoc says where."""

    def __init__(self, message: str, file: str | None = None, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message, self.file, self.line, self.col = message, file, line, col


def available() -> bool:
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Method:
    """One RPC: its path on the wire, kind, and message classes."""

    path: str  # /package.Service/Method
    client_streaming: bool
    server_streaming: bool
    input: Any  # protobuf message class
    output: Any

    @property
    def kind(self) -> str:
        return {(False, False): "unary", (False, True): "server_streaming", (True, False): "client_streaming"}.get(
            (self.client_streaming, self.server_streaming), "bidi_streaming"
        )


@dataclass
class Descriptors:
    """The services of a scenario's .proto files (or of a server's reflection)."""

    pool: Any  # google.protobuf.descriptor_pool.DescriptorPool
    services: dict[str, Any] = field(default_factory=dict)  # full name -> ServiceDescriptor
    files: list[Path] = field(default_factory=list)  # the .proto files read (for the distributed bundle)

    def method(self, spec: str) -> Method:
        """``package.Service/Method`` (or ``Service/Method`` when the name is unique); KeyError says what is wrong."""
        from google.protobuf import message_factory

        found = _METHOD.match(spec.strip())
        if not found:
            raise KeyError(f"'{spec}' is not a gRPC method: write package.Service/Method")
        name, method_name = found["service"], found["method"]
        candidates = [s for full, s in self.services.items() if full == name or full.rsplit(".", 1)[-1] == name]
        if not candidates:
            known = ", ".join(sorted(self.services)) or "none"
            raise KeyError(f"no service '{name}' in the .proto files (services: {known})")
        if len(candidates) > 1:
            names = ", ".join(s.full_name for s in candidates)
            raise KeyError(f"service '{name}' is ambiguous ({names}): write its full name")
        service = candidates[0]
        method = service.methods_by_name.get(method_name)
        if method is None:
            known = ", ".join(m.name for m in service.methods) or "none"
            raise KeyError(f"service {service.full_name} has no method '{method_name}' (methods: {known})")
        return Method(
            f"/{service.full_name}/{method.name}",
            method.client_streaming,
            method.server_streaming,
            message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type),
        )


def _include_dir() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")  # google/protobuf/*.proto: the well-known types


def compile_protos(protos: list[Path], import_paths: list[Path]) -> Descriptors:
    """Compile ``protos`` with protoc (in a child process: its errors go to its stderr) into descriptors."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    roots = [*import_paths, *sorted({p.parent for p in protos})]
    with tempfile.TemporaryDirectory(prefix="lrun-proto-") as tmp:
        out = Path(tmp) / "set.pb"
        command = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_out={out}", "--include_imports"]
        command += [f"-I{root}" for root in roots] + [f"-I{_include_dir()}"] + [str(p) for p in protos]
        try:
            done = subprocess.run(command, capture_output=True, timeout=PROTOC_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise ProtoError(f"protoc took more than {PROTOC_TIMEOUT:g} s") from None
        if done.returncode != 0:
            raise _protoc_error(done.stderr.decode("utf-8", "replace"), roots)
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    descriptors = Descriptors(pool)
    for proto in files.file:
        pool.Add(proto)
        descriptors.files += [root / proto.name for root in roots if (root / proto.name).is_file()][:1]
    for proto in files.file:
        for service in proto.service:
            full = f"{proto.package}.{service.name}" if proto.package else service.name
            descriptors.services[full] = pool.FindServiceByName(full)
    return descriptors


def _protoc_error(stderr: str, roots: list[Path]) -> ProtoError:
    found = _PROTOC_LINE.search(stderr)
    if found is None:
        return ProtoError(stderr.strip().splitlines()[0] if stderr.strip() else "protoc failed")
    file = found["file"]
    for root in roots:
        if (root / file).is_file():
            file = str(root / file)
            break
    return ProtoError(found["message"].strip(), file, int(found["line"]), int(found["col"]))


def from_reflection(channel: Any, timeout: float) -> Descriptors:
    """The services a server lists by reflection (``grpc.reflection.v1alpha``), with their messages."""
    from google.protobuf import descriptor_pool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    descriptors = Descriptors(pool)
    for name in database.get_services():
        if not name.startswith("grpc.reflection."):
            descriptors.services[name] = pool.FindServiceByName(name)
    return descriptors


# -- a message written in YAML against its type --------------------------------------------------------------

_INTS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"}


def message_problems(value: Any, descriptor: Any, path: tuple = (), is_template: Any = None) -> Iterator[tuple]:
    """(data path, message, at the key?) for each unknown field or value of the wrong type; templated strings pass
    (their type is known when rendered, and protobuf's JSON mapping parses numbers and enums from strings)."""
    if descriptor.full_name.startswith("google.protobuf."):
        return  # well-known types have JSON forms of their own (a timestamp is a string …)
    if not isinstance(value, dict):
        if not _templated(value, is_template):
            yield path, f"expected a mapping for message {descriptor.full_name}, got {_describe(value)}", False
        return
    fields = {**descriptor.fields_by_name, **{f.json_name: f for f in descriptor.fields}}
    for key, item in value.items():
        if not isinstance(key, str) or key not in fields:
            from runner.suggest import did_you_mean

            known = ", ".join(f.name for f in descriptor.fields) or "none"
            hint = did_you_mean(str(key), list(fields))
            message = f"message {descriptor.full_name} has no field '{key}' ({hint or 'fields: ' + known})"
            yield (*path, key), message, True
            continue
        yield from _field_problems(item, fields[key], (*path, key), is_template)


def _field_problems(value: Any, fd: Any, path: tuple, is_template: Any) -> Iterator[tuple]:
    if value is None or _templated(value, is_template):
        return
    is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
    if is_map:
        if not isinstance(value, dict):
            yield path, f"field '{fd.name}' is a map: expected a mapping, got {_describe(value)}", False
            return
        value_field = fd.message_type.fields_by_name["value"]
        for key, item in value.items():
            yield from _field_problems(item, value_field, (*path, key), is_template)
        return
    if _repeated(fd):
        if not isinstance(value, list):
            yield path, f"field '{fd.name}' is repeated: expected a list, got {_describe(value)}", False
            return
        for index, item in enumerate(value):
            yield from _single(item, fd, (*path, index), is_template)
        return
    yield from _single(value, fd, path, is_template)


def _single(value: Any, fd: Any, path: tuple, is_template: Any) -> Iterator[tuple]:
    if value is None or _templated(value, is_template):
        return
    if fd.message_type is not None:
        yield from message_problems(value, fd.message_type, path, is_template)
        return
    kind = _type_name(fd)
    ok = True
    if kind in _INTS:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None
        )
    elif kind in ("double", "float"):
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) or value in (
            "NaN",
            "Infinity",
            "-Infinity",
        )
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind in ("string", "bytes"):
        ok = isinstance(value, str)
    elif kind == "enum":
        names = [v.name for v in fd.enum_type.values]
        if isinstance(value, str) and value not in names:
            yield (
                path,
                f"field '{fd.name}': '{value}' is not a value of {fd.enum_type.full_name} ({', '.join(names)})",
                False,
            )
            return
        ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        yield path, f"field '{fd.name}' is {_article(kind)} {kind}, not {_describe(value)}", False


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _repeated(fd: Any) -> bool:
    is_repeated = getattr(fd, "is_repeated", None)
    return bool(is_repeated) if is_repeated is not None else fd.label == fd.LABEL_REPEATED


def _type_name(fd: Any) -> str:
    from google.protobuf.descriptor import FieldDescriptor

    names = {v: k.removeprefix("TYPE_").lower() for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}
    return names.get(fd.type, "value")


def _templated(value: Any, is_template: Any) -> bool:
    return isinstance(value, str) and is_template is not None and is_template(value)


def _describe(value: Any) -> str:
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    kind = next((name for cls, name in kinds.items() if isinstance(value, cls)), type(value).__name__)
    text = repr(str(value) if isinstance(value, str) else value) if not isinstance(value, dict | list) else ""
    return f"{kind} {text}".rstrip()
