"""Secrets never reach an output: a real run given every credential lrun takes writes none of them anywhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from outputs_helpers import start_lrun
from web_process import WebLrun, http, wait_for

from runner.redact import MASK, redact_argv, redact_command, secret_values

HOOK_SECRET = "T00000000/B00000000/XXXXhooksecretXXXX"
WEB_PASSWORD = "pa55-web-secret-word"
TOKEN = "master-token-secret-4242"
OTLP_KEY = "otlp-api-key-secret-7777"
POOL_TOKEN = "pool-bearer-secret-9999"
URL_PASSWORD = "url-password-secret-5555"


class Sink:
    """Answers 200 to any POST (a webhook and an OTLP collector), counting them and keeping the bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.server.shutdown()


def test_every_output_of_a_run_given_every_secret_holds_none_of_them(tmp_path: Path, demo_url: str, sink: Sink) -> None:
    (tmp_path / "tokens.csv").write_text(f"token\n{POOL_TOKEN}\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"name: secrets\nhost: {demo_url.replace('//', f'//load:{URL_PASSWORD}@')}\n"
        "pools:\n  tokens: {csv: tokens.csv}\n"
        "users:\n  u:\n    think: 50ms\n    sequence:\n"
        "      - get: /\n        headers: {Authorization: 'Bearer {{ tokens.token }}'}\n"
        "      - get: /missing\n        headers: {Authorization: 'Bearer {{ tokens.token }}'}\n"
        "thresholds:\n  - {expect: 'errors < 1%'}\n"
    )
    out = tmp_path / "out"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={OTLP_KEY}",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    lrun = start_lrun(
        str(scenario), "-u", "2", "-t", "3", "--processes", "1", "-L", "DEBUG",
        "--webhook", f"{sink.url}/services/{HOOK_SECRET}", f"--web-auth=admin:{WEB_PASSWORD}",
        "--master-token", TOKEN, "--metrics-port", "0", "--otel",
        "--json", f"{out}.json", "--html", f"{out}.html", "--junit", f"{out}.xml", "--csv", str(out),
        "--logfile", f"{out}.log",
        env=env,
    )  # fmt: skip
    stdout, stderr = lrun.communicate(timeout=120)
    assert lrun.returncode == 1, stderr  # /missing fails the threshold
    files = sorted(tmp_path.glob("out*"))
    assert {f.suffix for f in files} >= {".json", ".html", ".xml", ".csv", ".log"}, files
    assert sink.bodies, "the webhook and the collector were reached"  # the secrets were really used
    texts = {f.name: f.read_text(errors="replace") for f in files} | {"stdout": stdout, "stderr": stderr}
    for name, text in texts.items():
        for secret in (HOOK_SECRET, WEB_PASSWORD, TOKEN, OTLP_KEY, POOL_TOKEN, URL_PASSWORD):
            assert secret not in text, f"{secret} in {name}"
    assert f"--webhook {MASK}" in texts["out.json"] and f"--master-token {MASK}" in texts["out.json"]
    assert f"--web-auth={MASK}" in texts["out.html"]


def test_the_command_line_and_known_values_are_masked() -> None:
    argv = ["lrun", "s.yaml", "--webhook", "http://h/x", "--web-auth=u:p", "-u", "3", "--master-token"]
    assert redact_argv(argv) == ["lrun", "s.yaml", "--webhook", MASK, f"--web-auth={MASK}", "-u", "3", "--master-token"]

    class Settings:
        webhook, web_auth, master_token = "http://hook/abc", "user:longpassword", None

    secrets = secret_values(Settings(), {"OTEL_EXPORTER_OTLP_HEADERS": "a=key-one, b=key-two"})
    assert {"http://hook/abc", "user:longpassword", "longpassword", "key-one", "key-two"} <= set(secrets)
    shown = redact_command(["lrun", "-H", "http://x/?k=key-one"], secrets)
    assert shown == f"lrun -H http://x/?k={MASK}"
    assert redact_command(["lrun", "-H", "https://bob:hunter2@h:8080/p"]) == f"lrun -H https://bob:{MASK}@h:8080/p"
    assert redact_command(["lrun", "-H", "https://h/p@x:y"]) == "lrun -H https://h/p@x:y"  # no user info: kept


def test_the_web_ui_shows_no_secret(tmp_path: Path, demo_url: str, sink: Sink) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: web\nhost: {demo_url}\nusers:\n  u:\n    think: 50ms\n    sequence:\n      - get: /\n")
    auth = ("admin", WEB_PASSWORD)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={OTLP_KEY}"}
    web = WebLrun(
        str(scenario), "-u", "1", "-t", "2", "--autostart", "--otel",
        "--web-auth", f"admin:{WEB_PASSWORD}", f"--webhook={sink.url}/services/{HOOK_SECRET}", env=env,
    )  # fmt: skip
    try:
        url = web.url
        wait_for(lambda: http(f"{url}/stats/requests", auth=auth).json()["state"] == "stopped", what="the end")
        pages = ["/", "/api/state", "/stats/requests", "/stats/report", "/stats/requests/csv"]
        pages += ["/api/runs/1/results.json", "/api/runs/1/report.html"]
        shown = {page: http(f"{url}{page}", auth=auth) for page in pages}
        assert all(reply.status == 200 for reply in shown.values()), {p: r.status for p, r in shown.items()}
        assert f"--webhook={MASK}" in shown["/api/runs/1/results.json"].json()["command"]
    finally:
        web.stop()
    texts = {page: reply.body.decode("utf-8", "replace") for page, reply in shown.items()}
    texts |= {"stdout": "".join(web.stdout), "stderr": "".join(web.stderr)}
    for name, text in texts.items():
        for secret in (HOOK_SECRET, WEB_PASSWORD, OTLP_KEY):
            assert secret not in text, f"{secret} in {name}"
