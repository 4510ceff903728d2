"""Secrets stay out of every output: one list of secret options, one redaction function.

A command line is recorded in results.json, report.html, junit.xml and the web UI, and settings are logged; an
incoming webhook URL (Slack, Teams), web credentials, the master's token and OTLP headers (API keys) are
credentials, and those files are attached to tickets and CI artifacts. ``redact`` masks them: the values of the
secret options on a command line, any known secret value (``secret_values``) and the password of a URL
(``-H http://user:password@host``) wherever they appear in a text.
The log of a run goes through the same function (``RedactingFilter``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MASK = "***"

# option on the command line -> the setting it fills (also read from LRUN_* variables and config files)
SECRET_OPTIONS = {"--master-token": "master_token", "--web-auth": "web_auth", "--webhook": "webhook"}
SECRET_SETTINGS = tuple(SECRET_OPTIONS.values())
# environment variables whose values are credentials (OTLP headers carry API keys)
SECRET_ENV = (
    "LRUN_MASTER_TOKEN",
    "LRUN_WEB_AUTH",
    "LRUN_WEBHOOK",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")  # scheme://user:PASSWORD@
_SHORTEST = 4  # a shorter "secret" (a one-letter password) would mask unrelated text and reveal itself


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line with the secret options' values masked (``--webhook URL`` and ``--webhook=URL``)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in SECRET_OPTIONS:
            out.append(f"{name}={MASK}" if eq else arg)
            hide_next = not eq
            continue
        out.append(arg)
    return out


def _header_values(text: str) -> Iterable[str]:
    """``key=value,key2=value2`` (OTLP headers): the whole and each value."""
    yield text
    for pair in text.split(","):
        yield pair.partition("=")[2].strip()


def secret_values(settings: Any = None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Every secret this run knows, longest first: the secret settings (and a password alone), the secret
    environment variables (each OTLP header value alone too)."""
    found: set[str] = set()
    for name in SECRET_SETTINGS:
        value = getattr(settings, name, None) if settings is not None else None
        if isinstance(value, str):
            found.add(value)
            if name == "web_auth":
                found.add(value.partition(":")[2])
    for name in SECRET_ENV:
        if environ.get(name):
            found.update(_header_values(environ[name]))
    return sorted((v for v in found if len(v) >= _SHORTEST), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every one of ``secrets`` masked, and the password of any URL (``http://user:***@host``)."""
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_command(argv: Sequence[str], secrets: Iterable[str] = ()) -> str:
    """A command line as shown in outputs: the secret options' values masked, and any known secret value."""
    return redact(" ".join(redact_argv(argv)), secrets)


class RedactingFilter(logging.Filter):
    """Masks the run's secrets in every log record a handler writes."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        return True
