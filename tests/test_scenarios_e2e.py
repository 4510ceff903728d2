"""End to end: pools, rendezvous, transactions, flow control and hooks, proved with the demo target's own counters.

Each test runs the real ``lrun`` against the session's demo target (``-H``) and reads back what the server saw.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import by_name, demo_reset, demo_stats, run_json, write

from conftest import ROOT, SCENARIOS, lrun_command

pytestmark = pytest.mark.e2e


def phones_csv(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "phones.csv"
    path.write_text("phone,name\n" + "".join(f"+3170{i:07d},Person {i}\n" for i in range(rows)))
    return path


def accounts_csv(folder: Path, rows: int, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "username,password\n" + "".join(f"{prefix}{i:03d},secret\n" for i in range(rows))
    (folder / "accounts.csv").write_text(text)


def test_unique_pool_registers_every_phone_exactly_once(tmp_path: Path, demo_url: str) -> None:
    """scenarios/register.yaml with 300 phones: each registered once, no 409, and the empty pool ends the test."""
    demo_reset(demo_url)
    data = tmp_path / "data"
    phones_csv(data, 300)
    result, results = run_json(
        tmp_path, str(SCENARIOS / "register.yaml"), "-H", demo_url, "-u", "20", "-r", "20", "-t", "60s",
        "--data-dir", str(tmp_path), "--stop-timeout", "10s",
    )  # fmt: skip
    registrations = demo_stats(demo_url)["registrations"]
    assert len(registrations) == 300
    assert set(registrations.values()) == {1}  # nobody registered twice: no 409
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ran out of rows" in results["stop_reason"]
    pool = next(p for p in results["pools"] if p["name"] == "phones")
    expected = {"rows": 300, "handed_out": 300, "dry": True, "order": "unique", "source": str(data / "phones.csv")}
    assert pool == {**pool, **expected}
    requests = by_name(results)  # --stop-timeout: the other users finish their iteration, so counts are exact
    assert requests["POST /register"]["requests"] == 300
    assert requests["POST /register"]["failures"] == 0
    assert requests["GET /credit-limit"]["requests"] == 300
    signups = {e["name"]: e for e in results["transactions"]["entries"]}["sign up"]
    assert signups["requests"] == 300 and signups["failures"] == 0


def test_failed_step_stops_the_iteration_not_the_user(tmp_path: Path, demo_url: str) -> None:
    """A phone registered before the run gets 409: that iteration stops (no login), the next one goes on."""
    demo_reset(demo_url)
    phones_csv(tmp_path / "data", 20)
    import urllib.request

    body = b"phone=%2B31700000005&name=early"
    urllib.request.urlopen(urllib.request.Request(f"{demo_url}/register", data=body, method="POST"), timeout=5).close()
    result, results = run_json(
        tmp_path, str(SCENARIOS / "register.yaml"), "-H", demo_url, "-u", "2", "-r", "10", "-t", "60s",
        "--data-dir", str(tmp_path), "--stop-timeout", "10s",
    )  # fmt: skip
    requests = by_name(results)
    assert requests["POST /register"]["requests"] == 20
    assert requests["POST /register"]["failures"] == 1
    assert requests["POST /login"]["requests"] == 19  # the failed iteration stopped before logging in
    signups = {e["name"]: e for e in results["transactions"]["entries"]}["sign up"]
    assert (signups["requests"], signups["failures"]) == (20, 1)
    assert result.returncode == 1  # errors < 1% fails: 1 of 96 requests


def test_rendezvous_releases_fifty_users_together(tmp_path: Path, demo_url: str) -> None:
    """scenarios/flash_sale.yaml: 50 users arrive over ~2 s; their orders reach the server within a moment."""
    demo_reset(demo_url)
    accounts_csv(tmp_path / "data", 100, "flash")
    result, results = run_json(
        tmp_path, str(SCENARIOS / "flash_sale.yaml"), "-H", demo_url, "--data-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    orders = demo_stats(demo_url)["orders"]
    assert len(orders) == 50
    times = sorted(o["time"] for o in orders)
    assert times[-1] - times[0] < 0.5, f"orders spread over {times[-1] - times[0]:.3f}s"
    point = results["rendezvous"][0]
    assert point["name"] == "flash_sale" and point["arrivals"] == 50
    assert [(r["released"], r["reason"]) for r in point["releases"]] == [(50, "policy")]
    assert point["releases"][0]["waited_ms"] > 1000  # the first arrived ~2 s before the last (25 users/s)


def test_rendezvous_timeout_releases_a_partial_group(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
load: {spawn_rate: 100, iterations: 1}
users:
  buyer:
    sequence:
      - rendezvous: sale
        percent: 100        # all users of the test
        timeout: 1s
      - get: /items
""",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "4")
    assert result.returncode == 0, result.stderr
    releases = results["rendezvous"][0]["releases"]
    assert [(r["released"], r["reason"]) for r in releases] == [(4, "policy")]
    # the same with a policy that 4 users cannot meet: the timeout lets the 4 go, 1 s after the last arrived
    path.write_text(path.read_text().replace("percent: 100", "users: 10"))
    start = time.monotonic()
    result, results = run_json(tmp_path, str(path), "-H", demo_url, "-u", "4")
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert "rendezvous 'sale' waits for 10 users, but the load has 4" in result.stderr  # said at run time too
    releases = results["rendezvous"][0]["releases"]
    assert [(r["released"], r["reason"]) for r in releases] == [(4, "timeout")]
    assert 1000 <= releases[0]["waited_ms"] < 3000
    assert by_name(results)["GET /items"]["requests"] == 4
    assert elapsed < 20


def test_no_rendezvous_switch_lets_users_pass(tmp_path: Path, demo_url: str) -> None:
    accounts_csv(tmp_path / "data", 100, "dry")
    start = time.monotonic()
    result, results = run_json(
        tmp_path, str(SCENARIOS / "flash_sale.yaml"), "-H", demo_url, "-u", "5", "--no-rendezvous",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 10  # without the switch, 5 users would wait out the 10 s timeout
    assert results["rendezvous"][0]["releases"] == []
    assert by_name(results)["POST /orders"]["requests"] == 5


def test_transaction_time_is_the_sum_of_its_requests_without_think_time(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
load: {users: 2, spawn_rate: 10, iterations: 3}
users:
  v:
    sequence:
      - transaction: two slow calls
        steps:
          - get: /slow?ms=80
            think: 300ms
          - get: /slow?ms=40
          - think: 200ms
""",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url)
    assert result.returncode == 0, result.stderr
    slow = by_name(results)
    total_requests_ms = slow["GET /slow?ms=80"]["avg_ms"] + slow["GET /slow?ms=40"]["avg_ms"]
    entry = results["transactions"]["entries"][0]
    assert entry["type"] == "transaction" and entry["name"] == "two slow calls" and entry["requests"] == 6
    assert total_requests_ms <= entry["avg_ms"] < total_requests_ms + 25  # a little Python between the steps
    assert entry["think_s"] == pytest.approx(6 * 0.5, abs=0.01)  # reported on its own
    assert results["transactions"]["total"]["rps"] > 0  # transactions per second


def test_transaction_fails_when_a_checkpoint_inside_fails(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
load: {users: 1, iterations: 4}
users:
  v:
    sequence:
      - transaction: checkout
        steps:
          - get: /items
          - get: "/items/{{ iteration }}"
            name: /items/[id]
            check: {jsonpath: $.id, equals: 1}
""",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url)
    entry = results["transactions"]["entries"][0]
    assert (entry["requests"], entry["failures"]) == (4, 3)
    assert "TRANSACTION" not in result.stdout
    assert "Transactions (think time excluded)" in result.stdout


def test_loops_conditions_pacing_setup_and_teardown(tmp_path: Path, demo_url: str) -> None:
    demo_reset(demo_url)
    path = write(
        tmp_path,
        """
host: demo
load: {users: 2, spawn_rate: 10, iterations: 2}
setup:
  - post: /register
    form: {phone: setup-phone, name: fixture}
    extract: {registered: {jsonpath: $.phone}}
teardown:
  - get: "/echo?teardown={{ registered }}"
    name: teardown
users:
  v:
    pacing: 600ms
    sequence:
      - loop: 3
        steps:
          - get: "/items/{{ item }}"
            name: /items/[id]
      - loop: [about, login]
        as: page
        steps:
          - get: "/{{ page }}"
      - if: "iteration == 1"
        then:
          - get: /json
        else:
          - get: /xml
      - get: "/echo?from={{ registered }}"
        name: echo
""",
    )
    start = time.monotonic()
    result, results = run_json(tmp_path, str(path), "-H", demo_url)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    seen = demo_stats(demo_url)["by_path"]
    assert seen["POST /register"] == 1  # setup: once, not per user
    assert seen["GET /items/<id>"] == 2 * 2 * 3
    assert seen["GET /about"] == seen["GET /login"] == 4
    assert seen["GET /json"] == seen["GET /xml"] == 2
    assert seen["GET /echo"] == 4 + 1  # users' echoes, then the teardown's
    requests = by_name(results)
    assert requests["GET teardown"]["failures"] == 0
    assert requests["GET echo"]["requests"] == 4
    assert elapsed > 1.2  # two paced iterations of at least 600 ms each


def test_teardown_runs_after_ctrl_c(tmp_path: Path, demo_url: str) -> None:
    demo_reset(demo_url)
    path = write(
        tmp_path,
        """
host: demo
load: {users: 3, spawn_rate: 10}
teardown:
  - get: /about
users:
  v:
    think: 100ms
    sequence:
      - get: /items
""",
    )
    out = tmp_path / "r.json"
    with subprocess.Popen(
        [*lrun_command(), str(path), "-H", demo_url, "--json", str(out), "--only-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    ) as process:  # fmt: skip
        try:
            # Ctrl-C once the users run (on a loaded machine, a fixed sleep can hit lrun while it imports).
            assert process.stderr is not None
            deadline = time.monotonic() + 60
            while "users running" not in process.stderr.readline() and time.monotonic() < deadline:
                assert process.poll() is None, "lrun exited before its users ran"
            time.sleep(1)
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    results = json.loads(out.read_text())
    assert by_name(results)["GET /about"]["requests"] == 1
    assert demo_stats(demo_url)["by_path"]["GET /about"] == 1


HOOKS = """
import json
from pathlib import Path

EVENTS = Path(__file__).with_name("events.txt")


def on_test_start(env):
    env.variables["greeting"] = "hello"
    EVENTS.write_text("start\\n")


def on_test_stop(env):
    with EVENTS.open("a") as out:
        out.write(f"stop {env.stats.total.num_requests}\\n")


def on_request(user, result):
    if result.name == "boom":
        raise RuntimeError("hook trouble")


def shout(value):
    return str(value).upper()


def order_payload(user, item):
    user.client.get("/items", name="from python")
    return {"item": item, "quantity": 2}


def broken(user):
    return 1 / 0


def order_id(response, variables):
    return response.json().get("order_id")


def quantity_is_two(response, variables):
    return True if response.json().get("quantity") == 2 else f"quantity {response.json().get('quantity')}"
"""


def test_python_module_steps_extractors_checks_filters_and_hooks(tmp_path: Path, demo_url: str) -> None:
    demo_reset(demo_url)
    (tmp_path / "hooks.py").write_text(HOOKS)
    path = write(
        tmp_path,
        """
host: demo
python: hooks.py
load: {users: 1, iterations: 2}
users:
  v:
    on_start:
      - get: /login
        extract: {session: {xpath: "//input[@name='session']/@value"}}
      - post: /login
        form: {user: "py{{ user_id }}", password: secret, session: "{{ session }}"}
        extract: {token: {jsonpath: $.token}}
    sequence:
      - call: order_payload
        args: {item: 3}
        save: payload
      - post: /orders
        headers: {Authorization: "Bearer {{ token }}"}
        json: "{{ payload }}"
        extract: {order: {python: order_id}}
        check: {python: quantity_is_two}
      - get: "/echo?said={{ greeting | shout }}&order={{ order }}"
        name: echo
        check: {contains: HELLO}
      - get: /about
        name: boom
      - call: broken
      - get: /never
""",
    )
    result, results = run_json(tmp_path, str(path), "-H", demo_url)
    output = result.stdout + result.stderr
    requests = by_name(results)
    assert requests["GET from python"]["requests"] == 2  # the client of Python steps reports its requests
    assert requests["POST /orders"]["failures"] == 0
    assert requests["GET echo"]["failures"] == 0
    assert "GET /never" not in requests  # the failing call stopped each iteration (its default on_error)
    (exception,) = results["exceptions"]
    assert exception["count"] == 2
    assert "hooks.py:33 in broken: ZeroDivisionError: division by zero" in exception["message"]
    assert "on_request failed (reported once): hooks.py:20 in on_request: RuntimeError: hook trouble" in output
    assert "Traceback" not in result.stderr
    assert (tmp_path / "events.txt").read_text().splitlines() == ["start", "stop 10"]  # 2 in on_start, 4 per iteration
    assert len(demo_stats(demo_url)["orders"]) == 2


def test_weighted_example_picks_tasks_one_two_three(tmp_path: Path, demo_url: str) -> None:
    result, results = run_json(
        tmp_path, str(SCENARIOS / "weighted.yaml"), "-H", demo_url, "-u", "5", "-r", "100", "--iterations", "300"
    )
    assert result.returncode == 0, result.stderr
    counts = {name: entry["requests"] for name, entry in by_name(results).items()}
    assert sum(counts.values()) == 5 * 300
    for name, share in (("GET /about", 1 / 6), ("GET /items", 2 / 6), ("GET /", 3 / 6)):
        assert abs(counts[name] / 1500 - share) < 0.05, (name, counts)
