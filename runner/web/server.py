"""``lrun SCENARIO --web``: serve the web UI on gevent's WSGI server until Ctrl-C (or ``--autoquit``).

The exit code is the last test's (0 when none ran), so ``--autostart --autoquit 0`` gates CI like a headless run.
"""

from __future__ import annotations

import logging
import signal
import ssl
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import gevent
from gevent.event import Event

from runner.compile.compiler import needs_demo
from runner.config import RunSettings
from runner.errors import LrunError
from runner.scenario import LoadedScenario
from runner.serving import Server, is_loopback
from runner.web.app import WebApp
from runner.web.control import Backend, Controller, LocalBackend
from runner.web.security import Guard, WebSettingsError, parse_auth
from runner.web.view import LogTail

log = logging.getLogger("lrun")


@dataclass(frozen=True)
class WebOptions:
    host: str
    port: int
    auth: tuple[str, str] | None
    cert: str | None
    key: str | None
    allowed_hosts: tuple[str, ...]
    autostart: bool
    autoquit: float | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.cert else 'http'}://{host}:{self.port}"


def web_options(settings: RunSettings) -> WebOptions:
    """The web settings, checked: ``WebSettingsError`` (one line) for what cannot work."""
    auth = parse_auth(settings.web_auth)
    host = settings.web_host
    if not is_loopback(host) and auth is None:
        raise WebSettingsError(
            f"--web-host {host}: the web UI controls the load; beyond loopback it needs --web-auth USER:PASSWORD "
            "(or LRUN_WEB_AUTH)"
        )
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise WebSettingsError("--tls-cert and --tls-key go together: give both")
    for option, path in (("--tls-cert", settings.tls_cert), ("--tls-key", settings.tls_key)):
        if path and not Path(path).is_file():
            raise WebSettingsError(f"{option}: file not found: {path}")
    if settings.tls_cert:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.tls_cert, settings.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise WebSettingsError(f"--tls-cert/--tls-key: cannot use them: {exc}") from None
    return WebOptions(
        host=host,
        port=settings.web_port,
        auth=auth,
        cert=settings.tls_cert,
        key=settings.tls_key,
        allowed_hosts=tuple(settings.web_allowed_host),
        autostart=settings.autostart,
        autoquit=settings.autoquit,
    )


def _backend(loaded: LoadedScenario, settings: RunSettings, demo_url: str | None, stack: ExitStack) -> Backend:
    if settings.master or settings.processes:
        from runner.web.cluster import ClusterBackend

        backend = ClusterBackend(loaded, settings, demo_url)
        stack.callback(backend.close)
        backend.open()
        return backend
    return LocalBackend(loaded)


def serve_web(loaded: LoadedScenario, settings: RunSettings, *, command: str, out: TextIO = sys.stdout) -> int:
    """Serve the UI; run tests as the page asks; the last test's exit code."""
    options = web_options(settings)
    tail = LogTail()
    logging.getLogger("lrun").addHandler(tail)
    with ExitStack() as stack:
        stack.callback(logging.getLogger("lrun").removeHandler, tail)
        demo_url = None

        def start_demo() -> str:
            from runner.demo import start_demo as start

            demo = stack.enter_context(start())
            log.info("demo target started at %s", demo.url)
            return demo.url

        if needs_demo(loaded.model, settings.host):
            demo_url = start_demo()
        backend = _backend(loaded, settings, demo_url, stack)
        controller = Controller(loaded, settings, backend, command=command, demo_url=demo_url, out=out)
        controller.start_demo = start_demo
        app = WebApp(controller, Guard(options.host, auth=options.auth, allowed=options.allowed_hosts), tail)
        ssl_args: dict[str, Any] = {"certfile": options.cert, "keyfile": options.key} if options.cert else {}
        server = Server((options.host, options.port), app, log=None, error_log=log, **ssl_args)
        try:
            server.init_socket()
        except OSError as exc:
            raise WebSettingsError(
                f"--web-port {options.port}: cannot listen on {options.host}:{options.port} "
                f"({exc.strerror or exc.__class__.__name__}); "
                "choose another with --web-port"
            ) from None
        server.start()
        stack.callback(server.stop, timeout=2)
        app.broadcast.start()
        stack.callback(app.broadcast.stop)
        port = server.server_port
        url = WebOptions(**{**options.__dict__, "port": port}).url
        log.info("web UI on %s (Ctrl-C to quit)", url)
        print(f"lrun web UI: {url}", file=out, flush=True)
        quit_now = Event()
        handlers = [gevent.signal_handler(s, quit_now.set) for s in (signal.SIGINT, signal.SIGTERM)]
        stack.callback(lambda: [h.cancel() for h in handlers])
        if options.autostart:
            waited = time.monotonic()
            while (problem := backend.ready_error()) and not quit_now.wait(0.5):
                if backend.max_wait is not None and time.monotonic() - waited > backend.max_wait:
                    raise WebSettingsError(f"--autostart: {problem}")
            try:
                controller.start()
            except LrunError as exc:
                raise WebSettingsError(f"--autostart: {exc}") from None
        while not quit_now.wait(0.25):
            ended = controller.ended_at
            quiet = ended is not None and not controller.running and time.time() - ended
            if options.autoquit is not None and quiet is not False and quiet >= options.autoquit:
                log.info("--autoquit: quitting %gs after the test ended", options.autoquit)
                break
        controller.close()
        run = controller.current
        return run.exit_code if run is not None and run.exit_code is not None else 0
