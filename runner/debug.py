"""``lrun debug``: one user of each type through one iteration, every step printed.

The first thing a tester runs while writing a scenario: the request line, status and time of each request,
the value each extractor saved, each checkpoint's verdict, and why a step failed.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from runner.engine.calls import RequestResult
from runner.engine.flow import FlowSignal, StopTest
from runner.engine.state import RunState
from runner.engine.user import Transaction, VirtualUser
from runner.http.response import Response
from runner.scenario.limits import PHASES
from runner.scenario.scripting import ScriptError


def _short(value: Any, limit: int = 100) -> str:
    """A value as JSON (strings quoted, numbers and lists as they are), cut to ``limit`` characters."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} kB"


@dataclass
class TraceRuntime:
    """A ``Runtime`` that prints every step as it happens."""

    echo: Callable[[str], None] = click.echo
    think: bool = False
    show_body: bool = False
    color: bool | None = None
    trace: bool = field(default=True, init=False)
    requests: int = 0
    failures: int = 0
    errors: int = 0

    def _style(self, text: str, **kw: Any) -> str:
        return click.style(text, **kw) if self.color is not False else text

    def on_response(self, user: VirtualUser, method: str, name: str, response: Response, failure: str | None) -> None:
        self.on_request(user, RequestResult.of(method, name, response, failure))

    def on_request(self, user: VirtualUser, result: RequestResult) -> None:
        self.requests += 1
        ok = result.failure is None
        reason = result.response.reason if result.response is not None else ""  # a gRPC call's: OK, NOT_FOUND …
        status = self._style(str(result.status or reason or "---"), fg="green" if ok else "red", bold=True)
        host = user.host.replace("http", "ws", 1) if result.url.startswith("ws") else user.host  # ws:// on the host
        url = result.url.removeprefix(host) if host and result.url.startswith(host) else result.url
        line = f"  {result.method} {url or '/'} -> {status}  {result.elapsed_ms:.1f} ms  {_size(result.size)}"
        if result.http2:
            line += "  HTTP/2"
        if result.name != url:
            line += self._style(f"  [{result.name}]", dim=True)
        self.echo(line)
        if result.timings is not None:  # where its time went; a kept-alive connection's 0 dns/connect/tls left out
            spent = " · ".join(
                f"{p} {ms:.1f}" for p, ms in zip(PHASES, result.timings, strict=True) if ms or p == "ttfb"
            )
            self.echo(self._style(f"      time: {spent} ms", dim=True))
        for variable, value in (result.trace_extracted or {}).items():
            self.echo(f"      saved {variable} = {_short(value)}")
        for message in result.trace_warnings or []:
            self.echo(self._style(f"      warning: {message}", fg="yellow"))
        for description, message in result.trace_checks or []:  # type: ignore[assignment]
            if message is None:
                self.echo(f"      {self._style('ok  ', fg='green')} {description}")
            else:
                self.echo(f"      {self._style('FAIL', fg='red', bold=True)} {description}: {message}")
        if result.failure is not None:
            self.failures += 1
            self.echo(self._style(f"      request failed: {result.failure}", fg="red"))
        response = result.response
        if response is not None and (self.show_body or not ok) and response.body:
            self.echo(self._style(f"      body: {_short(response.text, 300)}", dim=True))

    def on_think(self, user: VirtualUser, seconds: float) -> None:
        self.echo(f"  think {seconds:.2f}s" + ("" if self.think else " (skipped; --think to wait)"))

    def on_warning(self, user: VirtualUser, message: str) -> None:
        pass  # printed with its request

    def on_transaction(self, user: VirtualUser, transaction: Transaction, failure: str | None) -> None:
        ms = transaction.elapsed_ms(time.perf_counter())
        verdict = self._style("ok", fg="green") if failure is None else self._style(f"FAILED: {failure}", fg="red")
        think = f", {transaction.think:.2f}s think excluded" if transaction.think else ""
        self.echo(f"  transaction {transaction.name}: {ms:.1f} ms{think}  {verdict}")

    def on_error(self, user: VirtualUser, error: BaseException) -> None:
        self.errors += 1
        self.echo(self._style(f"  error in {user.type_name}: {type(error).__name__}: {error}", fg="red"))
        if not isinstance(error, ScriptError):  # a template or a value in the scenario: the line says it all
            return
        frames = traceback.format_exception(type(error), error, error.__traceback__, limit=-3)
        for line in "".join(frames).rstrip().splitlines():
            self.echo(self._style(f"      {line}", dim=True))


def debug_users(
    classes: list[type[VirtualUser]],
    runtime: TraceRuntime,
    setup: type[VirtualUser] | None = None,
    variables: dict[str, Any] | None = None,
) -> bool:
    """Run the setup steps, then one iteration of each class; True when every request and checkpoint passed.

    ``variables`` (what hooks prepared) go to every user. Rendezvous points let users pass at once here.
    """
    shared = dict(variables or {})
    runtime.run_state = RunState(setup_vars=shared)  # type: ignore[attr-defined]  # the setup's variables join it
    if setup is not None:
        runtime.echo(runtime._style("setup", bold=True))
        user = setup(runtime, 0)
        try:
            user.run(iterations=0)
        except StopTest as signal:
            runtime.echo(runtime._style(f"  test stopped: {signal.reason}", fg="red"))
            return False
        shared.update({k: v for k, v in user.vars.items() if k not in ("user_id", "user_type", "iteration", "host")})
        runtime.echo("")
    for number, cls in enumerate(classes, start=1):
        runtime.echo(runtime._style(f"user {cls.type_name} (host {cls.host})", bold=True))
        user = cls(runtime, number)
        try:
            user.run(iterations=1)
        except StopTest as signal:
            runtime.echo(runtime._style(f"  test stopped: {signal.reason}", fg="red"))
            return False
        except FlowSignal:  # pragma: no cover - run() handles the others
            pass
        runtime.echo("")
    summary = f"{runtime.requests} requests, {runtime.failures} failed, {runtime.errors} errors"
    passed = runtime.failures == 0 and runtime.errors == 0
    runtime.echo(runtime._style(summary, fg="green" if passed else "red", bold=True))
    return passed
