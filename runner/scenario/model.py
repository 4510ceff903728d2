"""The scenario language as pydantic models: the single source of truth for validation and the JSON Schema.

A step is a mapping whose *kind key* says what it is (``get: /items``, ``think: 2s``, ``set: {...}``,
``sequence: [...]``). Kinds are dispatched by that key, so an error speaks about the step the user meant.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

import runner.scenario.templating as templating
from runner.scenario.limits import parse_expression, resource_limit
from runner.scenario.numbers import MAX_ARRIVALS, MAX_ITERATIONS, MAX_USERS, Rate, StageRate, UserCount, Whole
from runner.scenario.types import (
    Duration,
    Expression,
    JsonPath,
    PythonName,
    Regex,
    Scalar,
    Size,
    Template,
    TemplateScalar,
    TemplateTree,
    XPath,
)
from runner.scenario.windows import check_for, check_window, threshold_input

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
OnFail = Literal["continue", "stop_iteration", "stop_user", "stop_test"]


def check_host(value: str | None) -> str | None:
    if value is None or value == "demo":
        return value
    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
        raise ValueError(f"host {value!r} is not a URL: write http://HOST:PORT, or 'demo' for the demo target")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not one
    except ValueError as exc:
        raise ValueError(f"host {value!r} is not a URL ({exc}): write http://HOST:PORT, or 'demo'") from None
    if not parts.hostname:
        raise ValueError(f"host {value!r} has no host name: write http://HOST:PORT, or 'demo' for the demo target")
    return value.rstrip("/")


def _remember(model: type, data: Any, info: ValidationInfo) -> None:
    if isinstance(info.context, dict) and isinstance(data, dict):
        info.context.setdefault("models", {}).setdefault(id(data), []).append(model)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _seen_by(cls, data: Any, info: ValidationInfo) -> Any:
        """Tell the error reporter which model read this mapping, so an unknown key gets a did-you-mean."""
        _remember(cls, data, info)
        return data


# ----------------------------------------------------------------------------------------------- think time


class Between(Model):
    between: tuple[Duration, Duration] = Field(
        description="Wait a random time, uniformly distributed between the two bounds.", examples=[[1, 3]]
    )

    @model_validator(mode="after")
    def _ordered(self) -> Between:
        if self.between[0] > self.between[1]:
            raise ValueError("the first bound must not be larger than the second")
        return self


class GaussianSpec(Model):
    mean: Duration = Field(description="Average wait.")
    stddev: Duration = Field(description="Standard deviation; the wait never goes below zero.")


class Gaussian(Model):
    gaussian: GaussianSpec = Field(description="Wait a normally distributed time.")


def think_kind(value: Any) -> str | None:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return "duration"
    if isinstance(value, Between) or (isinstance(value, dict) and "between" in value):
        return "between"
    if isinstance(value, Gaussian) or (isinstance(value, dict) and "gaussian" in value):
        return "gaussian"
    return None


Think = Annotated[
    Annotated[Duration, Tag("duration")] | Annotated[Between, Tag("between")] | Annotated[Gaussian, Tag("gaussian")],
    Discriminator(
        think_kind,
        custom_error_type="think_kind",
        custom_error_message="think time is a duration (2s, 500ms), {between: [min, max]} or {gaussian: {mean, stddev}}",  # noqa: E501
    ),
    Field(
        description="Think time: a constant duration, {between: [min, max]} or {gaussian: {mean, stddev}}.",
        examples=["2s", {"between": [1, 3]}, {"gaussian": {"mean": "2s", "stddev": "500ms"}}],
    ),
]


# ----------------------------------------------------------------------------------------------- extractors

EXTRACTOR_KINDS = ("regex", "boundary", "jsonpath", "xpath", "header", "cookie", "status", "python")


class Boundary(Model):
    left: str = Field(description="Text just before the value (LoadRunner's LB).", min_length=1)
    right: str = Field(description="Text just after the value (LoadRunner's RB).", min_length=1)


class Extract(Model):
    """Save a value from a response into a variable (correlation)."""

    regex: Regex | None = Field(
        None,
        description="A regular expression searched in the body; with 'header', in that header's value "
        "(an id out of a Location).",
        examples=[r"id=(\d+)"],
    )
    group: int | str | None = Field(
        None,
        description="Regex group to save (number or name). Default: 1 when the regex has a group, else 0.",
    )
    boundary: Boundary | None = Field(None, description="Save the text between a left and a right boundary.")
    jsonpath: JsonPath | None = Field(None, description="A JSONPath into the JSON body.", examples=["$.token"])
    xpath: XPath | None = Field(
        None,
        description="An XPath into the HTML or XML body (XML when the response says so; see 'document').",
        examples=["//input[@name='session']/@value"],
    )
    header: str | None = Field(
        None,
        description="A response header name (case-insensitive): its value, or with 'regex' the part the regex finds.",
    )
    cookie: str | None = Field(None, description="A cookie name (as set by this response, or held by the user).")
    status: bool | None = Field(None, description="true: save the response status code.")
    python: PythonName | None = Field(
        None,
        description="A function of the scenario's Python module: f(response, variables) returns the value "
        "(None: nothing matched).",
    )
    document: Literal["auto", "html", "xml"] = Field(
        "auto", description="How xpath parses the body: by Content-Type (auto), as HTML or as XML."
    )
    ignore_case: bool = Field(False, description="Case-insensitive regex (body or header) and boundary matching.")
    match: Literal["first", "last", "random", "all"] | Annotated[int, Field(ge=1)] = Field(
        "first",
        description="Which match to save: first, last, random, all (a list), or the Nth (1-based, like ORD=N).",
    )
    default: Any = Field(None, description="Value to save when nothing matches.")
    on_missing: Literal["fail", "warn"] | None = Field(
        None,
        description="When nothing matches: fail the request, or warn and go on. "
        "Default: fail, or warn when a default is given.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Extract:
        kinds = [k for k in EXTRACTOR_KINDS if getattr(self, k) not in (None, False)]
        if self.header is not None and self.regex is not None:
            kinds.remove("regex")  # a regex on the header's value
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"an extractor needs exactly one of: {', '.join(EXTRACTOR_KINDS)} (found {found})")
        if self.group is not None and self.regex is None:
            raise ValueError("'group' only applies to a regex extractor")
        if self.regex is not None and self.group is not None:
            pattern = re.compile(self.regex)
            if isinstance(self.group, int) and self.group > pattern.groups:
                raise ValueError(f"the regex has {pattern.groups} group(s); there is no group {self.group}")
            if isinstance(self.group, str) and self.group not in pattern.groupindex:
                names = ", ".join(pattern.groupindex) or "none"
                raise ValueError(f"the regex has no group named '{self.group}' (named groups: {names})")
        return self

    @property
    def kind(self) -> str:
        if self.header is not None:
            return "header"  # with or without a regex on its value
        return next(k for k in EXTRACTOR_KINDS if getattr(self, k) not in (None, False))

    @property
    def missing_policy(self) -> str:
        if self.on_missing:
            return self.on_missing
        return "warn" if "default" in self.model_fields_set else "fail"


# ----------------------------------------------------------------------------------------------- checkpoints

CHECK_SUBJECTS = ("jsonpath", "xpath", "header")
CHECK_PREDICATES = ("equals", "contains", "not_contains", "matches", "exists")
CHECK_STANDALONE = ("status", "max_time", "max_size", "min_size", "python")
StatusCode = int | Annotated[str, Field(pattern=r"^[1-5]xx$")]


class Check(Model):
    """A checkpoint on a response. A failed checkpoint marks the request failed."""

    status: StatusCode | list[StatusCode] | None = Field(
        None,
        description="Expected status: a code, a class like 2xx, or a list.",
        examples=[200, [200, 201], "2xx"],
    )
    jsonpath: JsonPath | None = Field(None, description="Check a value in the JSON body.")
    xpath: XPath | None = Field(None, description="Check a value in the HTML or XML body.")
    header: str | None = Field(None, description="Check a response header.")
    equals: TemplateTree = Field(None, description="The value (of jsonpath, xpath or header) equals this.")
    contains: Template | None = Field(
        None, description="The body (or the jsonpath / xpath / header value) contains this text."
    )
    not_contains: Template | None = Field(None, description="The body (or the value) does not contain this text.")
    matches: Regex | None = Field(None, description="The body (or the value) matches this regular expression.")
    exists: bool | None = Field(None, description="The jsonpath / xpath / header is present (true) or absent.")
    max_time: Duration | None = Field(None, description="The response time is at most this.", examples=["500ms"])
    max_size: int | None = Field(None, ge=0, description="The body has at most this many bytes.")
    min_size: int | None = Field(None, ge=0, description="The body has at least this many bytes.")
    python: PythonName | None = Field(
        None,
        description="A function of the scenario's Python module: f(response, variables) returns True/None "
        "(passed), or False or a message (failed).",
    )
    document: Literal["auto", "html", "xml"] = Field("auto", description="How xpath parses the body.")
    ignore_case: bool = Field(False, description="Case-insensitive contains / not_contains / matches / equals.")
    on_fail: OnFail = Field(
        "continue",
        description="What follows a failure: continue, stop_iteration (start the next one), stop_user, stop_test.",
    )
    message: str | None = Field(None, description="Failure message to report instead of the generated one.")

    @model_validator(mode="after")
    def _consistent(self) -> Check:
        subjects = [k for k in CHECK_SUBJECTS if getattr(self, k) is not None]
        standalone = [k for k in CHECK_STANDALONE if getattr(self, k) is not None]
        if standalone == ["max_size", "min_size"]:
            standalone = ["size"]  # a size range is one check
        predicates = [k for k in CHECK_PREDICATES if k in self.model_fields_set]
        nulls = [k for k in predicates if k != "equals" and getattr(self, k) is None]  # equals: ~ means JSON null
        if nulls:
            raise ValueError(f"'{nulls[0]}' needs a value, not null (~): write the text to look for, in quotes")
        if len(subjects) + len(standalone) > 1 or (standalone and predicates):
            what = ", ".join(subjects + standalone + predicates)
            raise ValueError(f"one checkpoint checks one thing (found {what}); write several checkpoints")
        if not standalone and not predicates:
            if subjects:
                raise ValueError(f"say what to check about {subjects[0]}: one of {', '.join(CHECK_PREDICATES)}")
            raise ValueError(
                "a checkpoint needs one of: " + ", ".join(CHECK_STANDALONE + CHECK_SUBJECTS + CHECK_PREDICATES)
            )
        if len(predicates) > 1:
            raise ValueError(f"one checkpoint has one condition (found {', '.join(predicates)})")
        if not subjects and predicates and predicates[0] in ("equals", "exists"):
            raise ValueError(f"'{predicates[0]}' needs a jsonpath, xpath or header to apply to")
        return self

    @property
    def subject(self) -> str:
        """What the check reads: body, status, time, size, jsonpath, xpath or header."""
        for key in CHECK_SUBJECTS:
            if getattr(self, key) is not None:
                return key
        if self.status is not None:
            return "status"
        if self.max_time is not None:
            return "time"
        if self.max_size is not None or self.min_size is not None:
            return "size"
        if self.python is not None:
            return "python"
        return "body"

    @property
    def predicate(self) -> str | None:
        return next((k for k in CHECK_PREDICATES if k in self.model_fields_set), None)


# ----------------------------------------------------------------------------------------------- steps


def _as_list(value: Any) -> Any:
    if isinstance(value, dict):
        return [value]
    if value is not None and not isinstance(value, list):
        raise ValueError(f"expected a checkpoint such as {{status: 200}}, or a list of them; got {value!r}")
    return value


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _one_or_list(schema: dict[str, Any]) -> None:
    """Editors should accept one checkpoint mapping as well as a list of them."""
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [items, {"type": "array", "items": items}]


class FileUpload(Model):
    path: str = Field(description="File to upload, relative to the scenario file.")
    filename: str | None = Field(None, description="File name sent to the server (default: the file's name).")
    content_type: str = Field("application/octet-stream", description="Content type of the part.")


_BODY_READERS = frozenset(("body", "jsonpath", "xpath", "regex", "boundary"))


class Request(Model):
    """An HTTP request. Write the method as the key: ``get: /items``, ``post: /orders`` …"""

    get: Template | None = Field(None, description="GET this URL (relative to the host, or absolute).")
    post: Template | None = Field(None, description="POST to this URL.")
    put: Template | None = Field(None, description="PUT to this URL.")
    patch: Template | None = Field(None, description="PATCH this URL.")
    delete: Template | None = Field(None, description="DELETE this URL.")
    head: Template | None = Field(None, description="HEAD this URL.")
    options: Template | None = Field(None, description="OPTIONS this URL.")
    name: str | None = Field(
        None,
        description="Name to group statistics under (default: the URL as written). Use it for templated URLs.",
        examples=["/items/[id]"],
    )
    query: dict[str, TemplateScalar | list[TemplateScalar]] | None = Field(
        None, description="Query-string parameters (added to any already in the URL)."
    )
    headers: dict[str, Template] | None = Field(None, description="Request headers (override the user's).")
    json_: TemplateTree = Field(
        None,
        alias="json",
        description="JSON body. A string that is exactly one {{ expression }} keeps the expression's type.",
    )
    form: dict[str, TemplateScalar] | None = Field(None, description="Form body (urlencoded).")
    body: Template | None = Field(None, description="Raw body text.")
    files: dict[str, FileUpload] | None = Field(None, description="Multipart file upload: field -> file.")
    timeout: Duration | None = Field(
        None, description="Give up after this long, redirects included (counts as a failure)."
    )
    allow_redirects: bool = Field(True, description="Follow redirects (the request is timed to the last one).")
    discard_body: bool | None = Field(
        None, description="Read the body and count its bytes without keeping it (default: http.discard_body)."
    )
    extract: dict[str, Extract] | None = Field(
        None, description="Correlation: variable name -> extractor. Runs after the response, before checks."
    )
    check: Annotated[list[Check], BeforeValidator(_as_list)] = Field(
        default_factory=list,
        description="Checkpoints (one, or a list). Without a status checkpoint, a status of 400 or more "
        "fails the request.",
        json_schema_extra=_one_or_list,
    )
    think: Think | None = Field(None, description="Think time after this request.")

    @model_validator(mode="after")
    def _one_method(self) -> Request:
        methods = [m for m in HTTP_METHODS if getattr(self, m) is not None]
        empty = [m for m in HTTP_METHODS if m in self.model_fields_set and getattr(self, m) is None]
        if empty and not methods:  # `get:` with nothing after it
            raise ValueError(f"{empty[0]}: expected a URL; got nothing (null)")
        if len(methods) != 1:
            raise ValueError(f"a request has exactly one method key (found {', '.join(methods)})")
        bodies = [k for k in ("json", "form", "body") if k in self.model_fields_set or k + "_" in self.model_fields_set]
        if len(bodies) > 1:
            raise ValueError(f"a request has one body: json, form or body (found {', '.join(bodies)})")
        if self.files and ("json_" in self.model_fields_set or self.body is not None):
            raise ValueError("files are sent as multipart form data: combine them with form, not json or body")
        return self

    @model_validator(mode="after")
    def _body_kept_when_read(self) -> Request:
        if self.discard_body:
            readers = [f"extractor {n} ({e.kind})" for n, e in (self.extract or {}).items() if e.kind in _BODY_READERS]
            readers += [
                f"checkpoint {c.predicate if c.subject == 'body' else c.subject}"
                for c in self.check
                if c.subject in _BODY_READERS
            ]
            if readers:
                raise ValueError(
                    f"discard_body: true keeps no body, yet {readers[0]} reads it: drop discard_body or that "
                    "one (status, header, cookie, max_time and size still work)"
                )
        return self

    @property
    def method(self) -> str:
        return next(m for m in HTTP_METHODS if getattr(self, m) is not None).upper()

    @property
    def url(self) -> str:
        return next(getattr(self, m) for m in HTTP_METHODS if getattr(self, m) is not None)

    @property
    def has_json(self) -> bool:
        return "json_" in self.model_fields_set


class ThinkStep(Model):
    think: Think = Field(description="Pause, like a user reading the page.")


class SetStep(Model):
    set: dict[str, TemplateTree] = Field(
        description="Set variables: name -> value (templates allowed; one {{ expression }} keeps its type).",
        examples=[{"item_id": "{{ random_int(1, 10) }}"}],
    )


class SequenceStep(Model):
    sequence: list[Step] = Field(description="Steps run in order.")
    name: str | None = Field(None, description="A label for logs.")


class TransactionStep(Model):
    transaction: str = Field(
        min_length=1,
        description="A named group of steps timed as one (think time inside excluded); it fails if any request "
        "or checkpoint inside fails.",
        examples=["checkout"],
    )
    steps: list[Step] = Field(description="The steps of the transaction.", min_length=1)


class RendezvousStep(Model):
    rendezvous: str = Field(
        min_length=1,
        description="A named point where users wait, then all go at once (flash sale, concurrent submit).",
        examples=["flash_sale"],
    )
    users: int | None = Field(None, ge=1, description="Release when this many users have arrived.")
    percent: float | None = Field(
        None, gt=0, le=100, description="Release when this percentage of all users (the load's users) arrived."
    )
    percent_running: float | None = Field(
        None, gt=0, le=100, description="Release when this percentage of the users running now arrived."
    )
    timeout: Duration = Field(
        30,
        gt=0,
        description="Release whoever waits when no user arrived for this long (LoadRunner's timeout between "
        "users). A rendezvous never waits longer.",
    )

    @model_validator(mode="after")
    def _one_policy(self) -> RendezvousStep:
        given = [k for k in ("users", "percent", "percent_running") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"a rendezvous has one release policy (found {', '.join(given)})")
        return self

    @property
    def policy(self) -> tuple[str, float]:
        """("users", N), ("percent", X) or ("percent_running", X); all running users by default."""
        for key in ("users", "percent", "percent_running"):
            value = getattr(self, key)
            if value is not None:
                return key, value
        return "percent_running", 100.0


class IfStep(Model):
    if_: Expression = Field(alias="if", description='A condition on variables, e.g. "balance > 100".')
    then: list[Step] = Field(description="Steps run when the condition is true.")
    else_: list[Step] = Field(default_factory=list, alias="else", description="Steps run when it is false.")


class PoolLoop(Model):
    pool: str = Field(description="Loop over every row of this data pool, in file order.")


class LoopStep(Model):
    loop: Annotated[int, Field(ge=0)] | PoolLoop | list[Any] | Template = Field(
        description="How often: a count, a list, {pool: NAME} (each row), or a template giving a count or a list.",
        examples=[3, "{{ item_ids }}", {"pool": "products"}],
    )
    as_: str = Field(
        "item",
        alias="as",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The variable holding the current element (the count 1, 2 … for a count, the row for a pool).",
    )
    steps: list[Step] = Field(description="Steps repeated each time.", min_length=1)


class CallStep(Model):
    call: PythonName = Field(
        description="Call a function of the scenario's Python module: f(user, **args). It gets the user's "
        "variables (user.vars) and HTTP client (user.client), like a Locust task.",
    )
    args: dict[str, TemplateTree] | None = Field(None, description="Keyword arguments (templates allowed).")
    save: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Save the return value in this variable."
    )
    on_error: OnFail = Field(
        "stop_iteration",
        description="When the function raises: the error is reported (with the module's file and line), then "
        "continue, stop_iteration, stop_user or stop_test.",
    )


class ParallelStep(Model):
    parallel: list[Request] = Field(
        min_length=1,
        description="Requests sent at once, as a browser fetches a page's resources: over HTTP/2 multiplexed on the "
        "user's one connection, over HTTP/1.1 on up to max_connections connections per origin. Each request keeps "
        "its own statistics; the step ends when all have.",
    )
    name: str | None = Field(
        None, min_length=1, description="Time the whole group under this name, as a transaction.", examples=["page"]
    )
    max_connections: int = Field(
        6, ge=1, le=100, description="Requests under way at once at most (a browser's 6 connections per origin)."
    )

    @field_validator("parallel", mode="before")
    @classmethod
    def _requests_only(cls, value: Any) -> Any:
        for index, item in enumerate(value if isinstance(value, list) else []):
            kind = step_kind(item)
            if kind not in (None, "request"):
                raise ValueError(
                    f"item {index + 1} is a {kind} step: a parallel group holds requests only (get, post …); "
                    "put other steps before or after it"
                )
        return value

    @model_validator(mode="after")
    def _no_think_inside(self) -> ParallelStep:
        for request in self.parallel:
            if request.think is not None:
                raise ValueError("a request of a parallel group has no think time of its own: put a think step after")
        return self


GRPC_STATUS = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)  # fmt: skip
GrpcStatus = Literal[GRPC_STATUS]  # type: ignore[valid-type]


class GrpcStep(Model):
    """A gRPC call (unary or streaming), with descriptors from the scenario's ``grpc.protos`` or reflection."""

    grpc: str = Field(
        pattern=r"^/?[A-Za-z_][\w.]*/[A-Za-z_]\w*$",
        description="The method: package.Service/Method (or Service/Method when the name is unique).",
        examples=["shop.Catalog/GetItem"],
    )
    message: TemplateTree = Field(
        None, description="The request message as a mapping (protobuf's JSON form); templates allowed."
    )
    messages: list[TemplateTree] | Template | None = Field(
        None,
        description="Client and bidirectional streaming: the messages sent, in order (or a template giving a list).",
    )
    target: Template | None = Field(
        None, description="host:port of the server (default: the host's; https:// means TLS)."
    )
    tls: bool | None = Field(None, description="Use TLS (default: when the host is https://).")
    metadata: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")], Template] | None = Field(
        None, description="Request metadata (gRPC's headers): names of letters, digits, '-', '_', '.'; not grpc-*."
    )
    deadline: Duration | None = Field(
        None, description="The call's deadline, streams included (default: http.timeout). Past it: DEADLINE_EXCEEDED."
    )
    name: str | None = Field(None, description="Name in the statistics (default: the method as written).")
    status: GrpcStatus | list[GrpcStatus] = Field(
        "OK", description="The expected status code(s) by name; any other is a failure with the server's message."
    )
    max_messages: int = Field(
        10_000, ge=1, description="Streamed responses kept at most; past them the call is cancelled and fails."
    )
    extract: dict[str, Extract] | None = Field(
        None,
        description="Variables from the response: jsonpath over the message as a mapping (a list of them for a "
        "server stream), header over the response metadata.",
    )
    check: Annotated[list[Check], BeforeValidator(_as_list)] = Field(
        default_factory=list,
        description="Checkpoints on the response (jsonpath, header, contains, max_time, python).",
        json_schema_extra=_one_or_list,
    )
    think: Think | None = Field(None, description="Think time after this call.")

    @model_validator(mode="after")
    def _one_payload(self) -> GrpcStep:
        if "message" in self.model_fields_set and self.messages is not None:
            raise ValueError("a gRPC call sends 'message' (unary, server streaming) or 'messages' (client streams)")
        if any(check.status is not None for check in self.check):
            raise ValueError("a gRPC call has no HTTP status: write the expected code as the step's status: NOT_FOUND")
        reserved = [k for k in self.metadata or {} if k.lower().startswith("grpc-")]
        if reserved:
            raise ValueError(f"metadata '{reserved[0]}': grpc-* names are gRPC's own (use deadline for grpc-timeout)")
        return self


class GrpcSettings(Model):
    """Where a scenario's gRPC steps find their services."""

    protos: Annotated[list[str], BeforeValidator(_one_or_more)] = Field(
        default_factory=list,
        description=".proto files (relative to this file), compiled when the scenario loads.",
        json_schema_extra=_one_or_list,
    )
    import_paths: list[str] = Field(
        default_factory=list, description="Folders (relative to this file) where protoc looks for imports."
    )
    reflection: bool = Field(
        False, description="Ask the server for its services (server reflection) instead of reading .proto files."
    )
    ca: str | None = Field(None, description="A PEM file of the CA that signed the server's certificate (TLS).")

    @model_validator(mode="after")
    def _a_source(self) -> GrpcSettings:
        if bool(self.protos) == self.reflection:
            raise ValueError("gRPC descriptors come from 'protos' (a list of .proto files) or 'reflection: true'")
        return self


# ----------------------------------------------------------------------------------------------- WebSocket

_CONNECTION = r"^[A-Za-z_][A-Za-z0-9_]*$"
_WS_MATCH_SUBJECTS = ("body", "jsonpath", "xpath", "python")  # what a message has: no status, header, time


def _message_checks(checks: list[Check], extract: dict[str, Extract] | None, where: str) -> None:
    """A message has a body only: no status, headers, cookies or response time to check or extract."""
    for check in checks:
        if check.subject not in (*_WS_MATCH_SUBJECTS, "size"):
            raise ValueError(f"{where}: a message has no {check.subject}; check its body, a jsonpath or its size")
    for variable, spec in (extract or {}).items():
        if spec.kind in ("header", "cookie", "status"):
            raise ValueError(
                f"{where}: extractor {variable} reads a {spec.kind}, which a message has not: use jsonpath, regex, "
                "boundary or xpath"
            )


def _matcher(value: Check | None, where: str) -> None:
    if value is not None and value.subject not in _WS_MATCH_SUBJECTS:
        raise ValueError(
            f"{where}: match a message by jsonpath (with equals, contains, matches or exists), matches (a regex), "
            f"contains or python; not by {value.subject}"
        )


class WsPayload(Model):
    """A message to send: text, JSON, or binary (base64)."""

    text: Template | None = Field(None, description="A text message (templated).")
    json_: TemplateTree = Field(None, alias="json", description="A JSON text message (templates keep their types).")
    binary: Template | None = Field(None, description="A binary message, written in base64 (templated).")

    @model_validator(mode="after")
    def _one(self) -> WsPayload:
        given = [k for k in ("text", "json_", "binary") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("a message is one of: text, json, binary (base64)")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("text", "json_", "binary") if k in self.model_fields_set).rstrip("_")


class WsConnectStep(Model):
    """Open a WebSocket, kept by the user across steps and iterations until ws_close (or the user ends)."""

    ws_connect: Template = Field(
        description="ws:// or wss:// URL, or a path on the host (http becomes ws, https wss). Does nothing when "
        "the connection is open already, so it can start every iteration: it reconnects after a drop.",
        examples=["/ws/chat", "wss://feed.example.com/prices"],
    )
    as_: str = Field("ws", alias="as", pattern=_CONNECTION, description="The connection's name (several per user).")
    name: str | None = Field(None, description="Name in the statistics (default: the URL as written).")
    headers: dict[str, Template] | None = Field(None, description="Headers of the upgrade request.")
    subprotocols: list[str] = Field(default_factory=list, description="Subprotocols offered (Sec-WebSocket-Protocol).")
    timeout: Duration = Field(10, gt=0, description="Connecting and the upgrade must be done within this.")
    max_message: Size = Field(2**20, gt=0, description="A received message larger than this closes the connection.")
    buffer: int = Field(
        1000,
        ge=0,
        description="Received messages kept for later ws_receive steps; past it the oldest is counted unread.",
    )
    think: Think | None = Field(None, description="Think time after this step.")


class WsSendStep(Model):
    """Send a message; with expect, wait for the reply and time the round trip."""

    ws_send: Template | WsPayload = Field(
        description="The message: text, or {json: ...}, {text: ...}, {binary: BASE64}.",
        examples=["hello {{ name }}", {"json": {"type": "join", "room": "lobby"}}],
    )
    connection: str = Field("ws", pattern=_CONNECTION, description="The connection (the 'as' of its ws_connect).")
    name: str | None = Field(
        None, description="Name in the statistics (default: 'send CONNECTION', or with expect 'CONNECTION round trip')."
    )
    expect: Check | None = Field(
        None,
        description="Wait for a reply matching this ({jsonpath, equals}, {matches: REGEX}, {contains}); the entry "
        "then times send → reply.",
    )
    timeout: Duration = Field(10, gt=0, description="With expect: how long to wait for the reply.")
    extract: dict[str, Extract] | None = Field(None, description="With expect: variables from the reply.")
    check: Annotated[list[Check], BeforeValidator(_as_list)] = Field(
        default_factory=list, description="With expect: checkpoints on the reply.", json_schema_extra=_one_or_list
    )
    think: Think | None = Field(None, description="Think time after this step.")

    @model_validator(mode="after")
    def _reply(self) -> WsSendStep:
        _matcher(self.expect, "expect")
        if self.expect is None and (self.extract or self.check):
            raise ValueError("extract and check read the reply: say which with expect: (or use ws_receive)")
        _message_checks(self.check, self.extract, "ws_send")
        return self


class WsReceiveStep(Model):
    """Wait for a message: the next one, or the first that matches."""

    ws_receive: Literal["next"] | Check = Field(
        description="'next', or the message to wait for: {jsonpath, equals}, {matches: REGEX}, {contains: TEXT}. "
        "Messages it passes over are counted unread.",
        examples=["next", {"jsonpath": "$.type", "equals": "price"}],
    )
    connection: str = Field("ws", pattern=_CONNECTION, description="The connection (the 'as' of its ws_connect).")
    name: str | None = Field(None, description="Name in the statistics (default: 'receive CONNECTION').")
    timeout: Duration = Field(10, gt=0, description="How long to wait (a failure past it).")
    extract: dict[str, Extract] | None = Field(None, description="Variables from the message.")
    check: Annotated[list[Check], BeforeValidator(_as_list)] = Field(
        default_factory=list, description="Checkpoints on the message.", json_schema_extra=_one_or_list
    )
    think: Think | None = Field(None, description="Think time after this step.")

    @model_validator(mode="after")
    def _message(self) -> WsReceiveStep:
        _matcher(self.ws_receive if isinstance(self.ws_receive, Check) else None, "ws_receive")
        _message_checks(self.check, self.extract, "ws_receive")
        return self


class WsPingStep(Model):
    ws_ping: Annotated[str, Field(pattern=_CONNECTION)] | None = Field(
        description="Ping a connection (its name; empty: ws) and time the pong."
    )
    name: str | None = Field(None, description="Name in the statistics (default: 'ping CONNECTION').")
    timeout: Duration = Field(10, gt=0, description="How long to wait for the pong.")
    think: Think | None = Field(None, description="Think time after this step.")


class WsCloseStep(Model):
    ws_close: Annotated[str, Field(pattern=_CONNECTION)] | None = Field(
        description="Close a connection (its name; empty: ws) with a close handshake."
    )
    code: int = Field(1000, ge=1000, le=4999, description="The close code sent.")
    reason: str = Field("", max_length=120, description="The close reason sent.")
    name: str | None = Field(None, description="Name in the statistics (default: 'close CONNECTION').")
    timeout: Duration = Field(5, gt=0, description="How long to wait for the server's close frame.")
    think: Think | None = Field(None, description="Think time after this step.")


WS_STEPS = (WsConnectStep, WsSendStep, WsReceiveStep, WsPingStep, WsCloseStep)


# ----------------------------------------------------------------------------------------------- server-sent events


class SseSubscribeStep(Model):
    """Subscribe to a server-sent events stream, kept by the user across steps and iterations."""

    sse_subscribe: Template = Field(
        description="The stream's URL (a path on the host, or absolute). Does nothing while subscribed; after the "
        "stream ended it subscribes again, sending the last event id as Last-Event-ID.",
        examples=["/sse/prices"],
    )
    as_: str = Field("sse", alias="as", pattern=_CONNECTION, description="The stream's name (several per user).")
    name: str | None = Field(None, description="Name in the statistics (default: the URL as written).")
    headers: dict[str, Template] | None = Field(None, description="Headers of the request.")
    timeout: Duration = Field(10, gt=0, description="Connecting and the response head must be done within this.")
    max_event: Size = Field(2**20, gt=0, description="An event (or a line) larger than this ends the stream.")
    buffer: int = Field(1000, ge=0, description="Events kept for later sse_receive steps; past it, counted unread.")
    think: Think | None = Field(None, description="Think time after this step.")


class SseReceiveStep(Model):
    """Wait for an event: the next one, or the first whose type and data match."""

    sse_receive: Literal["next"] | Check = Field(
        description="'next', or a match on the event's data: {jsonpath, equals}, {matches: REGEX}, {contains}.",
        examples=["next", {"jsonpath": "$.symbol", "equals": "ACME"}],
    )
    event: str | None = Field(None, description="Only an event of this type (its 'event:' field; default: any).")
    connection: str = Field("sse", pattern=_CONNECTION, description="The stream (the 'as' of its sse_subscribe).")
    name: str | None = Field(None, description="Name in the statistics (default: 'receive CONNECTION').")
    timeout: Duration = Field(10, gt=0, description="How long to wait (a failure past it).")
    extract: dict[str, Extract] | None = Field(None, description="Variables from the event's data.")
    check: Annotated[list[Check], BeforeValidator(_as_list)] = Field(
        default_factory=list, description="Checkpoints on the event's data.", json_schema_extra=_one_or_list
    )
    think: Think | None = Field(None, description="Think time after this step.")

    @model_validator(mode="after")
    def _message(self) -> SseReceiveStep:
        _matcher(self.sse_receive if isinstance(self.sse_receive, Check) else None, "sse_receive")
        _message_checks(self.check, self.extract, "sse_receive")
        return self


class SseCloseStep(Model):
    sse_close: Annotated[str, Field(pattern=_CONNECTION)] | None = Field(
        description="Unsubscribe: close a stream (its name; empty: sse)."
    )
    think: Think | None = Field(None, description="Think time after this step.")


SSE_STEPS = (SseSubscribeStep, SseReceiveStep, SseCloseStep)


# ----------------------------------------------------------------------------------------------- GraphQL

_OPERATION_NAME = re.compile(r"^\s*(?:query|mutation|subscription)\s+([A-Za-z_][A-Za-z0-9_]*)")


def _operation_name(query: str, operation: str | None) -> str | None:
    """operationName as given, else the name the query's text gives its operation."""
    found = _OPERATION_NAME.match(query)
    return operation or (found[1] if found else None)


class GraphqlStep(Model):
    """A GraphQL operation over HTTP: a 200 whose body has errors is a failure with their messages."""

    graphql: Template = Field(
        description="The endpoint's URL (relative to the host, or absolute).", examples=["/graphql"]
    )
    query: Template = Field(
        min_length=1,
        description="The operation (query or mutation) as text.",
        examples=["query Item($id: Int!) { item(id: $id) { name price } }"],
    )
    variables: dict[str, TemplateTree] | None = Field(
        None, description="Its variables (templates keep their types: {{ id }} stays a number)."
    )
    operation: str | None = Field(
        None,
        description="operationName, sent to the server and used in the statistics (default: the query's name).",
    )
    method: Literal["POST", "GET"] = Field("POST", description="POST a JSON body, or GET with query parameters.")
    name: str | None = Field(None, description="Name in the statistics (default: the operation's name).")
    headers: dict[str, Template] | None = Field(None, description="Request headers (override the user's).")
    timeout: Duration | None = Field(None, description="Give up after this long (counts as a failure).")
    extract: dict[str, Extract] | None = Field(
        None, description="Variables from the response: jsonpath on $.data…, or any extractor of a request."
    )
    check: Annotated[list[Check], BeforeValidator(_as_list)] = Field(
        default_factory=list,
        description="Checkpoints on the response (besides: no errors, a status below 400).",
        json_schema_extra=_one_or_list,
    )
    think: Think | None = Field(None, description="Think time after this step.")

    @property
    def operation_name(self) -> str | None:
        return _operation_name(self.query, self.operation)


_SUBSCRIPTION_START = re.compile(r"^\s*(?:#[^\n]*\n\s*)*(\{\{|subscription\b|query\b|mutation\b|\{)")


class GraphqlSubscribeStep(Model):
    """A GraphQL subscription over a WebSocket speaking graphql-transport-ws: lrun opens the connection (and keeps
    it), waits for the events asked for, then completes the subscription."""

    graphql_subscribe: Template = Field(
        description="The endpoint's URL: ws:// or wss://, or a path on the host (http becomes ws, https wss).",
        examples=["/graphql"],
    )
    query: Template = Field(
        min_length=1,
        description="The subscription operation as text.",
        examples=["subscription Price($symbol: String!) { priceChanged(symbol: $symbol) { price } }"],
    )
    variables: dict[str, TemplateTree] | None = Field(
        None, description="Its variables (templates keep their types: {{ id }} stays a number)."
    )
    operation: str | None = Field(
        None,
        description="operationName, sent to the server and used in the statistics (default: the query's name).",
    )
    events: StrictInt | Literal["all"] = Field(
        1,
        description="How many events to wait for (then lrun completes the subscription), or all: until the server "
        "completes it.",
    )
    until: Check | None = Field(
        None,
        description="Wait for the first event that matches this (a jsonpath on the event's payload, "
        "$.data…), instead of a number of events.",
        examples=[{"jsonpath": "$.data.priceChanged.price", "equals": 105}],
    )
    timeout: Duration = Field(
        10, gt=0, description="Connecting (up to connection_ack) within this, then the events within this."
    )
    as_: str = Field(
        "graphql",
        alias="as",
        pattern=_CONNECTION,
        description="The connection's name: kept by the user across steps and iterations, each subscription on it "
        "with its own id (ws_ping and ws_close accept it).",
    )
    connection_params: TemplateTree = Field(
        None, description="The payload of connection_init (an auth token, say), sent once per connection."
    )
    headers: dict[str, Template] | None = Field(None, description="Headers of the upgrade request.")
    name: str | None = Field(None, description="Name in the statistics (default: the operation's name).")
    extract: dict[str, Extract] | None = Field(
        None, description="Variables from the last event received: jsonpath on $.data… of its payload."
    )
    check: Annotated[list[Check], BeforeValidator(_as_list)] = Field(
        default_factory=list,
        description="Checkpoints on the last event received (besides: no errors in any event).",
        json_schema_extra=_one_or_list,
    )
    think: Think | None = Field(None, description="Think time after this step.")

    @field_validator("query")
    @classmethod
    def _a_subscription(cls, query: str) -> str:
        start = _SUBSCRIPTION_START.match(query)
        if start is not None and start[1] not in ("{{", "subscription"):
            kind = "query" if start[1] == "{" else start[1]
            raise ValueError(
                f"this operation is a {kind}, not a subscription: send it with a graphql: step, or write "
                "'subscription Name { field }'"
            )
        return query

    @model_validator(mode="after")
    def _subscription(self) -> GraphqlSubscribeStep:
        if isinstance(self.events, int) and self.events < 1:
            raise ValueError("events: wait for 1 event or more, or all (until the server completes)")
        if self.until is not None and "events" in self.model_fields_set:
            raise ValueError("events and until both say when to stop waiting: keep one")
        _matcher(self.until, "until")
        _message_checks(self.check, self.extract, "graphql_subscribe")
        return self

    @property
    def operation_name(self) -> str | None:
        return _operation_name(self.query, self.operation)


class _TaskFields(Model):
    weight: int = Field(1, ge=0, description="How often this task is picked relative to the others.")
    tags: list[str] = Field(default_factory=list, description="Tags to select tasks with --tags.")


class RequestTask(Request, _TaskFields):
    """A request picked by weight."""


class SequenceTask(SequenceStep, _TaskFields):
    """A sequence of steps picked by weight as one task."""


STEP_KINDS: dict[str, tuple[str, ...]] = {
    "request": HTTP_METHODS,
    "think": ("think",),
    "set": ("set",),
    "sequence": ("sequence",),
    "transaction": ("transaction",),
    "rendezvous": ("rendezvous",),
    "if": ("if", "if_"),
    "loop": ("loop",),
    "call": ("call",),
    "parallel": ("parallel",),
    "grpc": ("grpc",),
    "ws_connect": ("ws_connect",),
    "ws_send": ("ws_send",),
    "ws_receive": ("ws_receive",),
    "ws_ping": ("ws_ping",),
    "ws_close": ("ws_close",),
    "sse_subscribe": ("sse_subscribe",),
    "sse_receive": ("sse_receive",),
    "sse_close": ("sse_close",),
    "graphql": ("graphql",),
    "graphql_subscribe": ("graphql_subscribe",),
}
TASK_KINDS = ("request", "sequence")


def step_kind(value: Any) -> str | None:
    """The kind of a step from its keys (None when it has none of the kind keys)."""
    if isinstance(value, BaseModel):
        value = value.model_fields_set
    if not isinstance(value, dict | set):
        return None
    for kind, keys in STEP_KINDS.items():
        if any(key in value for key in keys) and (kind != "think" or len(value) == 1):  # think: an option of others
            return kind
    return "think" if "think" in value else None


def _kinds_text() -> str:
    """The other step kinds' keys, a protocol's steps grouped: "…, ws_connect/send/receive/ping/close, …"."""
    groups: dict[str, list[str]] = {}
    for kind in list(STEP_KINDS)[1:]:
        key = STEP_KINDS[kind][0]
        prefix = key.split("_", 1)[0]
        groups.setdefault(prefix if "_" in key and prefix not in STEP_KINDS else key, []).append(key)
    parts = [keys[0] + "".join("/" + key.split("_", 1)[1] for key in keys[1:]) for keys in groups.values()]
    return ", ".join(parts[:-1]) + f" or {parts[-1]}"


Step = Annotated[
    Annotated[Request, Tag("request")]
    | Annotated[ThinkStep, Tag("think")]
    | Annotated[SetStep, Tag("set")]
    | Annotated[SequenceStep, Tag("sequence")]
    | Annotated[TransactionStep, Tag("transaction")]
    | Annotated[RendezvousStep, Tag("rendezvous")]
    | Annotated[IfStep, Tag("if")]
    | Annotated[LoopStep, Tag("loop")]
    | Annotated[CallStep, Tag("call")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[GrpcStep, Tag("grpc")]
    | Annotated[WsConnectStep, Tag("ws_connect")]
    | Annotated[WsSendStep, Tag("ws_send")]
    | Annotated[WsReceiveStep, Tag("ws_receive")]
    | Annotated[WsPingStep, Tag("ws_ping")]
    | Annotated[WsCloseStep, Tag("ws_close")]
    | Annotated[SseSubscribeStep, Tag("sse_subscribe")]
    | Annotated[SseReceiveStep, Tag("sse_receive")]
    | Annotated[SseCloseStep, Tag("sse_close")]
    | Annotated[GraphqlStep, Tag("graphql")]
    | Annotated[GraphqlSubscribeStep, Tag("graphql_subscribe")],
    Discriminator(
        step_kind,
        custom_error_type="step_kind",
        custom_error_message=f"not a step: a step starts with a method (get, post …), {_kinds_text()}",
    ),
]

Task = Annotated[
    Annotated[RequestTask, Tag("request")] | Annotated[SequenceTask, Tag("sequence")],
    Discriminator(
        step_kind,
        custom_error_type="task_kind",
        custom_error_message="not a task: a task is a request (get, post …) or a sequence",
    ),
]


# ----------------------------------------------------------------------------------------------- users and load


class User(Model):
    """A type of virtual user."""

    weight: int = Field(1, ge=0, description="Share of the users of this type, relative to the other types.")
    count: int | None = Field(None, ge=0, description="A fixed number of users of this type (instead of weight).")
    tags: list[str] = Field(default_factory=list, description="Tags to select this user type with --tags.")
    host: str | None = Field(None, description="Host for this user type (default: the scenario's).")
    headers: dict[str, Template] | None = Field(None, description="Headers sent with every request of this user.")
    variables: dict[str, TemplateTree] | None = Field(
        None, description="Variables each user starts with (templates rendered once per user)."
    )
    think: Think | None = Field(None, description="Think time between steps (default: the scenario's, or none).")
    http2: bool | None = Field(
        None, description="This user type's HTTP/2 switch (default: http.http2): false keeps it on HTTP/1.1."
    )
    on_start: list[Step] = Field(default_factory=list, description="Steps run once when a user starts (login …).")
    on_stop: list[Step] = Field(default_factory=list, description="Steps run once when a user stops (logout …).")
    pacing: Think | None = Field(
        None,
        description="Minimum time per iteration (LoadRunner's pacing): an iteration that ends sooner waits for "
        "the rest. A duration, {between: [min, max]} or {gaussian: {mean, stddev}}.",
    )
    sequence: list[Step] | None = Field(
        None, description="Steps run in order; the whole sequence is one iteration. Exclusive with tasks."
    )
    tasks: list[Task] | None = Field(
        None, description="Weighted tasks: each iteration picks one by weight. Exclusive with sequence."
    )

    _host = field_validator("host")(check_host)

    @model_validator(mode="after")
    def _one_flow(self) -> User:
        if (self.sequence is None) == (self.tasks is None):
            raise ValueError("a user has either a sequence or tasks (exactly one of them)")
        if self.tasks is not None and not any(t.weight for t in self.tasks):
            raise ValueError("tasks: at least one task needs a weight above 0")
        return self


class ArrivalStage(Model):
    duration: Duration = Field(description="How long this stage lasts.")
    rate: StageRate = Field(description="Arrivals per second at the end of the stage (reached linearly).")


class _OpenModel(Model):
    arrival_rate: Rate | None = Field(
        None,
        description="Open model: new users per second, whatever the system's speed. Each arrival runs on_start, "
        "one iteration and on_stop, then leaves.",
    )
    arrival_stages: list[ArrivalStage] | None = Field(
        None,
        min_length=1,
        description="Open model with a changing rate: each stage moves linearly to its rate over its duration.",
        examples=[[{"duration": "1m", "rate": 10}, {"duration": "2m", "rate": 50}]],
    )
    max_users: Whole = Field(
        1000,
        ge=1,
        le=MAX_USERS,
        description="Open model: at most this many users at once. Later arrivals wait for a free slot, and their "
        "requests are also reported from the intended start (coordinated omission).",
    )


class TemplateSettings(Model):
    """What a template may make: an operation over the limit fails its step at once, before it uses the memory."""

    max_output: Size = Field(
        templating.MAX_OUTPUT,
        gt=0,
        description="The longest text (or list) one template operation may make: repetition ('a' * n), +, ~, "
        "padding filters and methods, join, replace, format, and the rendered result.",
        examples=["1MiB", "16MiB"],
    )


class Stage(Model):
    duration: Duration = Field(description="How long this stage lasts.")
    users: UserCount = Field(description="Users at the end of the stage (reached linearly from the previous stage).")


class Goal(Model):
    """Goal-oriented load (LoadRunner's): lrun adjusts the number of users until the rate reaches the goal, then
    holds it there, within ``min_users`` to ``max_users``."""

    rps: Rate | None = Field(None, description="The goal in requests per second (all requests together).")
    tps: Rate | None = Field(None, description="The goal in transactions per second (all transactions together).")
    min_users: UserCount = Field(1, ge=1, description="Users at the start, and never fewer.")
    max_users: UserCount = Field(100, ge=1, description="Never more users than this: the goal may stay out of reach.")
    adjust_every: Duration = Field(
        5, description="How often the rate is measured and the users adjusted (above a distributed run's reports)."
    )

    @model_validator(mode="after")
    def _one_goal(self) -> Goal:
        if (self.rps is None) == (self.tps is None):
            raise ValueError("a goal is either rps: or tps: (exactly one of them)")
        if self.min_users > self.max_users:
            raise ValueError(f"min_users {self.min_users} is above max_users {self.max_users}")
        if self.adjust_every < 1:
            raise ValueError("adjust_every: at least 1s (the rate is measured over it)")
        return self


class Load(_OpenModel):
    """How much load to generate (the command line overrides users, spawn_rate, run_time …)."""

    users: UserCount = Field(1, description="Number of concurrent users.")
    spawn_rate: Rate = Field(1, description="Users started per second.")
    run_time: Duration | None = Field(None, description="Stop after this long (default: run until stopped).")
    iterations: Whole | None = Field(
        None, ge=1, le=MAX_ITERATIONS, description="Stop each user after this many iterations."
    )
    stop_timeout: Duration = Field(0, description="On stop, let users finish their iteration for this long.")
    stages: list[Stage] | None = Field(
        None,
        description="Ramp up, hold, ramp down: each stage moves linearly to its number of users over its duration. "
        "The test ends after the last stage. Replaces users, spawn_rate and run_time.",
        examples=[[{"duration": "30s", "users": 50}, {"duration": "2m", "users": 50}, {"duration": "10s", "users": 0}]],
        min_length=1,
    )
    goal: Goal | None = Field(
        None,
        description="Goal-oriented load: reach and hold a rate (rps: or tps:) by adjusting the users, for run_time.",
        examples=[{"rps": 200, "min_users": 1, "max_users": 50}],
    )

    @model_validator(mode="after")
    def _one_model(self) -> Load:
        shapes = [k for k in ("stages", "arrival_rate", "arrival_stages", "goal") if getattr(self, k) is not None]
        if len(shapes) > 1:
            raise ValueError(f"choose one load shape: {' or '.join(shapes)}")
        if self.arrival_rate is not None and self.run_time is None:
            raise ValueError("arrival_rate: say how long with run_time (or use arrival_stages)")
        if self.goal is not None and self.run_time is None:
            raise ValueError("goal: say how long with run_time")
        planned = self.planned_arrivals()
        if planned > MAX_ARRIVALS:
            raise ValueError(
                f"{planned:,.0f} arrivals planned: at most {MAX_ARRIVALS:,} in one run (the schedule is kept in "
                "memory); lower the rate or the run time, or run several tests"
            )
        return self

    def planned_arrivals(self) -> float:
        """How many arrivals the open model plans (the integral of its rate); 0 for the closed model."""
        if self.arrival_rate is not None:
            return self.arrival_rate * (self.run_time or 0.0)
        total, before = 0.0, 0.0
        for stage in self.arrival_stages or ():
            total += (before + stage.rate) / 2 * stage.duration
            before = stage.rate
        return total

    @property
    def is_open(self) -> bool:
        return self.arrival_rate is not None or self.arrival_stages is not None


def _check_rule(value: str) -> str:
    parse_expression(value)  # raises ValueError saying what to write
    return value


Rule = Annotated[str, AfterValidator(_check_rule)]


class Threshold(Model):
    """A pass/fail criterion on the results (an SLA). A failed threshold makes the run exit 1."""

    expect: Rule = Field(
        description="METRIC OPERATOR LIMIT. Metrics: p50 … p99.9, avg, min, max, median (ms or 1.5s); "
        "errors (a percentage); requests, failures, rps, failures_per_s. A phase of the time (dns, connect, tls, "
        "send, ttfb, receive) before a time metric reads that phase: 'ttfb p95 < 100ms'.",
        examples=["p95 < 500ms", "errors < 1%", "rps > 100", "ttfb p95 < 100ms"],
    )
    request: str | None = Field(
        None, description="Apply to one request: its name, or 'METHOD name' (default: all requests together)."
    )
    abort: bool = Field(False, description="Check it every second during the run and stop the test when it fails.")
    delay: Duration = Field(
        10, description="With abort, or with over: start checking after this long (statistics need time)."
    )
    over: Duration | None = Field(
        None,
        description="A live SLO window: judge the threshold every second on the last OVER seconds (whole seconds, "
        "1s to 10m) instead of on the whole run; 'p95 < 300ms over 10s' says the same.",
        examples=["10s", "30s"],
    )
    for_windows: int = Field(
        1,
        alias="for",
        description="With over: a breach counts (fails the run, or aborts it) once the window failed this many "
        "windows in a row, i.e. for (for - 1) x over seconds: one spike does not trip 'for: 3'.",
    )

    _for = field_validator("for_windows")(check_for)

    @model_validator(mode="after")
    def _window(self) -> Threshold:
        check_window(parse_expression(self.expect)[0], self.over, self.for_windows)
        return self


def _threshold(value: Any) -> Any:
    return threshold_input(value)


def _rule_or_threshold(schema: dict[str, Any]) -> None:
    """Editors should accept 'p95 < 500ms' as well as {expect: ..., request: ...}."""
    item = schema["items"]
    schema["items"] = {"anyOf": [{"type": "string", "examples": ["p95 < 500ms", "errors < 1%"]}, item]}


class Pool(Model):
    """A data pool (LoadRunner's parameter file): rows from a CSV file or inline, read as {{ pool.column }}."""

    csv: str | None = Field(
        None,
        description="CSV file, relative to the file that declares the pool (or found in --data-dir).",
        examples=["data/users.csv"],
    )
    rows: list[dict[str, Scalar] | Scalar] | None = Field(
        None,
        min_length=1,
        description="Inline rows: mappings column -> value, or plain values (one column named 'value').",
    )
    columns: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] | None = Field(
        None, min_length=1, description="Column names, for a CSV file without a header row."
    )
    header: bool | None = Field(
        None,
        description="The CSV's first row names the columns (default: true, or false when columns are given; "
        "true with columns: skip the first row and use the given names).",
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator.")
    quote: str = Field('"', min_length=1, max_length=1, description="Quote character.")
    encoding: str = Field("utf-8", description="Text encoding of the file.")
    skip_empty: bool = Field(True, description="Ignore empty lines.")
    order: Literal["sequential", "random", "unique"] = Field(
        "sequential",
        description="Next row: sequential (all users share one cursor), random, or unique (no two users hold "
        "the same row at once; without cycle no row is ever handed out twice).",
    )
    update: Literal["each_iteration", "each_occurrence", "once"] = Field(
        "each_iteration",
        description="When a user takes a new row: each iteration (on_start shares the first), each step that "
        "uses the pool, or once per user.",
    )
    when_empty: Literal["cycle", "keep_last", "stop_user", "stop_test"] | None = Field(
        None,
        description="When out of rows: cycle (start over), keep_last (the user keeps its row), stop_user, "
        "stop_test. Default: stop_user for unique, cycle otherwise.",
    )
    wait: Duration | None = Field(
        None,
        description="order: unique with when_empty: cycle: how long a user with no free row waits for another "
        "user to give one back before it stops (default 10s; 0: stop at once). Waits are counted in the results.",
        examples=["5s"],
    )

    @model_validator(mode="after")
    def _one_source(self) -> Pool:
        if (self.csv is None) == (self.rows is None):
            raise ValueError("a pool has either csv: FILE or rows: [...] (exactly one of them)")
        if self.rows is not None:
            for key in ("columns", "header"):
                if key in self.model_fields_set:
                    raise ValueError(f"'{key}' applies to a csv pool, not to inline rows")
        if self.order == "random" and self.when_empty not in (None, "cycle"):
            raise ValueError("a random pool never runs out of rows: when_empty does not apply")
        if self.wait is not None and (self.order, self.when_empty) != ("unique", "cycle"):
            raise ValueError(
                "'wait' applies to order: unique with when_empty: cycle (only there a row comes back for a waiting "
                "user): remove it, or set both"
            )
        return self

    @property
    def wait_seconds(self) -> float:
        """How long a user waits for a free row (unique + cycle only; 0: it stops at once)."""
        if (self.order, self.when_empty) != ("unique", "cycle"):
            return 0.0
        return 10.0 if self.wait is None else self.wait

    @property
    def empty_policy(self) -> str:
        return self.when_empty or ("stop_user" if self.order == "unique" else "cycle")

    @property
    def has_header(self) -> bool:
        return self.header if self.header is not None else self.columns is None


class Http(Model):
    """HTTP client settings."""

    timeout: Duration = Field(
        60, description="Default request timeout: a deadline for the whole exchange, redirects included."
    )
    connect_timeout: Duration = Field(10, description="Time allowed to open a connection.")
    max_redirects: int = Field(10, ge=0, description="Redirects followed at most; past them the request fails.")
    max_body: Size = Field(
        10 * 2**20,
        description="Response body kept in memory at most (after decompression); a bigger body is read, counted "
        "and dropped, and checkpoints and extractors on it fail.",
    )
    discard_body: bool = Field(
        False, description="Read response bodies and count their bytes without keeping them (downloads)."
    )
    http2: bool = Field(
        True,
        description="On https, use HTTP/2 when the server offers it (ALPN), as browsers do; false keeps every "
        "connection on HTTP/1.1.",
    )


class Scenario(Model):
    """An lrun scenario: who the virtual users are and what they do.

    Top-level keys starting with ``x-`` are ignored: a place to keep YAML anchors (``x-auth: &auth ...``).
    """

    model_config = ConfigDict(title="lrun scenario", json_schema_extra={"patternProperties": {"^x-": {}}})

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and any(isinstance(k, str) and k.startswith("x-") for k in data):
            _remember(cls, data, info)  # errors are reported against the mapping as written
            data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data

    name: str | None = Field(None, description="Name of the scenario (default: the file name).")
    description: str | None = Field(None, description="What this scenario tests.")
    include: Annotated[list[str], BeforeValidator(_one_or_more)] = Field(
        default_factory=list,
        description="Fragment files (relative to this file) whose variables, headers and users are merged in.",
        json_schema_extra=_one_or_list,
    )
    host: str | None = Field(
        None,
        description="Base URL of the system under test, or 'demo' for the built-in demo target.",
        examples=["demo", "http://127.0.0.1:8080"],
    )
    headers: dict[str, Template] | None = Field(None, description="Headers sent with every request.")
    variables: dict[str, TemplateTree] | None = Field(None, description="Variables every user starts with.")
    think: Think | None = Field(None, description="Default think time between steps.")
    http: Http = Field(default_factory=Http, description="HTTP client settings.")
    python: str | None = Field(
        None,
        description="A Python module (file relative to this one) whose functions the scenario can call: call "
        "steps, python extractors and checkpoints, template filters, and lifecycle hooks (on_init, "
        "on_test_start, on_test_stop, on_request).",
        examples=["hooks.py"],
    )
    grpc: GrpcSettings | None = Field(None, description="gRPC: the .proto files (or reflection) of grpc steps.")
    pools: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Pool] | None = Field(
        None, description="Data pools by name: templates read {{ name.column }}."
    )
    setup: list[Step] = Field(
        default_factory=list,
        description="Steps run once before any user starts (create test data …); variables they set or extract "
        "are given to every user.",
    )
    teardown: list[Step] = Field(
        default_factory=list, description="Steps run once at the end, also after a failure or Ctrl-C."
    )
    load: Load = Field(default_factory=Load, description="Default load; command-line options override it.")
    users: dict[str, User] = Field(description="User types by name.", min_length=1)
    thresholds: list[Annotated[Threshold, BeforeValidator(_threshold)]] = Field(
        default_factory=list,
        description="Pass/fail criteria: 'p95 < 500ms', or {expect, request, abort}. They decide the exit code.",
        json_schema_extra=_rule_or_threshold,
        examples=[["p95 < 500ms", "errors < 1%", {"expect": "p99 < 800ms", "request": "POST /orders", "abort": True}]],
    )

    templates: TemplateSettings = Field(default_factory=lambda: TemplateSettings(), description="Limits of templates.")
    monitor: Monitor | None = Field(
        None,
        description="Resource monitoring: local processes to watch (the system under test) and thresholds on CPU "
        "and memory. lrun always watches itself and the machine.",
    )

    _host = field_validator("host")(check_host)


for _model in (SequenceStep, SequenceTask, TransactionStep, IfStep, LoopStep, User):
    _model.model_rebuild()


# ----------------------------------------------------------------------------------------------- monitoring


class ResourceThreshold(Model):
    """A limit on CPU or memory, held for a while: then warn (response times may be inflated) or stop the test."""

    metric: Literal[
        "generator_cpu",
        "generator_memory",
        "system_cpu",
        "system_memory",
        "target_cpu",
        "target_memory",
        "host_cpu",
        "host_memory",
        "host_load",
        "query",
    ] = Field(
        description="What to watch: lrun itself (generator_*), the whole machine (system_*), the monitored "
        "processes (target_*), the monitored hosts (host_*: node_exporter) or a monitor.prometheus query (query). "
        "CPU of a process is in % of one core; of a machine, in % of all cores."
    )
    above: str | float = Field(
        description="The limit: a percentage for CPU (90%); for memory a size (500MB, 1.5GiB, bytes) or a "
        "percentage of the machine's memory (80%).",
        examples=["90%", "500MB", "2GiB"],
    )
    process: str | int | None = Field(
        None,
        description="target_*: one of monitor.processes (default: each of them, the worst one counts).",
    )
    server: str | None = Field(
        None, description="host_*: the name of one of monitor.hosts (default: each of them, the worst one counts)."
    )
    query: str | None = Field(None, description="query: the name of one of monitor.prometheus.queries.")
    for_: Duration = Field(
        0, alias="for", description="Only when above the limit this long without a break (default: once)."
    )
    action: Literal["warn", "abort"] = Field(
        "warn", description="warn: say so in the log, the results and the report; abort: stop the test (exit 1)."
    )
    message: str | None = Field(None, description="What to say when the limit is crossed (default: generated).")

    @model_validator(mode="after")
    def _readable(self) -> ResourceThreshold:
        if self.process is not None and not self.metric.startswith("target_"):
            raise ValueError(f"'process' applies to target_cpu and target_memory, not {self.metric}")
        resource_limit(self.metric, self.above, self.scope)  # raises ValueError saying what to write
        return self

    @property
    def scope(self) -> str | int | None:
        """The process (target_*), server (host_*) or query (query) the rule watches."""
        return self.process if self.process is not None else self.server if self.server is not None else self.query


class RemoteHost(Model):
    """A server under test on another machine: its node_exporter's metrics URL."""

    name: str = Field(description="How the results, the report and thresholds (server: NAME) call it.")
    node_exporter: str = Field(description="The node_exporter's URL.", examples=["http://db:9100/metrics"])

    @field_validator("node_exporter")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url


class PrometheusQueries(Model):
    """Instant queries evaluated on a Prometheus server every monitor.interval."""

    url: str = Field(description="The Prometheus server's base URL.", examples=["http://prometheus:9090"])
    queries: dict[str, str] = Field(
        description="name: PromQL. A vector of several series gives its largest value.",
        examples=[{"db_connections": "sum(pg_stat_activity_count)"}],
    )

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url


class Monitor(Model):
    """Resource monitoring besides lrun itself and the machine (always watched)."""

    processes: list[str | int] = Field(
        default_factory=list,
        description="Local processes to watch, by PID or by name (every process with that name counts as one).",
        examples=[["nginx", 1234]],
    )
    thresholds: list[ResourceThreshold] = Field(
        default_factory=list,
        description="Limits on CPU and memory: {metric, above, for, action}.",
        examples=[
            [
                {"metric": "generator_cpu", "above": "90%", "for": "10s"},
                {"metric": "target_memory", "process": "nginx", "above": "500MB", "action": "abort"},
            ]
        ],
    )

    hosts: list[RemoteHost] = Field(
        default_factory=list,
        description="Servers under test on other machines, watched through their node_exporter.",
        examples=[[{"name": "db", "node_exporter": "http://db:9100/metrics"}]],
    )
    prometheus: PrometheusQueries | None = Field(
        None, description="Queries evaluated on your Prometheus during the run: {url, queries: {name: PromQL}}."
    )
    interval: Duration = Field(1, description="Seconds between scrapes of monitor.hosts and monitor.prometheus.")

    @model_validator(mode="after")
    def _known_processes(self) -> Monitor:
        names = [str(p) for p in self.processes]
        servers = [h.name for h in self.hosts]
        queries = list(self.prometheus.queries) if self.prometheus else []
        if len(set(servers)) != len(servers):
            raise ValueError("monitor.hosts: two hosts with the same name")
        if self.interval <= 0:
            raise ValueError("monitor.interval: must be more than 0")
        for threshold in self.thresholds:
            if threshold.metric.startswith("host_"):
                if not servers:
                    raise ValueError(
                        f"{threshold.metric} needs hosts to watch: add monitor.hosts: [{{name, node_exporter}}]"
                    )
                if threshold.server is not None and threshold.server not in servers:
                    raise ValueError(f"server '{threshold.server}' is not in monitor.hosts (now: {', '.join(servers)})")
            elif threshold.server is not None:
                raise ValueError(f"'server' applies to host_cpu, host_memory and host_load, not {threshold.metric}")
            if threshold.metric == "query" and threshold.query not in queries:
                raise ValueError(f"query: name one of monitor.prometheus.queries (now: {', '.join(queries) or 'none'})")
            if threshold.metric != "query" and threshold.query is not None:
                raise ValueError(f"'query' applies to the query metric, not {threshold.metric}")
            if threshold.metric.startswith("host_") or threshold.metric == "query":
                continue
            if threshold.metric.startswith("target_") and not names:
                raise ValueError(f"{threshold.metric} needs processes to watch: add monitor.processes: [NAME or PID]")
            if threshold.process is not None and str(threshold.process) not in names:
                raise ValueError(
                    f"process '{threshold.process}' is not monitored: add it to monitor.processes "
                    f"(now: {', '.join(names) or 'none'})"
                )
        return self


Scenario.model_rebuild()
