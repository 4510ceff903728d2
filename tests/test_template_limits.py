"""Templates cannot make huge values: every growing operation is bounded before it allocates (issue 10 item 2)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from helpers import run_measured, write

from conftest import run_lrun
from runner.scenario import templating
from runner.scenario.templating import TemplateLimitError, compile_template

HUGE = [
    "{{ 'a' * 1000000000 }}",
    "{{ 1000000000 * 'a' }}",
    "{{ ['a'] * 10**9 }}",
    "{{ 'a' ~ ('b' * 600000) ~ ('c' * 600000) }}",
    "{{ ('b' * 600000) + ('c' * 600000) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'.center(10**9) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'.zfill(10**9) }}",
    "{{ ('\t' * 1000).expandtabs(10**6) }}",
    "{{ ('a' * 1000)|replace('a', 'b' * 10000) }}",
    "{{ ('a' * 1000).replace('a', 'b' * 10000) }}",
    "{{ range(100000)|join('x' * 100) }}",
    "{{ ('x' * 1000).join(['y' * 1000] * 1000) }}",
    "{{ ('a\n' * 1000)|indent(10**6) }}",
    "{{ '%999999999d'|format(1) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:>{w}}'.format(1, w=999999999) }}",
    "{{ '%.*f' % (999999999, 1.0) }}",
    "{{ '%(a)999999999s' % {'a': 1} }}",
    "{{ 2 ** 100000000 }}",
    "{{ lipsum(100000) }}",
    "{{ random_string(10**9) }}",
    "{% for i in range(100000) %}{{ 'a' * 1000 }}{% endfor %}",
    "{% set x %}{% for i in range(100000) %}{{ 'a' * 100 }}{% endfor %}{% endset %}{{ x|length }}",
]


@pytest.mark.parametrize("source", HUGE)
def test_a_growing_operation_over_the_limit_fails_before_it_allocates(source: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(TemplateLimitError, match=r"over the limit of 1,048,576( bytes)? \(templates: max_output\)"):
        compile_template(source).render({})
    assert time.monotonic() - started < 5  # ~1 ms here: the value is never made
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB: no gigabyte made


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 'a' + 'b' }}", "ab"),
        ("{{ 'a' ~ 1 ~ 'b' }}", "a1b"),
        ("{{ 'x'|center(5) }}", "  x  "),
        ("{{ [1, 2]|join(',') }}", "1,2"),
        ("{{ 'a-b'|replace('-', '+') }}", "a+b"),
        ("{{ '%05d' % 42 }}", "00042"),
        ("{{ '{}/{}'.format(1, 2) }}", "1/2"),
        ("{{ 2 ** 10 }}", "1024"),
        ("{{ 'ab'.ljust(4, '.') }}", "ab.."),
        ("{{ 'x' * 1048576 == 'x' * 1048576 }}", "True"),
        ("{{ 'order 12345678: {}'.format(1) }}", "order 12345678: 1"),  # numbers in the text are not widths
        ("{{ 'order 12345678: %s' % 1 }}", "order 12345678: 1"),
        ("{{ '{0}'.format(12345678) }}", "12345678"),
        ("{{ '{:*^10}'.format(12345678) }}", "*12345678*"),
        ("{{ '%s-%s' % (12345678, 2) }}", "12345678-2"),
    ],
)
def test_normal_templates_are_unchanged(source: str, text: str) -> None:
    assert compile_template(source).render({}) == text


def test_the_limit_is_configurable() -> None:
    with templating.limits(10):
        small = compile_template("{{ 'a' * n }}")
    assert small.render({"n": 10}) == "a" * 10
    with pytest.raises(TemplateLimitError, match=r"repetition .* 11 characters, over the limit of 10"):
        small.render({"n": 11})
    with templating.limits(4 << 20):
        big = compile_template("{{ 'a' * n }}", native=True)
    assert len(big.render({"n": 3 << 20})) == 3 << 20
    with pytest.raises(TemplateLimitError):
        compile_template("{{ 'a' * n }}").render({"n": 3 << 20})  # the default still holds elsewhere


def test_the_issues_case_fails_the_step_at_once(tmp_path: Path, demo_url: str) -> None:
    scenario = write(
        tmp_path,
        "host: demo\nusers:\n  u:\n    sequence:\n"
        '      - set: {x: "{{ \'a\' * 1000000000 }}"}\n      - get: "/?q={{ x }}"\n',
    )
    out = tmp_path / "out.txt"
    code, err, took, peak_mib = run_measured(tmp_path, "run", str(scenario), "-H", demo_url, "-i", "1", stdout=out)
    # it took 56 s and 3.96 GB before the limit, with no startup (the peak is lrun's own, read while it runs)
    assert took < 30 and peak_mib < 300, (took, peak_mib)
    stdout = out.read_text()
    assert code == 1 and "Traceback" not in stdout + err
    assert "repetition (*) would make 1,000,000,000 characters, over the limit of 1,048,576" in stdout


def test_a_scenario_sets_its_own_limit(tmp_path: Path, demo_url: str) -> None:
    scenario = write(
        tmp_path,
        "host: demo\ntemplates: {max_output: 2MiB}\nusers:\n  u:\n    sequence:\n"
        '      - set: {x: "{{ \'a\' * 2000000 }}"}\n      - get: "/items?n={{ x|length }}"\n',
    )
    result = run_lrun("run", str(scenario), "-H", demo_url, "-i", "1", "--only-summary", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = write(tmp_path, "host: demo\ntemplates: {max_output: lots}\nusers: {u: {sequence: [{get: /}]}}\n", "b.yaml")
    result = run_lrun("validate", str(bad))
    assert result.returncode == 2 and f"{bad}:2:25: 'max_output': 'lots' is not a size" in result.stderr
