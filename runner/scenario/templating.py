"""Jinja2 templates for every string a scenario may template.

Templates are compiled once, when a scenario is compiled, never per request. Strings without ``{{`` or
``{%`` compile to constants and cost nothing at run time. The environment is sandboxed: a scenario cannot
reach Python internals through a template.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import string
import time
import uuid as _uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum

__all__ = [
    "BUILTIN_NAMES",
    "RUNTIME_VARIABLES",
    "Constant",
    "Template",
    "TemplateLimitError",
    "TemplateSyntaxError",
    "compile_template",
    "compile_value",
    "is_template",
]


def _random_string(length: int = 8, chars: str = string.ascii_letters + string.digits) -> str:
    return "".join(random.choices(chars, k=length))


def _now(fmt: str | None = None) -> str:
    moment = datetime.now(UTC)
    return moment.strftime(fmt) if fmt else moment.isoformat(timespec="milliseconds")


def _os_env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


# What env() reads: this process's environment; a distributed worker sets its own (runner.distributed.security).
env_source: Callable[[str, str], str] = _os_env


GLOBALS: dict[str, Any] = {
    "uuid": lambda: str(_uuid.uuid4()),
    "random_int": random.randint,
    "random_float": random.uniform,
    "random_string": _random_string,
    "random_choice": random.choice,
    "now": _now,
    "timestamp": lambda: int(time.time()),
    "timestamp_ms": lambda: int(time.time() * 1000),
    "env": lambda name, default="": env_source(name, default),
}

FILTERS: dict[str, Callable[..., Any]] = {
    "b64encode": lambda v: base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(v).decode("utf-8", errors="replace"),
    "md5": lambda v: hashlib.md5(str(v).encode()).hexdigest(),
    "sha256": lambda v: hashlib.sha256(str(v).encode()).hexdigest(),
}

# What each function and filter is, for the reference (docs/reference/templates.md is generated from it).
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "uuid": ("uuid()", "A random UUID (version 4), as text."),
    "random_int": ("random_int(low, high)", "A random integer from low to high, both included."),
    "random_float": ("random_float(low, high)", "A random number between low and high."),
    "random_string": ("random_string(length=8, chars=letters+digits)", "Random text of that length."),
    "random_choice": ("random_choice(list)", "One item of the list, at random."),
    "now": ("now(format=None)", "The time in UTC: ISO 8601 with milliseconds, or `strftime` with a format."),
    "timestamp": ("timestamp()", "Seconds since the epoch, an integer."),
    "timestamp_ms": ("timestamp_ms()", "Milliseconds since the epoch, an integer."),
    "env": (
        "env(name, default='')",
        "An environment variable of the process running the user (on a worker: "
        "the worker's, when the master allows it).",
    ),
    "b64encode": ("value | b64encode", "Base64 of the value (text is encoded as UTF-8)."),
    "b64decode": ("value | b64decode", "The text a Base64 value encodes."),
    "md5": ("value | md5", "The MD5 hex digest of the value's text."),
    "sha256": ("value | sha256", "The SHA-256 hex digest of the value's text."),
}


def describe(name: str) -> tuple[str, str]:
    """A function's or filter's signature and meaning, for the reference."""
    return DESCRIPTIONS[name]


# Variables every virtual user has without declaring them.
RUNTIME_VARIABLES = frozenset({"user_id", "user_type", "iteration", "host"})
BUILTIN_NAMES = frozenset(GLOBALS) | RUNTIME_VARIABLES | {"range", "dict", "lipsum", "cycler", "joiner", "namespace"}

MAX_OUTPUT = 1 << 20  # characters (or items) one template operation may make: templates: {max_output: 1MiB}


class TemplateLimitError(SecurityError):
    """A template would make a value over the limit: refused before the value is made."""


def _over(limit: int, size: int, what: str, unit: str = "characters") -> None:
    if size > limit:
        message = f"{what} would make {size:,} {unit}, over the limit of {limit:,} (templates: max_output)"
        if unit != "characters":
            message = (
                f"{what} would make {size:,} {unit}, over the limit of {limit // 8:,} bytes (templates: max_output)"
            )
        raise TemplateLimitError(message)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")
_FORMAT_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_WIDTH_FROM_ARGUMENTS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\*|%[-#0 +]*\d*\.\*|\{[^{}]*\{")


def _check_format(limit: int, fmt: str, args: Any, what: str) -> None:
    """A printf or str.format string whose widths or precisions (written, or passed with * or {}) exceed the
    limit. Numbers in the text itself are not widths."""
    written = [n for spec in _PRINTF_SPEC.findall(fmt) for n in spec if n.isdigit()]
    written += [n for spec in _FORMAT_SPEC.findall(fmt) for n in re.findall(r"\d+", spec)]
    numbers = [int(n) if len(n) < 20 else limit + 1 for n in written]
    if _WIDTH_FROM_ARGUMENTS.search(fmt):  # '%*d' % (n, x), '{:{w}}'.format(x, w=n)
        values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple | list) else (args,)
        numbers += [abs(v) for v in values if isinstance(v, int)]
    _over(limit, max(numbers, default=0), what)


def _bounded_filters(limit: int) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that grow values, checked before they grow them; their results checked after."""
    raw = DEFAULT_FILTERS

    def center(value: Any, width: int = 80) -> Any:
        _over(limit, width if isinstance(width, int) else 0, "center")
        return raw["center"](value, width)

    def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> Any:
        lines = str(s).count("\n") + 1
        _over(limit, len(str(s)) + lines * (width if isinstance(width, int) else len(str(width))), "indent")
        return raw["indent"](s, width, first, blank)

    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> Any:
        text, old, new = str(s), str(old), str(new)
        times = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        _over(limit, len(text) + times * max(0, len(new) - len(old)), "replace")
        return raw["replace"](eval_ctx, s, old, new, count)

    def join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
        if attribute is None:
            items = list(value)
            _over(limit, len(items), "join")
            sizes = (len(v) if isinstance(v, str) else len(str(v)) for v in items)
            _over(limit, sum(sizes) + len(str(d)) * max(0, len(items) - 1), "join")
            value = items
        result = raw["join"](eval_ctx, value, d, attribute)
        _over(limit, _size(result), "join")
        return result

    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_format(limit, str(value), kwargs or args, "format")
        result = raw["format"](value, *args, **kwargs)
        _over(limit, _size(result), "format")
        return result

    def wordwrap(environment: Any, s: Any, width: int = 79, *args: Any, **kwargs: Any) -> Any:
        result = raw["wordwrap"](environment, s, width, *args, **kwargs)
        _over(limit, _size(result), "wordwrap")
        return result

    bounded: dict[str, Callable[..., Any]] = {"center": center, "indent": indent, "replace": replace, "join": join}
    bounded.update(format=format_, wordwrap=wordwrap)
    for name, function in bounded.items():  # keep Jinja's pass_eval_context / pass_environment markers
        if hasattr(raw[name], "jinja_pass_arg"):
            function.jinja_pass_arg = raw[name].jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


_GROWING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class _BoundedCodeGenerator(CodeGenerator):
    """``a ~ b`` joins through the environment's bounded ``concat``, like the rendered output."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("concat(map(str, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with every operation that grows a value bounded by ``max_output``: repetition (``'a' * n``),
    ``+``, ``~``, ``**``, ``%``, string methods and filters that pad or multiply, and the rendered output.
    Over the limit, ``TemplateLimitError`` before the value is made (``range`` is the sandbox's own, 100,000)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "+", "**", "%"})
    max_output = MAX_OUTPUT

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limit = self.max_output
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _size(seq) and isinstance(times, int):
                    _over(limit, len(seq) * times, "repetition (*)")
            if isinstance(left, int) and isinstance(right, int):
                _over(limit * 8, left.bit_length() + right.bit_length(), "multiplication", "bits")
        elif operator == "+" and _size(left) and _size(right):
            _over(limit, len(left) + len(right), "concatenation (+)")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            _over(limit * 8, right * (abs(left).bit_length() - 1), "power (**)", "bits")
        elif operator == "%" and isinstance(left, str):
            _check_format(limit, left, right, "format (%)")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        limit = __self.max_output
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner: Any = getattr(target, "__self__", None)  # str or bytes: their methods take the same arguments
        name = getattr(target, "__name__", "")
        if isinstance(owner, str | bytes):
            numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
            if name in _GROWING_METHODS:
                _over(limit, max(numbers, default=0), name)
            elif name == "expandtabs":
                _over(limit, len(owner) + owner.count("\t") * max(numbers, default=8), name)  # type: ignore[arg-type]
            elif name == "replace" and len(args) >= 2 and _size(args[0]) >= 0:
                old, new = args[0], args[1]
                times = owner.count(old) if old else len(owner) + 1
                _over(limit, len(owner) + times * max(0, _size(new) - _size(old)), name)
            elif name == "join" and args:
                items = list(args[0])
                _over(limit, sum(map(_size, items)) + len(owner) * max(0, len(items) - 1), name)
                args = (items, *args[1:])
            elif name in ("format", "format_map"):
                _check_format(limit, owner, kwargs or (args[0] if name == "format_map" and args else args), name)  # type: ignore[arg-type]
        elif target is generate_lorem_ipsum:
            n = args[0] if args else kwargs.get("n", 5)
            high = args[3] if len(args) > 3 else kwargs.get("max", 100)
            _over(limit, (n if isinstance(n, int) else 0) * (high if isinstance(high, int) else 0) * 12, "lipsum")
        elif target is _random_string:
            length = args[0] if args else kwargs.get("length", 8)
            _over(limit, length if isinstance(length, int) else 0, "random_string")
        result = super().call(__context, __obj, *args, **kwargs)
        _over(limit, _size(result), name or "a call")
        return result

    def concat(self, chunks: Any) -> str:  # type: ignore[override]
        """The rendered output (and every ``~`` and block ``set``), stopped as soon as it passes the limit."""
        limit, total, parts = self.max_output, 0, []
        for chunk in chunks:
            total += len(chunk)
            _over(limit, total, "the text")
            parts.append(chunk)
        return "".join(parts)


_env = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_env.globals.update(GLOBALS)
_env.filters.update(FILTERS)
_env.filters.update(_bounded_filters(MAX_OUTPUT))
_current: ContextVar[Environment] = ContextVar("lrun_templates", default=_env)


@contextmanager
def limits(max_output: int | None) -> Iterator[None]:
    """Compile templates with ``max_output`` as the limit of every operation (None: the default)."""
    if max_output is None or max_output == MAX_OUTPUT:
        yield
        return
    env = _current.get().overlay()
    env.max_output = max_output  # type: ignore[attr-defined]
    env.filters = {**_current.get().filters, **_bounded_filters(max_output)}
    token = _current.set(env)
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def functions(extra: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Compile templates with ``extra`` as filters and functions too (a scenario's Python module)."""
    if not extra:
        yield
        return
    env = _env.overlay()
    env.filters = {**_env.filters, **extra}
    env.globals = {**_env.globals, **extra}
    token = _current.set(env)
    try:
        yield
    finally:
        _current.reset(token)


def function_names() -> set[str]:
    """Names of the extra functions templates may call now (see ``functions``)."""
    return set(_current.get().globals) - set(_env.globals)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


class Template:
    """A compiled template string. ``render(variables)`` returns the text."""

    __slots__ = ("render", "source")

    def __init__(self, source: str, render: Callable[[Mapping[str, Any]], Any]):
        self.source = source
        self.render = render

    @property
    def is_constant(self) -> bool:
        return not is_template(self.source)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def parse(source: str) -> nodes.Template:
    """Parse ``source``; raises ``TemplateSyntaxError`` with ``lineno`` relative to the string."""
    return _current.get().parse(source)


_BARE_NAME = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


def _fast_path(source: str, native: bool) -> Callable[[Mapping[str, Any]], Any] | None:
    """Text with bare ``{{ name }}`` holes renders without Jinja (``Bearer {{ token }}``: 0.3 µs, not 10 µs).

    Same output and same undefined-variable error as Jinja; anything else (filters, calls, attributes,
    statements) returns None and goes to Jinja.
    """
    parts = _BARE_NAME.split(source)
    texts, names = parts[0::2], parts[1::2]
    known = _current.get().globals
    if any(is_template(text) for text in texts) or any(name in known or name in _JINJA_WORDS for name in names):
        return None

    def value(variables: Mapping[str, Any], name: str) -> Any:
        try:
            return variables[name]
        except KeyError:
            raise UndefinedError(f"'{name}' is undefined") from None

    if native and len(names) == 1 and not texts[0].strip() and not texts[1].strip():
        name = names[0]
        return lambda variables: value(variables, name)
    if len(names) == 1:
        head, name, tail = texts[0], names[0], texts[1]
        return lambda variables: f"{head}{value(variables, name)}{tail}"
    pairs = list(zip(names, texts[1:], strict=True))
    first = texts[0]

    def render(variables: Mapping[str, Any]) -> str:
        out = [first]
        for name, text in pairs:
            out.append(str(value(variables, name)))
            out.append(text)
        return "".join(out)

    return render


_JINJA_WORDS = frozenset(
    {"true", "false", "none", "True", "False", "None", "loop", "self", "super", "varargs", "kwargs"}
)


def compile_template(source: str, native: bool = False) -> Template:
    """Compile ``source`` once.

    With ``native=True`` a string that is exactly one ``{{ expression }}`` renders to the expression's value
    (an int stays an int): used for JSON bodies, where ``{"qty": "{{ n }}"}`` should send a number.
    """
    if not is_template(source):
        return Template(source, Constant(source))
    fast = _fast_path(source, native)
    if fast is not None:
        return Template(source, fast)
    stripped = source.strip()
    if native and stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        expression = _current.get().compile_expression(stripped[2:-2], undefined_to_none=False)

        def render_native(variables: Mapping[str, Any]) -> Any:
            value = expression(**variables)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()  # raises UndefinedError naming the variable
            _over(limit, _size(value), "the template's value")
            return value

        limit: int = getattr(_current.get(), "max_output", MAX_OUTPUT)

        return Template(source, render_native)
    template = _current.get().from_string(source)
    return Template(source, template.render)


class Constant:
    """A render function that returns the same value every time (no template inside)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, _variables: Mapping[str, Any]) -> Any:
        return self.value


def compile_value(value: Any, native: bool = True) -> Callable[[Mapping[str, Any]], Any]:
    """Compile a nested structure (a JSON body, a form) into one render function.

    Structures without templates compile to a ``Constant`` and are returned as they are, without copying.
    """
    if isinstance(value, str):
        template = compile_template(value, native=native)
        return Constant(value) if template.is_constant else template.render
    if isinstance(value, dict):
        parts = [(compile_value(str(k), native=False), compile_value(v, native)) for k, v in value.items()]
        if all(isinstance(k, Constant) and isinstance(v, Constant) for k, v in parts):
            return Constant(value)
        return lambda variables: {k(variables): v(variables) for k, v in parts}
    if isinstance(value, list):
        items = [compile_value(v, native) for v in value]
        if all(isinstance(item, Constant) for item in items):
            return Constant(value)
        return lambda variables: [item(variables) for item in items]
    return Constant(value)
