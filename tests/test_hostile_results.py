"""``lrun report`` on hostile results files: one line naming the file and the problem, exit 2, never a traceback
or a hang; and a seeded fuzz of real results files through the report, the comparison and JUnit."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from report_data import full_results

from conftest import run_lrun
from runner.errors import LrunError
from runner.report.html import write_html
from runner.report.junit import write_junit
from runner.report.results import read_json

STORED = Path(__file__).parent / "data" / "results"


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    return full_results(60).to_dict()


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]}
    return value


def _hostile_files(real: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """name -> (file text, what the one line says)."""

    def with_(change: Any) -> str:
        data = json.loads(json.dumps(real))
        change(data)
        return json.dumps(data)

    text = json.dumps(real)
    return {
        "huge_int": (with_(lambda d: d["total"].update(requests=10**4000)), "number of 4001 digits is out of range"),
        "far_t": (with_(lambda d: d["series"][3].update(t=1e300)), "the number 1e+300 is out of range"),
        "epoch_t": (with_(lambda d: d["series"][3].update(t=1e15)), "series.3.t: Value error, out of range: a time"),
        "nested": ('{"format": "lrun-results", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than"),
        "nested_shallow": (with_(lambda d: d.update(extra=_nested(40))), "nested more than 32 levels deep"),
        "nan": (text.replace('"failure_ratio": 0.0', '"failure_ratio": NaN', 1), "NaN is not a number results hold"),
        "infinity": (text.replace('"rps": ', '"rps": -Infinity, "x": ', 1), "-Infinity is not a number results hold"),
        "overflow": (text.replace('"rps": ', '"rps": 1e400, "x": ', 1), "the number 1e400 is out of range"),
        "digits": (text.replace('"users_max": ', '"users_max": ' + "9" * 5000 + ', "x": ', 1), "out of range"),
        "wrong_type": (with_(lambda d: d.update(series="lots")), "series: Input should be a valid list"),
        "huge_array": (with_(lambda d: d.update(extra=[0] * 4_000_001)), "more than 4,000,000 values"),
    }


def test_each_hostile_file_is_one_line_and_exit_2(tmp_path: Path, real: dict[str, Any]) -> None:
    for name, (text, says) in _hostile_files(real).items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        started = time.monotonic()
        with pytest.raises(LrunError) as refused:
            read_json(path)
        assert says in str(refused.value) and str(refused.value).startswith(f"{path}: "), (name, str(refused.value))
        assert "\n" not in str(refused.value)
        assert time.monotonic() - started < 20, name
    good = tmp_path / "good.json"
    good.write_text(json.dumps(real))
    for name in ("huge_int", "far_t", "nested"):  # the command: one line on stderr, exit 2, report and comparison
        for files in ([str(tmp_path / f"{name}.json")], [str(good), str(tmp_path / f"{name}.json")]):
            done = run_lrun("report", *files, "-o", str(tmp_path / "r.html"))
            assert done.returncode == 2, done.stderr
            assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"lrun: {files[-1]}: "), done.stderr


HOSTILE: list[Any] = [
    10**4000, 2**63, -(2**63), 1e300, -1e300, 1e15, -1, 0, 0.5, "", "x" * 5000, "=1+2", "\ud800", None, True, [], {},
    [1, 2, 3], {"a": 1}, {"t": 1e15}, [{"t": -5}], "2024-13-45T99:99:99Z", float("nan"), float("inf"),
]  # fmt: skip


def _places(data: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found.append((data, key))
        _places(value, found)
    return found


ODD_NUMBERS = [
    0,
    -1,
    -1e17,
    1e17,
    1e-300,
    0.1,
    99999999999,
    1e11,
    2**53 + 1,
    -0.0,
    10**4000,
    1e300,
    -1e300,
    float("nan"),
]
ODD_STRINGS = ["", "=1+2", "x" * 5000, "\ud800", "<script>alert(1)</script>", "\u202e", "9" * 100, "NaN", "\n\r"]


def _odd_like(value: Any, rng: random.Random) -> Any:
    """A value of the same JSON type, at its edges."""
    if isinstance(value, bool) or value is None:
        return rng.choice([True, False, None])
    if isinstance(value, int | float):
        return rng.choice(ODD_NUMBERS)
    if isinstance(value, str):
        return rng.choice(ODD_STRINGS)
    if isinstance(value, list):
        return rng.choice([[], value * 3, value[:1]])
    return rng.choice([{}, {**value, "x": value}])


def mutant(real: dict[str, Any], rng: random.Random) -> str:
    data = json.loads(json.dumps(real))
    places = _places(data, [])
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(places)
        roll = rng.random()
        try:
            if roll < 0.1 and isinstance(container, dict):
                del container[key]
            elif roll < 0.15:
                container[key] = _nested(rng.randint(5, 60))
            elif roll < 0.4:
                container[key] = rng.choice(HOSTILE)
            else:
                container[key] = _odd_like(container[key], rng)
        except (KeyError, IndexError):
            pass
    return json.dumps(data, ensure_ascii=rng.random() < 0.5)


def test_fuzz_of_real_results_files_through_report_comparison_and_junit(tmp_path: Path, real: dict[str, Any]) -> None:
    rng = random.Random(28)
    stored = [json.loads((STORED / name).read_text()) for name in ("v1_full.json", "v1_run.json")]  # written by lrun
    base = tmp_path / "base.json"
    base.write_text(json.dumps(real))
    baseline = read_json(base)
    read, refused, slowest = 0, 0, 0.0
    for i in range(120):
        path = tmp_path / f"m{i}.json"
        path.write_text(mutant(rng.choice([real, *stored]), rng), encoding="utf-8", errors="surrogatepass")
        if i < 6:  # a sample through the command itself: a report and a comparison
            done = run_lrun("report", str(base), str(path), "-o", str(tmp_path / "cmp.html"))
            assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
            assert done.stderr.count("\n") <= 1, done.stderr
        started = time.monotonic()
        try:
            results = read_json(path)
            write_html(results, tmp_path / "r.html")
            write_html([baseline, results], tmp_path / "c.html", labels=["base", "mutant"])
            write_junit(results, tmp_path / "r.xml")
            read += 1
        except LrunError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
            refused += 1
        slowest = max(slowest, time.monotonic() - started)
    assert read > 20 and refused > 20, (read, refused)  # both kinds were exercised
    print(f"fuzz: {read} rendered, {refused} refused, slowest {slowest:.2f} s")
    assert slowest < 10, slowest


def test_a_results_file_cut_anywhere_is_said_to_be_truncated(tmp_path: Path) -> None:
    """A run killed while writing leaves the start of the file: wherever the cut falls (inside a number, a key,
    a string, between items), the message says truncated, not a JSON parser's 'Expecting ',' delimiter'."""
    text = json.dumps(full_results(5).to_dict(), indent=2)  # as lrun writes it
    cut = tmp_path / "cut.json"
    for end in range(1, len(text) - 1, max(1, len(text) // 2000)):
        if not text[:end].strip():
            continue
        cut.write_text(text[:end])
        with pytest.raises(LrunError) as caught:
            read_json(str(cut))
        assert "truncated: the JSON ends early" in str(caught.value), (end, text[max(0, end - 20) : end])
    cut.write_text(text.replace('"total"', '"total" 1', 1))  # whole but broken: not called truncated
    with pytest.raises(LrunError, match="not JSON"):
        read_json(str(cut))
