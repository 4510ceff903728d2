"""``--metrics-port``: the run's statistics as a Prometheus endpoint (``/metrics``), live during the run.

Nothing is counted twice: a collector reads the run's own statistics when Prometheus scrapes, so a run without
a scrape pays nothing per request. On the master of a distributed run these are the merged statistics of the
whole cluster. Served by gevent's WSGI server in the run's event loop (no thread fighting the hub).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from runner.live.view import LiveView
from runner.outputs.auth import basic_auth
from runner.outputs.phases import prometheus_family
from runner.serving import Server
from runner.stats import StatsEntry

log = logging.getLogger("lrun")

# Response time buckets, seconds: from a fast cache hit to a request that times out.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


_LIMITS_US = [b * 1e6 for b in BUCKETS]
_BOUNDS = [*map(str, BUCKETS), "+Inf"]


def _buckets(counts: dict[int, int], total_ms: float) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets from a histogram's {microseconds: count}, and the sum in seconds."""
    per_bucket = [0] * (len(BUCKETS) + 1)
    for us, count in counts.items():
        per_bucket[bisect_left(_LIMITS_US, us)] += count  # le: a value equal to a limit is in its bucket
    return list(zip(_BOUNDS, accumulate(per_bucket), strict=True)), total_ms / 1000.0


class RunCollector(Collector):
    """Reads a running test's view (``runner.live.view.LiveView``) when scraped."""

    def __init__(self, view: LiveView, extra: Iterable[Callable[[], Iterable[Metric]]] = ()) -> None:
        self.view = view
        self.extra = list(extra)  # more families (remote monitoring)
        self._cache: dict[tuple[str, str, str], tuple[tuple[int, float], Any]] = {}  # unchanged entries' buckets

    def _histogram(self, entry: StatsEntry) -> tuple[list[tuple[str, float]], float]:
        """An entry's buckets, computed again only when it counted requests since the last scrape."""
        h = entry.histogram
        key, seen = (entry.kind, entry.method, entry.name), (h.count, h.total)
        cached = self._cache.get(key)
        if cached is None or cached[0] != seen:
            cached = self._cache[key] = (seen, _buckets(h.counts, h.total))
        return cached[1]

    def collect(self) -> Iterator[Metric]:
        view = self.view
        now = view.now()
        labels = ["method", "name"]
        requests = CounterMetricFamily("lrun_requests", "Requests made, by method and name.", labels=labels)
        failures = CounterMetricFamily("lrun_request_failures", "Failed requests, by method and name.", labels=labels)
        sizes = CounterMetricFamily("lrun_response_bytes", "Bytes of response bodies received.", labels=labels)
        times = HistogramMetricFamily(
            "lrun_response_time_seconds", "Response times, from the request written to the body read.", labels=labels
        )
        for entry in view.requests():
            h = entry.histogram
            key = [entry.method, entry.name]
            requests.add_metric(key, h.count)
            failures.add_metric(key, h.failures)
            sizes.add_metric(key, h.bytes)
            times.add_metric(key, *self._histogram(entry))
        yield from (requests, failures, sizes, times)
        yield prometheus_family(view.requests())

        total = view.total
        yield _gauge("lrun_users", "Virtual users running now.", view.users)
        yield _gauge("lrun_users_target", "Virtual users the load asks for now.", view.target_users)
        yield _gauge("lrun_users_max", "The most virtual users running at once so far.", view.users_max)
        arrivals = view.arrivals()  # the open model
        if arrivals is not None:
            arrived = CounterMetricFamily(
                "lrun_arrivals", "Open model arrivals, planned and started.", labels=["state"]
            )
            arrived.add_metric(["planned"], arrivals.planned)
            arrived.add_metric(["started"], arrivals.started)
            yield arrived
        yield _gauge("lrun_requests_per_second", "Requests per second, over the last seconds.", total.current_rps(now))
        yield _gauge(
            "lrun_failures_per_second", "Failed requests per second, over the last seconds.",
            total.current_failures_per_s(now),
        )  # fmt: skip
        yield _gauge("lrun_run_start_time_seconds", "When the run started (Unix time).", view.started)

        name = ["name"]
        done = CounterMetricFamily("lrun_transactions", "Transactions ended, by name.", labels=name)
        failed = CounterMetricFamily("lrun_transaction_failures", "Failed transactions, by name.", labels=name)
        ttimes = HistogramMetricFamily(
            "lrun_transaction_time_seconds", "Transaction times, think time excluded.", labels=name
        )
        for entry in view.transactions():
            h = entry.histogram
            done.add_metric([entry.name], h.count)
            failed.add_metric([entry.name], h.failures)
            ttimes.add_metric([entry.name], *self._histogram(entry))
        yield from (done, failed, ttimes)

        checks = CounterMetricFamily(
            "lrun_checkpoints", "Checkpoint verdicts, by request, checkpoint and result.",
            labels=["method", "name", "check", "result"],
        )  # fmt: skip
        for row in view.checks():
            checks.add_metric([row.method, row.name, row.check, "passed"], row.passed)
            checks.add_metric([row.method, row.name, row.check, "failed"], row.failed)
        yield checks

        waiting = GaugeMetricFamily("lrun_rendezvous_waiting", "Users waiting at a rendezvous now.", labels=name)
        arrived_at = CounterMetricFamily("lrun_rendezvous_arrivals", "Users arrived at a rendezvous.", labels=name)
        for gate in view.gates():
            waiting.add_metric([gate.name], gate.waiting)
            arrived_at.add_metric([gate.name], gate.arrivals)
        yield from (waiting, arrived_at)

        pool = ["pool"]
        left = GaugeMetricFamily(
            "lrun_pool_rows_left", "Rows of a data pool not handed out yet (cycling pools: in this pass).", labels=pool
        )
        handed = CounterMetricFamily("lrun_pool_rows_handed_out", "Rows a data pool handed out.", labels=pool)
        for data_pool in view.pools():
            left.add_metric([data_pool.name], data_pool.rows_left)
            handed.add_metric([data_pool.name], data_pool.handed_out)
        yield from (left, handed)

        worker_states = view.worker_states()
        if worker_states is not None:
            states = GaugeMetricFamily("lrun_workers", "Workers of the master, by state.", labels=["state"])
            for worker_state, count in worker_states.items():
                states.add_metric([worker_state], count)
            yield states

        resources = view.resources
        for figure, metric, text in (
            ("process_cpu_percent", "lrun_generator_cpu_percent", "lrun's own CPU, in % of one core."),
            ("system_cpu_percent", "lrun_system_cpu_percent", "CPU of lrun's machine, in % of all cores."),
        ):
            if resources.get(figure) is not None:
                yield _gauge(metric, text, resources[figure])
        for extra in self.extra:
            yield from extra()


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class MetricsServer:
    """``/metrics`` on ``host:port`` (port 0: any free port), served in the event loop until ``stop``."""

    def __init__(self, collector: Collector, host: str, port: int, auth: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        app = make_wsgi_app(self.registry)
        self.server = Server((host, port), basic_auth(app, auth) if auth else app, log=None, error_log=log)

    def start(self) -> str:
        self.server.start()
        host, port = self.server.address[:2]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"
        log.info("Prometheus metrics at %s", url)
        return url

    def stop(self) -> None:
        self.server.stop(timeout=1)
