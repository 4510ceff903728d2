"""Servers under test on other machines: node_exporter scrapes and Prometheus queries, during the run.

``monitor.hosts: [{name: db, node_exporter: http://db:9100/metrics}]`` scrapes each host's node_exporter every
``monitor.interval`` (1 s): CPU % (all cores; busy = not idle, not iowait), memory used (total minus available),
load (1 min), network (receive and transmit, all interfaces but lo) and disk (read and written) throughput.
``monitor.prometheus: {url, queries: {name: PromQL}}`` evaluates each query on the team's Prometheus as often
(``/api/v1/query``; a vector of several series gives its largest value: the worst one).

An endpoint that is down, slow or answers garbage gives one warning (and one line when it is back); its values
are ``None`` meanwhile: a gap in the series and the charts. It is never fatal. Everything runs in greenlets:
the load never waits for a scrape.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent

from runner.report.model import Remote

log = logging.getLogger("lrun")

MAX_ANSWER = 8 * 2**20  # bytes: a node_exporter page is ~100 KiB, a query answer less
MAX_POINTS = 3600  # like the other series: then every other point goes, and the interval doubles
HOST_KEYS = (
    "cpu_percent",
    "memory_used_bytes",
    "memory_total_bytes",
    "load1",
    "network_rx_bytes_per_s",
    "network_tx_bytes_per_s",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
)


class EndpointError(Exception):
    """Down, slow, or not what was expected: the warning says which."""


def fetch(url: str, timeout: float) -> bytes:
    """The answer of ``url``: within ``timeout`` s for the whole exchange, at most ``MAX_ANSWER`` bytes."""
    try:
        with gevent.Timeout(timeout), urllib.request.urlopen(url, timeout=timeout) as response:
            body = bytes(response.read(MAX_ANSWER + 1))
    except gevent.Timeout:
        raise EndpointError(f"slow (no complete answer in {timeout:g}s)") from None
    except OSError as exc:
        raise EndpointError(f"down ({getattr(exc, 'reason', None) or exc})") from None
    if len(body) > MAX_ANSWER:
        raise EndpointError(f"answers more than {MAX_ANSWER // 2**20} MiB: not a metrics page or query answer")
    return body


# ------------------------------------------------------------------------------------------- node_exporter


@dataclass
class Counters:
    """The cumulative counters of one scrape that rates are made of."""

    t: float
    cpu_busy: float
    cpu_total: float
    net_rx: float
    net_tx: float
    disk_read: float
    disk_write: float


def parse_node_exporter(text: str) -> tuple[dict[str, float | None], Counters | None, float]:
    """(gauges, counters, scrape time) from node_exporter's text exposition; EndpointError when it is not one."""
    from prometheus_client.parser import text_string_to_metric_families

    sums = {"busy": 0.0, "total": 0.0, "rx": 0.0, "tx": 0.0, "read": 0.0, "write": 0.0}
    gauges: dict[str, float | None] = {"memory_used_bytes": None, "memory_total_bytes": None, "load1": None}
    seen_cpu = False
    memory: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == "node_cpu_seconds_total":
                    seen_cpu = True
                    sums["total"] += value
                    if labels.get("mode") not in ("idle", "iowait"):
                        sums["busy"] += value
                elif name in ("node_network_receive_bytes_total", "node_network_transmit_bytes_total"):
                    if labels.get("device") != "lo":
                        sums["rx" if "receive" in name else "tx"] += value
                elif name in ("node_disk_read_bytes_total", "node_disk_written_bytes_total"):
                    sums["read" if "read" in name else "write"] += value
                elif name in ("node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"):
                    memory[name] = value
                elif name == "node_load1":
                    gauges["load1"] = value
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise EndpointError(f"answered something that is not Prometheus metrics ({exc})") from None
    if not seen_cpu and not memory:
        raise EndpointError("answered, but no node_exporter metrics in it (node_cpu_seconds_total, node_memory_*)")
    total = memory.get("node_memory_MemTotal_bytes")
    available = memory.get("node_memory_MemAvailable_bytes")
    if total is not None:
        gauges["memory_total_bytes"] = total
        gauges["memory_used_bytes"] = total - available if available is not None else None
    now = time.monotonic()
    counters = Counters(now, sums["busy"], sums["total"], sums["rx"], sums["tx"], sums["read"], sums["write"])
    return gauges, counters if seen_cpu else None, now


def host_values(
    gauges: dict[str, float | None], now: Counters | None, before: Counters | None
) -> dict[str, float | None]:
    """One sample of a host: the gauges, and rates from two scrapes' counters (None from the first)."""
    values: dict[str, float | None] = {key: None for key in HOST_KEYS}
    values.update(gauges)
    if now is not None and before is not None and now.t > before.t:
        span = now.t - before.t
        cpu_total = now.cpu_total - before.cpu_total
        if cpu_total > 0:
            values["cpu_percent"] = round(max(0.0, min(100.0, (now.cpu_busy - before.cpu_busy) / cpu_total * 100)), 1)

        def rate(a: float, b: float) -> float:
            return round(max(0.0, a - b) / span, 1)  # a counter that went back (a restart) counts as 0

        values["network_rx_bytes_per_s"] = rate(now.net_rx, before.net_rx)
        values["network_tx_bytes_per_s"] = rate(now.net_tx, before.net_tx)
        values["disk_read_bytes_per_s"] = rate(now.disk_read, before.disk_read)
        values["disk_write_bytes_per_s"] = rate(now.disk_write, before.disk_write)
    return values


# -------------------------------------------------------------------------------------- Prometheus queries


def parse_query_answer(body: bytes) -> float | None:
    """The value of an instant query's answer (the largest of a vector; None for an empty one)."""
    try:
        answer = json.loads(body)
        if answer.get("status") != "success":
            why = ": ".join(str(answer[k]) for k in ("errorType", "error") if answer.get(k)) or answer.get("status")
            raise EndpointError(f"the query failed: {why}")
        data = answer["data"]
        if data["resultType"] == "scalar":
            values = [float(data["result"][1])]
        elif data["resultType"] == "vector":
            values = [float(series["value"][1]) for series in data["result"]]
        else:
            raise EndpointError(f"the query gives a {data['resultType']}, not a number: use an instant vector")
    except EndpointError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise EndpointError(f"answered something that is not a Prometheus query result ({exc!r})") from None
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else None


# ------------------------------------------------------------------------------------------------ monitor


@dataclass
class Endpoint:
    kind: str  # "host" or "query"
    name: str
    url: str
    query: str = ""
    failing: str | None = None  # why the last attempt failed
    warned: bool = False
    failures: int = 0
    successes: int = 0
    before: Counters | None = None
    value: Any = None  # host: {key: value}; query: a number
    at: float = 0.0  # monotonic time of the value


@dataclass
class RemoteMonitor:
    """Scrapes every endpoint every ``interval`` seconds; ``current()`` the latest values, ``results()`` all."""

    hosts: list[tuple[str, str]]  # (name, node_exporter URL)
    prometheus_url: str | None = None
    queries: dict[str, str] = field(default_factory=dict)
    interval: float = 1.0
    warn: Callable[[str], None] = log.warning
    endpoints: list[Endpoint] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    stride: float = 0.0
    _greenlet: gevent.Greenlet | None = None

    def __post_init__(self) -> None:
        self.stride = self.interval
        self.endpoints = [Endpoint("host", name, url) for name, url in self.hosts]
        if self.prometheus_url:
            base = self.prometheus_url.rstrip("/")
            for name, query in self.queries.items():
                url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
                self.endpoints.append(Endpoint("query", name, url, query))

    @classmethod
    def from_model(cls, monitor: Any, warn: Callable[[str], None]) -> RemoteMonitor | None:
        if monitor is None or not (monitor.hosts or monitor.prometheus):
            return None
        prometheus = monitor.prometheus
        return cls(
            [(h.name, h.node_exporter) for h in monitor.hosts],
            prometheus.url if prometheus else None,
            dict(prometheus.queries) if prometheus else {},
            monitor.interval,
            warn,
        )

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)

    def _loop(self) -> None:
        due = time.monotonic()
        while True:
            self.scrape_all()
            due += self.interval
            gevent.sleep(max(0.0, due - time.monotonic()))

    def scrape_all(self) -> None:
        """Scrape every endpoint at once (each bounded by the interval), then store one point."""
        timeout = max(0.5, min(self.interval, 5.0))
        jobs = [gevent.spawn(self._scrape, endpoint, timeout) for endpoint in self.endpoints]
        try:
            gevent.joinall(jobs, timeout=timeout + 1)
        finally:  # the run's end kills this loop: no scrape outlives it
            for job in jobs:
                job.kill(block=False)
        self._store()

    def _scrape(self, endpoint: Endpoint, timeout: float) -> None:
        try:
            body = fetch(endpoint.url, timeout)
            if endpoint.kind == "host":
                gauges, counters, _ = parse_node_exporter(body.decode("utf-8", "replace"))
                value: Any = host_values(gauges, counters, endpoint.before)
                endpoint.before = counters
            else:
                value = parse_query_answer(body)
        except EndpointError as exc:
            self._failed(endpoint, str(exc))
            return
        endpoint.value, endpoint.at = value, time.monotonic()
        endpoint.successes += 1
        if endpoint.failing is not None and endpoint.warned:
            log.info("monitor: %s is answering again", self._label(endpoint))
        endpoint.failing = None

    def _failed(self, endpoint: Endpoint, why: str) -> None:
        endpoint.failures += 1
        endpoint.failing = why
        endpoint.value = None
        endpoint.before = None
        if not endpoint.warned:
            endpoint.warned = True
            self.warn(f"monitor: {self._label(endpoint)} {why}; the run goes on, its values show as gaps")

    @staticmethod
    def _label(endpoint: Endpoint) -> str:
        what = "node_exporter of" if endpoint.kind == "host" else "Prometheus query"
        return f"{what} '{endpoint.name}' ({endpoint.url.split('?')[0]})"

    def current(self) -> dict[str, Any]:
        """{"hosts": {name: {key: value}}, "queries": {name: value}}: values older than 3 intervals are None."""
        fresh = time.monotonic() - 3 * self.interval
        hosts: dict[str, Any] = {}
        queries: dict[str, Any] = {}
        for e in self.endpoints:
            value = e.value if e.at >= fresh else None
            if e.kind == "host":
                hosts[e.name] = dict(value) if value else dict.fromkeys(HOST_KEYS)
            else:
                queries[e.name] = value
        return {"hosts": hosts, "queries": queries}

    def progress(self) -> str:
        """For the live console line: each host's CPU and load, each query's value (? while down)."""

        def show(value: float | None, unit: str = "") -> str:
            return "?" if value is None else f"{value:.0f}{unit}" if unit else f"{value:g}"

        now = self.current()
        parts = [
            f"{name} cpu {show(v.get('cpu_percent'), '%')} load {show(v.get('load1'))}"
            for name, v in now["hosts"].items()
        ]
        parts += [f"{name} {show(value)}" for name, value in now["queries"].items()]
        return "  " + "  ".join(parts) if parts else ""

    def _store(self) -> None:
        self.points.append({"t": round(time.time(), 3), **self.current()})
        if len(self.points) > MAX_POINTS:
            self.points = self.points[::2]
            self.stride *= 2

    def peaks(self) -> dict[str, Any]:
        hosts: dict[str, dict[str, float | None]] = {}
        queries: dict[str, float | None] = {}
        for point in self.points:
            for name, values in point["hosts"].items():
                peak = hosts.setdefault(name, dict.fromkeys(HOST_KEYS))
                for key, value in values.items():
                    if value is not None and (peak.get(key) is None or value > peak[key]):
                        peak[key] = value
            for name, value in point["queries"].items():
                if value is not None and (queries.get(name) is None or value > queries[name]):  # type: ignore[operator]
                    queries[name] = value
                queries.setdefault(name, None)
        return {"hosts": hosts, "queries": queries}

    def results_part(self) -> Remote:
        """The ``remote`` part of the results."""
        return Remote.model_validate(self.results())

    def results(self) -> dict[str, Any]:
        """The ``remote`` object of the results."""
        return {
            "interval_s": self.stride,
            "hosts": [self._endpoint_result(e) for e in self.endpoints if e.kind == "host"],
            "queries": [{**self._endpoint_result(e), "query": e.query} for e in self.endpoints if e.kind == "query"],
            "series": list(self.points),
            "peak": self.peaks(),
        }

    @staticmethod
    def _endpoint_result(e: Endpoint) -> dict[str, Any]:
        url = e.url.split("?")[0]
        return {"name": e.name, "url": url, "scrapes": e.successes, "failures": e.failures, "last_error": e.failing}

    def families(self) -> Iterator[Any]:
        """The latest values as Prometheus metric families (for ``--metrics-port``)."""
        from prometheus_client.core import GaugeMetricFamily

        now = self.current()
        texts = {
            "cpu_percent": "CPU of a monitored host, in % of all its cores.",
            "memory_used_bytes": "Memory used on a monitored host (total minus available).",
            "load1": "Load average (1 min) of a monitored host.",
            "network_rx_bytes_per_s": "Bytes per second a monitored host receives.",
            "network_tx_bytes_per_s": "Bytes per second a monitored host sends.",
            "disk_read_bytes_per_s": "Bytes per second a monitored host reads from disk.",
            "disk_write_bytes_per_s": "Bytes per second a monitored host writes to disk.",
        }
        for key, text in texts.items():
            family = GaugeMetricFamily(f"lrun_host_{key}", text, labels=["host"])
            for name, values in now["hosts"].items():
                if values.get(key) is not None:
                    family.add_metric([name], values[key])
            yield family
        query = GaugeMetricFamily("lrun_monitor_query", "The value of a monitor.prometheus query.", labels=["query"])
        for name, value in now["queries"].items():
            if value is not None:
                query.add_metric([name], value)
        yield query
