"""``lrun init``: a starter project a new user edits instead of a blank page — a scenario against the demo shop
with the schema line editors use for completion, a data pool's CSV, and a CI workflow that gates on thresholds."""

from __future__ import annotations

from pathlib import Path

SCENARIO = """\
# yaml-language-server: $schema=lrun.schema.json
#
# A starter scenario: shoppers log in as the accounts of data/users.csv, browse the items and open one.
# It runs against lrun's built-in demo shop (host: demo). Point host at your system (-H overrides it), then:
#   lrun validate scenario.yaml      every mistake at file:line:col, without sending anything
#   lrun debug scenario.yaml         one iteration: every request, saved value and checkpoint
#   lrun scenario.yaml --html report.html
# Every key, with its meaning: lrun's manual (docs/reference/scenario.md), or your editor's completion.
name: starter
host: demo
load: {users: 10, spawn_rate: 5, run_time: 30s}     # -u, -r, -t override these

thresholds:                        # the SLA: a failed threshold makes lrun exit 1 (a failed CI job)
  - p95 < 500ms
  - errors < 1%

pools:
  account:                         # read as {{ account.username }}, {{ account.password }}
    csv: data/users.csv
    order: unique                  # no two users hold the same account at once
    update: once                   # a user keeps its account for its whole life

users:
  shopper:
    think: {between: [1, 3]}       # seconds between requests, as a person reads
    on_start:
      - get: /login
        extract:                                     # the login form's hidden session value
          session: {xpath: "//input[@name='session']/@value"}
      - post: /login
        form: {user: "{{ account.username }}", password: "{{ account.password }}", session: "{{ session }}"}
        extract:
          token: {jsonpath: $.token}                 # correlation: save a value of the response
        check: {jsonpath: $.status, equals: ok, on_fail: stop_user}   # a failed login stops the user
    sequence:
      - get: /items
        extract:
          item_id: {jsonpath: "$.items[*].id", match: random}
      - get: "/items/{{ item_id }}"
        name: /items/[id]                            # one line in the statistics for every id
        headers: {Authorization: "Bearer {{ token }}"}
        check: {jsonpath: $.id, equals: "{{ item_id }}"}
"""

USERS = "username,password\n" + "".join(f"user{n:03d},secret\n" for n in range(1, 21))

CI = """\
# A CI job that gates on the scenario's thresholds (GitHub Actions: copy to .github/workflows/load-test.yml).
# lrun exits 1 when a threshold fails, 2 when the scenario is invalid: either fails the job.
name: load test
on: [push, pull_request]
jobs:
  load-test:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - name: Install lrun
        run: python -m pip install ./lrun   # a checkout of lrun's repository (a submodule, say): it is not on PyPI
      - name: Validate
        run: lrun validate scenario.yaml
      # Start the system under test here and point -H at it; host: demo starts lrun's demo shop.
      - name: Load test
        run: lrun scenario.yaml -t 1m --only-summary --json results.json --html report.html --junit junit.xml
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: load-test-report
          path: |
            report.html
            results.json
            junit.xml
"""


def files() -> dict[str, str]:
    """The starter's files by path, relative to the directory they go to."""
    from runner.scenario.schema import schema_text

    return {
        "scenario.yaml": SCENARIO,
        "data/users.csv": USERS,
        "lrun.schema.json": schema_text(),
        "ci/github-actions.yml": CI,
    }


def existing(directory: Path) -> list[Path]:
    return [directory / name for name in files() if (directory / name).exists()]


def write(directory: Path) -> list[Path]:
    """Write the starter into ``directory`` (made if missing); the paths written."""
    written = []
    for name, text in files().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
