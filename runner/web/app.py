"""The WSGI application of the web UI: the page, its JSON API, one server-sent event stream, Locust's REST API.

Locust's endpoints (``POST /swarm``, ``GET /stop``, ``GET /stats/reset``, ``GET /stats/requests``,
``GET /stats/requests/csv``, ``GET /stats/failures/csv``, ``GET /stats/report``) answer as Locust's do, so
scripts carry over. The page's own: ``GET /api/state`` (scenario and snapshot), ``GET /api/events`` (the
snapshot once a second, built once for every open page), ``GET /api/series?key=…`` (one chart line),
``GET /api/runs/ID/{results.json,report.html,stats.csv,failures.csv}`` (a test of the history).

A bad value is a 400 with ``{"success": false, "message": …, "errors": {field: message}}``; the UI stays up.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qs

import gevent
from gevent.event import Event
from gevent.queue import Full, Queue

from runner.errors import LrunError
from runner.report.csv import failure_rows, stats_rows
from runner.report.html import render_html
from runner.report.model import Results
from runner.report.results import iso_time
from runner.web import view
from runner.web.control import Controller, FormError
from runner.web.security import Guard

log = logging.getLogger("lrun")

StartResponse = Callable[..., Any]
T = TypeVar("T")
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
STATE_CHANGING_GETS = ("/stop", "/stats/reset")
MAX_BODY = 64 * 1024
RUN_ID = re.compile(r"[0-9]{1,9}", re.ASCII)  # a test's number in /api/runs/ID/…: anything else is not found
EVENT_EVERY = 1.0  # seconds between snapshots pushed to the pages
MAX_CLIENTS = 50
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"


def _off_loop(work: Callable[[], T]) -> T:
    """Run CPU-heavy ``work`` (an hour's HTML report, its JSON) in a thread: the event loop, so /stop and the
    other pages, keeps answering meanwhile (the GIL is handed over every few milliseconds)."""
    return gevent.get_hub().threadpool.apply(work)  # type: ignore[no-any-return]


def _static(name: str) -> bytes:
    return resources.files("runner.web").joinpath("static", name).read_bytes()


class Broadcast:
    """Builds the snapshot once per EVENT_EVERY (or at once after a change) and hands it to every stream."""

    def __init__(self, controller: Controller, log_tail: view.LogTail | None) -> None:
        self.controller = controller
        self.log_tail = log_tail
        self.clients: set[Queue] = set()
        self._greenlet: gevent.Greenlet | None = None
        self._wake = Event()
        self.last: bytes = b""
        self.sent = 0  # snapshots pushed, and the CPU seconds they took to build and queue
        self.cpu_s = 0.0

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)
        self.controller.on_change = self._wake.set

    def stop(self) -> None:
        if self.sent:
            log.info(
                "web UI: %d snapshots pushed, %.2f ms of CPU each to build and queue",
                self.sent,
                self.cpu_s / self.sent * 1000,
            )
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        for queue in list(self.clients):  # end every stream now, not at the server's stop timeout
            with contextlib.suppress(Full):
                queue.put_nowait(None)

    def event(self) -> bytes:
        payload = json.dumps(view.snapshot(self.controller, self.log_tail), separators=(",", ":"), allow_nan=False)
        return b"event: snapshot\ndata: " + payload.encode() + b"\n\n"

    def _loop(self) -> None:
        while True:
            self._wake.wait(EVENT_EVERY)
            self._wake.clear()
            if not self.clients:
                continue
            began = time.process_time()
            try:
                self.last = self.event()
            except Exception:
                log.exception("web UI: cannot build the snapshot")
                continue
            for queue in list(self.clients):
                try:
                    queue.put_nowait(self.last)
                except Full:  # a page that does not read: drop it rather than hold its backlog
                    self.clients.discard(queue)
                    queue.put(None)
            self.sent += 1
            self.cpu_s += time.process_time() - began

    def stream(self) -> Iterator[bytes]:
        queue: Queue = Queue(maxsize=30)
        self.clients.add(queue)
        try:
            yield b"retry: 2000\n\n" + self.event()
            while True:
                chunk = queue.get()
                if chunk is None:
                    return
                yield chunk
        finally:
            self.clients.discard(queue)


class WebApp:
    """``WebApp(controller, guard)(environ, start_response)``: see the module docstring."""

    def __init__(self, controller: Controller, guard: Guard, log_tail: view.LogTail | None = None) -> None:
        self.controller = controller
        self.guard = guard
        self.log_tail = log_tail
        self.broadcast = Broadcast(controller, log_tail)
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any]], tuple[str, list[tuple[str, str]], Any]]] = {
            ("GET", "/"): self.page,
            ("GET", "/favicon.ico"): lambda environ: ("204 No Content", [], b""),
            ("GET", "/api/state"): self.state,
            ("GET", "/api/events"): self.events,
            ("GET", "/api/series"): self.series,
            ("POST", "/swarm"): self.swarm,
            ("GET", "/stop"): self.stop,
            ("POST", "/stop"): self.stop,
            ("GET", "/stats/reset"): self.reset,
            ("POST", "/stats/reset"): self.reset,
            ("GET", "/stats/requests"): self.requests_json,
            ("GET", "/stats/requests/csv"): self.stats_csv,
            ("GET", "/stats/failures/csv"): self.failures_csv,
            ("GET", "/stats/report"): self.report,
        }

    # ------------------------------------------------------------------------------------------- plumbing

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/") or "/"
        changes = method not in ("GET", "HEAD") or path in STATE_CHANGING_GETS
        refused = self.guard.check(environ, changes_state=changes)
        if refused is not None:
            status, message = refused
            headers = [("WWW-Authenticate", 'Basic realm="lrun", charset="UTF-8"')] if status.startswith("401") else []
            if status.startswith("429"):
                address = str(environ.get("REMOTE_ADDR", ""))
                headers.append(("Retry-After", str(max(1, math.ceil(self.guard.throttle.wait(address))))))
            return self._send(start_response, *self._json({"success": False, "message": message}, status), headers)
        try:
            if method == "HEAD":
                method = "GET"
            handler = self.routes.get((method, path))
            if handler is None and method == "GET" and path.startswith("/static/"):
                handler = self.static
            elif handler is None and method == "GET" and path.startswith("/api/runs/"):
                handler = self.run_file
            if handler is None:
                allowed = sorted({m for m, p in self.routes if p == path})
                if allowed:
                    return self._send(
                        start_response,
                        *self._json(
                            {"success": False, "message": f"use {' or '.join(allowed)}"}, "405 Method Not Allowed"
                        ),
                        [("Allow", ", ".join(allowed))],
                    )
                return self._send(
                    start_response, *self._json({"success": False, "message": "not found"}, "404 Not Found")
                )
            return self._send(start_response, *handler(environ))
        except FormError as exc:
            body = {"success": False, "message": str(exc), "errors": exc.errors}
            return self._send(start_response, *self._json(body, "400 Bad Request"))
        except LrunError as exc:
            return self._send(start_response, *self._json({"success": False, "message": str(exc)}, "400 Bad Request"))

    def _send(
        self,
        start_response: StartResponse,
        status: str,
        headers: list[tuple[str, str]],
        body: Any,
        extra: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        headers = [*headers, *SECURITY_HEADERS, *(extra or [])]
        if isinstance(body, bytes):
            headers.append(("Content-Length", str(len(body))))
            start_response(status, headers)
            return [body]
        start_response(status, headers)
        return body

    @staticmethod
    def _json(data: Any, status: str = "200 OK") -> tuple[str, list[tuple[str, str]], bytes]:
        body = json.dumps(data, allow_nan=False, default=str).encode()
        return status, [("Content-Type", "application/json")], body

    @staticmethod
    def _form(environ: dict[str, Any]) -> dict[str, str]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            raise FormError({"form": f"the request body is larger than {MAX_BODY} bytes"})
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        kind = str(environ.get("CONTENT_TYPE", ""))
        try:
            if kind.startswith("application/json"):
                data = json.loads(raw or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("not an object")
                return {str(k): "" if v is None else str(v) for k, v in data.items()}
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FormError({"form": f"cannot read the request body: {exc}"}) from None
        return {k: v[-1] for k, v in parsed.items()}

    @staticmethod
    def _query(environ: dict[str, Any]) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}

    @staticmethod
    def _csv(rows: list[Any], filename: str) -> tuple[str, list[tuple[str, str]], bytes]:
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        headers = [
            ("Content-Type", "text/csv; charset=utf-8"),
            ("Content-Disposition", f'attachment; filename="{filename}"'),
        ]
        return "200 OK", headers, out.getvalue().encode()

    def _stamp(self) -> str:
        return iso_time(time.time())[:19].replace(":", "").replace("-", "")

    # ------------------------------------------------------------------------------------------- the page

    def page(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        return (
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Security-Policy", CSP)],
            _static("index.html"),
        )

    def static(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        name = environ["PATH_INFO"][len("/static/") :]
        if name not in STATIC:
            return self._json({"success": False, "message": "not found"}, "404 Not Found")
        return "200 OK", [("Content-Type", STATIC[name])], _static(name)

    def state(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        c = self.controller
        return self._json(
            {
                "scenario": c.loaded.name,
                "scenario_file": str(c.loaded.path),
                "user_types": c.user_types(),
                "defaults": c.defaults(),
                "thresholds": [t.expect for t in c.loaded.model.thresholds],
                "distributed": bool(c.backend.lag),
                "snapshot": view.snapshot(c, self.log_tail),
            }
        )

    def events(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        if len(self.broadcast.clients) >= MAX_CLIENTS:
            status, json_headers, body = self._json({"success": False, "message": "too many pages"}, "503 Busy")
            return status, json_headers, [body]
        headers = [("Content-Type", "text/event-stream"), ("X-Accel-Buffering", "no")]
        return "200 OK", headers, self.broadcast.stream()

    def series(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        key = self._query(environ).get("key", "total")
        points = view.series(self.controller, key)
        if points is None:
            return self._json({"success": False, "message": f"no statistics row {key!r}"}, "404 Not Found")
        return self._json({"key": key, "columns": list(view.COLUMNS), "points": points})

    # ------------------------------------------------------------------------------------------- acting

    def swarm(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """Locust's: start a test; while one runs, change its users (and spawn rate)."""
        form = self._form(environ)
        c = self.controller
        if c.running:
            values = c.parse_form(form, starting=False)
            c.set_users(values["users"], values["spawn_rate"])
            return self._json({"success": True, "message": f"users set to {values['users']}", "run": c.current.id})  # type: ignore[union-attr]
        run = c.start(form)
        return self._json(
            {
                "success": True,
                "message": "Swarming started",
                "host": run.settings.host or c.loaded.model.host or "",
                "run": run.id,
            }
        )

    def stop(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        stopped = self.controller.stop()
        return self._json({"success": True, "message": "Test stopped" if stopped else "no test was running"})

    def reset(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        self.controller.reset_stats()
        return self._json({"success": True, "message": "statistics reset"})

    # ------------------------------------------------------------------------------------------- data

    def requests_json(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        return self._json(view.locust_stats(self.controller, view.snapshot(self.controller)))

    def _results(self, run_id: int | None = None) -> Results:
        c = self.controller
        run = c.get(run_id) if run_id is not None else c.current
        results = c.results(run) if run is not None else None
        if results is None:
            raise FormError({"run": "no test has run yet" if run_id is None else f"no test {run_id} in the history"})
        return results

    def stats_csv(self, environ: dict[str, Any], run_id: int | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        return self._csv(stats_rows(self._results(run_id)), f"lrun_stats_{self._stamp()}.csv")

    def failures_csv(
        self, environ: dict[str, Any], run_id: int | None = None
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        return self._csv(failure_rows(self._results(run_id)), f"lrun_failures_{self._stamp()}.csv")

    def report(self, environ: dict[str, Any], run_id: int | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        results = self._results(run_id)  # built here: live statistics change on the loop
        html = _off_loop(lambda: render_html(results).encode())
        headers = [("Content-Type", "text/html; charset=utf-8")]
        if self._query(environ).get("download") or run_id is not None:
            headers.append(("Content-Disposition", f'attachment; filename="lrun_report_{self._stamp()}.html"'))
        return "200 OK", headers, html

    def results_json(
        self, environ: dict[str, Any], run_id: int | None = None
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        results = self._results(run_id)
        status, headers, body = _off_loop(lambda: self._json(results.to_dict()))
        return status, [*headers, ("Content-Disposition", f'attachment; filename="lrun_results_{run_id}.json"')], body

    def run_file(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        parts = environ["PATH_INFO"].split("/")  # "", "api", "runs", ID, FILE
        files = {
            "results.json": self.results_json,
            "report.html": self.report,
            "stats.csv": self.stats_csv,
            "failures.csv": self.failures_csv,
        }
        if len(parts) != 5 or not RUN_ID.fullmatch(parts[3]) or parts[4] not in files:
            return self._json({"success": False, "message": "not found"}, "404 Not Found")
        return files[parts[4]](environ, int(parts[3]))
