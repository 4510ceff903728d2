"""Security of the master port: ZeroMQ's CURVE, shared by the master and its workers.

With a token or key files, every frame between master and worker is encrypted and authenticated by libzmq's
CURVE (CurveZMQ: X25519 keys, per-connection session keys). A client that does not hold a key the master
allows fails the handshake inside libzmq and never reaches the master's logic.

Keys come from one of two places:

- ``--master-token``: ``hashlib.scrypt`` (slow on purpose: a captured handshake allows offline guessing) turns
  the token into the master's secret key and one client secret key that every worker holds;
- key files, as ``zmq.auth.create_certificates`` writes them: the master's secret file, each worker's own
  secret file, and a folder of the workers' public files the master allows (the strong option).

The ZAP handler (``Gatekeeper``) admits only the allowed client keys and names each connection by its key
(the frame's ``User-Id``); the master binds each worker to the key it said hello with.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import zmq.green as zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from runner.errors import LrunError

log = logging.getLogger("lrun")

SALT = b"lrun master token, curve keys, v1"
SCRYPT = {"n": 2**15, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024}  # ~0.1 s and 32 MiB a guess
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZMQ_HEARTBEAT_MS = 5000  # libzmq's own heartbeat: a connection dead for ZMQ_HEARTBEAT_TIMEOUT_MS is closed,
ZMQ_HEARTBEAT_TIMEOUT_MS = 30000  # so that a worker reconnecting under its id is not kept out by a dead one
HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class KeyFileError(LrunError):
    """A key file that is missing or of the wrong kind."""


@dataclass(frozen=True)
class Keys:
    """CURVE keys, Z85-encoded. The master has ``server_secret`` and ``allowed``; a worker its client pair."""

    server_public: bytes
    server_secret: bytes | None = None
    client_public: bytes | None = None
    client_secret: bytes | None = None
    allowed: frozenset[bytes] = frozenset()  # client public keys the master takes


def from_token(token: str) -> Keys:
    """The keys of a token, the same on master and workers (derived, never sent)."""
    raw = hashlib.scrypt(token.encode(), salt=SALT, dklen=64, **SCRYPT)
    server_secret, client_secret = z85.encode(raw[:32]), z85.encode(raw[32:])
    client_public = zmq.curve_public(client_secret)
    server_public = zmq.curve_public(server_secret)
    return Keys(server_public, server_secret, client_public, client_secret, frozenset({client_public}))


def _certificate(path: str, option: str, secret: bool) -> tuple[bytes, bytes | None]:
    from zmq.auth import load_certificate

    try:
        public, private = load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(
            f"{option} {path}: not a key file ({exc}); create keys with zmq.auth.create_certificates"
        ) from None
    if secret and private is None:
        raise KeyFileError(f"{option} {path}: a public key file; give the secret one (its .key_secret file)")
    return public, private


def master_keys(master_key_file: str, worker_keys: str | None) -> Keys:
    """The master's keys from its secret key file and the folder of the workers' public key files."""
    from zmq.auth import load_certificates

    public, private = _certificate(master_key_file, "--master-key-file", secret=True)
    if not worker_keys:
        raise KeyFileError(
            "--master-key-file needs --worker-keys DIR on the master: the folder of the workers' public key "
            "files (*.key) that it accepts"
        )
    if not Path(worker_keys).is_dir():
        raise KeyFileError(f"--worker-keys {worker_keys}: not a folder; give the folder of the workers' *.key files")
    allowed = frozenset(load_certificates(worker_keys))
    if not allowed:
        raise KeyFileError(f"--worker-keys {worker_keys}: no public key file (*.key) in it")
    return Keys(public, private, allowed=allowed)


def worker_keys(master_key_file: str, worker_key_file: str | None) -> Keys:
    """A worker's keys: the master's public key file and the worker's own secret key file."""
    server_public, _ = _certificate(master_key_file, "--master-key-file", secret=False)
    if not worker_key_file:
        raise KeyFileError("--master-key-file needs --worker-key-file on a worker: its own secret key file")
    client_public, client_secret = _certificate(worker_key_file, "--worker-key-file", secret=True)
    return Keys(server_public, client_public=client_public, client_secret=client_secret)


def keys_for(token: str | None, master_key_file: str | None, other_key: str | None, *, master: bool) -> Keys | None:
    """The keys a setting asks for (None: no security); ``other_key`` is --worker-keys or --worker-key-file."""
    if token and master_key_file:
        raise KeyFileError("--master-token and --master-key-file: give one or the other")
    if master_key_file:
        return master_keys(master_key_file, other_key) if master else worker_keys(master_key_file, other_key)
    return from_token(token) if token else None


def secure_server(sock: Any, keys: Keys) -> None:
    """Make ``sock`` (not yet bound) a CURVE server; a Gatekeeper must be running in its context."""
    sock.setsockopt(zmq.ZAP_DOMAIN, b"lrun")
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.server_secret)


def secure_client(sock: Any, keys: Keys) -> None:
    """Make ``sock`` (not yet connected) a CURVE client of the master with ``keys``."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.client_public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.client_secret)


def keep_alive(sock: Any) -> None:
    sock.setsockopt(zmq.HEARTBEAT_IVL, ZMQ_HEARTBEAT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMQ_HEARTBEAT_TIMEOUT_MS)


class Gatekeeper:
    """The ZAP handler of a context (RFC 27): admits CURVE clients whose public key is allowed.

    Its ``User-Id`` for a connection is the client's public key (Z85), which every frame then carries.
    """

    def __init__(self, context: Any, allowed: frozenset[bytes]) -> None:
        self.allowed = allowed
        self.refused = 0
        self._logged: set[bytes] = set()
        self._socket = context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(ZAP_ENDPOINT)
        self._greenlet = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            try:
                request = self._socket.recv_multipart()
            except zmq.ZMQError:
                return
            self._socket.send_multipart(self.answer(request))

    def answer(self, request: list[bytes]) -> list[bytes]:
        version, request_id, _domain, address, _identity, mechanism, *credentials = request + [b""] * 6
        key = z85.encode(credentials[0]) if mechanism == b"CURVE" and len(credentials[0]) == 32 else b""
        if version != b"1.0":
            return [b"1.0", request_id, b"500", b"unknown ZAP version", b"", b""]
        if key and key in self.allowed:
            return [b"1.0", request_id, b"200", b"OK", key, b""]
        self.refused += 1
        if key not in self._logged and len(self._logged) < 100:
            self._logged.add(key)
            log.warning(
                "refused a connection from %s: its key is not one this master accepts (--worker-keys)",
                address.decode("utf-8", "replace"),
            )
        return [b"1.0", request_id, b"400", b"key not allowed", b"", b""]

    def close(self) -> None:
        self._greenlet.kill(block=False)
        self._socket.close(0)


class HandshakeWatch:
    """Calls ``on_failure(event)`` for each failed security handshake on ``sock`` (a monitor greenlet).

    ``close()`` it before the socket's context is terminated (its monitor socket would keep it open).
    """

    def __init__(self, sock: Any, on_failure: Any) -> None:
        self._sock = sock
        self._monitor = sock.get_monitor_socket(HANDSHAKE_FAILED)
        self._on_failure = on_failure
        self._greenlet = gevent.spawn(self._watch)

    def _watch(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor)
            except zmq.ZMQError:
                return
            self._on_failure(event)

    def close(self) -> None:
        self._greenlet.kill(block=False)
        if not self._monitor.closed:
            self._sock.disable_monitor()
            self._monitor.close(0)


# ------------------------------------------------------------------------------------------ env() on workers

_CONSTANT_ENV = re.compile(r"""\benv\(\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\1""")


def constant_env_names(files: dict[str, bytes]) -> list[str]:
    """The names the scenario's templates pass to ``env()`` as constants (``env('API_KEY')``)."""
    yamls = [content.decode("utf-8", "replace") for name, content in files.items() if name.endswith((".yaml", ".yml"))]
    return sorted({match.group(2) for text in yamls for match in _CONSTANT_ENV.finditer(text)})


class EnvNotAllowed(LrunError):
    """A worker's ``env()`` asked for a variable its operator does not allow."""


class WorkerEnv:
    """``env()`` on a worker: the master's values for constant names, else what ``--allow-env`` allows here."""

    def __init__(self, allowed: tuple[str, ...], from_master: dict[str, str | None], warn: Any) -> None:
        self.allowed = allowed
        self.from_master = from_master
        self.warn = warn
        self._warned: set[str] = set()

    def read(self, name: str, default: str = "") -> str:
        name = str(name)
        if name in self.from_master:
            value = self.from_master[name]
            return default if value is None else value
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed):
            return os.environ.get(name, default)
        message = (
            f"env({name!r}): this worker does not let scenarios read {name} from its environment; "
            f"its operator can allow it with --allow-env {name} (or LRUN_ALLOW_ENV)"
        )
        if name not in self._warned and len(self._warned) < 100:
            self._warned.add(name)
            self.warn(message)
        raise EnvNotAllowed(message)
