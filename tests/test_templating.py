"""Templates: the fast path renders exactly what Jinja renders, and fails the same way."""

from __future__ import annotations

import pytest
from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.scenario.templating import compile_template, compile_value

JINJA = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
VARIABLES = {"token": "abc", "n": 5, "x": 2.5, "none": None, "flag": True, "items": [1, 2], "d": {"k": "v"}}


@pytest.mark.parametrize(
    "source",
    [
        "Bearer {{ token }}",
        "{{token}}",
        "/items/{{ n }}?x={{ x }}&f={{ flag }}",
        "{{ items }} {{ d }}",
        "a {{ n }} b {{ token }} c {{ n }} d\n",
        "{{ token | upper }}",
        "{{ d.k }}",
        "{% if flag %}yes{% endif %}",
        "{{ true }}-{{ none }}",
    ],
)
def test_same_text_as_jinja(source: str) -> None:
    assert compile_template(source).render(VARIABLES) == JINJA.from_string(source).render(**VARIABLES)


def test_native_values_keep_their_type() -> None:
    assert compile_template("{{ n }}", native=True).render(VARIABLES) == 5
    assert compile_template(" {{ items }} ", native=True).render(VARIABLES) == [1, 2]
    assert compile_template("{{ n + 1 }}", native=True).render(VARIABLES) == 6
    assert compile_value({"a": "{{ n }}", "b": ["{{ token }}-x"]})(VARIABLES) == {"a": 5, "b": ["abc-x"]}


@pytest.mark.parametrize("source", ["x {{ missing }}", "{{ missing }}", "{{ missing | upper }}"])
@pytest.mark.parametrize("native", [False, True])
def test_undefined_variables_fail_with_their_name(source: str, native: bool) -> None:
    with pytest.raises(UndefinedError, match="'missing' is undefined"):
        compile_template(source, native=native).render(VARIABLES)


def test_the_sandbox_holds() -> None:
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        compile_template("{{ token.__class__.__mro__ }}").render(VARIABLES)
