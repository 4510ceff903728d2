"""GraphQL steps: real lrun runs against the demo target's /graphql (counts compared with the server's own), a
200 with errors as a failure with their messages, GET and POST."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import by_name, demo_reset, demo_stats, run_json, write

from conftest import ROOT, run_lrun

pytestmark = pytest.mark.e2e

SHOP = """
host: {host}
load: {{users: 2, iterations: 3}}
users:
  shopper:
    sequence:
      - graphql: /graphql
        query: "query Item($id: Int!) {{ item(id: $id) {{ id price }} }}"
        variables: {{id: "{{{{ iteration }}}}"}}
        method: {method}
        extract:
          price: {{jsonpath: $.data.item.price}}
      - graphql: /graphql
        query: "mutation {{ order(item: 1, quantity: 3) {{ id total }} }}"
        operation: Buy
        check: {{jsonpath: $.data.order.total, equals: 28.5}}
      - graphql: /graphql
        query: "query Broken {{ item(id: 1) {{ colour }} }}"
"""


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_operations_counted_as_the_server_counts_them_and_errors_fail(
    tmp_path: Path, demo_url: str, method: str
) -> None:
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(write(tmp_path, SHOP.format(host=demo_url, method=method))))
    assert result.returncode == 1, result.stdout + result.stderr  # the Broken operation fails
    entries = by_name(results)
    server = demo_stats(demo_url)["graphql"]
    assert entries["GRAPHQL Item"]["requests"] == server["operations"]["Item"] == 6
    assert entries["GRAPHQL Buy"]["requests"] == server["operations"]["Buy"] == 6
    assert entries["GRAPHQL Item"]["failures"] == entries["GRAPHQL Buy"]["failures"] == 0
    assert entries["GRAPHQL Broken"]["failures"] == server["errors"] == 6
    messages = {e["message"] for e in results["errors"]}
    assert messages == {"GraphQL errors: Cannot query field 'colour' on type 'Item'"}
    http = {k: v for k, v in demo_stats(demo_url)["by_path"].items() if "/graphql" in k}
    expected = {"POST /graphql": 12}  # the mutation and the broken query; the Item query by the method asked for
    expected[f"{method} /graphql"] = expected.get(f"{method} /graphql", 0) + 6
    assert http == expected


def test_debug_and_the_example_scenario(tmp_path: Path) -> None:
    example = ROOT / "scenarios" / "graphql.yaml"
    result = run_lrun("debug", str(example), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[Order]" in result.stdout and "ok   no GraphQL errors" in result.stdout
    assert "saved price = " in result.stdout
    result, results = run_json(tmp_path, str(example), "-t", "3s", "-u", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert by_name(results)["GRAPHQL Order"]["failures"] == 0


def test_the_guides_examples_validate(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "how-to" / "graphql.md").read_text(), re.DOTALL)
    assert blocks
    for index, block in enumerate(blocks):
        result = run_lrun("validate", str(write(tmp_path, block, f"example{index}.yaml")))
        assert result.returncode == 0, result.stdout + result.stderr
