"""lrun as a library: run scenarios/quickstart.yaml in this process for a few seconds and print what it did.

    python examples/python_api.py [HOST]     HOST: a target URL (default: the scenario's own, the demo target)

The last line printed is the total number of requests made.
"""

from gevent import monkey

monkey.patch_all()  # lrun's users are greenlets: patch first, before other imports

import io  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import runner  # noqa: E402

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.yaml"


def main() -> int:
    # three seconds of load; then each user finishes its iteration (no request is cut off)
    options = {"users": 5, "spawn_rate": 5, "run_time": "3s", "stop_timeout": "10s"}
    if len(sys.argv) > 1:
        options["host"] = sys.argv[1]
    try:
        scenario = runner.load(SCENARIO)
        settings = runner.settings(scenario, **options)
    except runner.LrunError as exc:
        print(exc, file=sys.stderr)
        return 2

    events = runner.Events()
    seen = {"requests": 0, "failures": 0}
    spawned: list[int] = []

    @events.request.add_listener
    def on_request(user, result) -> None:  # every request (or timed call) of this process, as it ends
        seen["requests"] += 1
        seen["failures"] += result.failure is not None

    events.spawn.add_listener(spawned.append)  # the user count, once all users are started
    events.stop.add_listener(lambda results: print(f"stopped: {results.stop_reason}"))

    outcome = runner.run(scenario, settings, events=events, out=io.StringIO())  # the console summary, kept quiet
    total = outcome.results["total"]
    print(f"users spawned: {spawned}")
    print(f"request listener: {seen['requests']} requests, {seen['failures']} failed")
    print(f"exit code {outcome.exit_code}, {total['failures']} failures, p95 {total['percentiles'].get('95')} ms")
    print(total["requests"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
