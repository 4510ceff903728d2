"""The demo shop: a small WSGI app that lrun's quickstart, example scenarios and tests load against.

All state lives in one ``DemoShop`` object. The app runs in a single gevent process and no handler yields
between reading and writing state (only ``/slow`` sleeps, and it touches no state), so plain dicts are safe.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import gevent

from runner.demo.graphql import GraphqlDemo, request_parts
from runner.demo.rpc import RpcService
from runner.demo.websocket import DemoSockets

MAX_REMEMBERED = 100_000  # issued sessions / tokens / orders kept (oldest evicted first)
MAX_BODY = 10 * 1024 * 1024
MAX_SLEEP_MS = 30_000
PASSWORD = "secret"
UNCOUNTED = frozenset({"/__stats", "/__reset"})

# fmt: off
_CATALOG = [
    ("Red mug", 9.5), ("Blue teapot", 24.0), ("Green notebook", 4.25), ("Yellow umbrella", 15.99),
    ("Black backpack", 49.9), ("White sneakers", 79.0), ("Silver watch", 129.5), ("Wooden chess set", 35.0),
    ("Paper lantern", 7.75), ("Glass vase", 19.2),
]
# fmt: on
ITEMS: tuple[dict[str, Any], ...] = tuple(
    {"id": i, "name": name, "price": price} for i, (name, price) in enumerate(_CATALOG, start=1)
)

Json = Any
Headers = list[tuple[str, str]]


class HTTPError(Exception):
    """Raised by a handler to answer ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or []


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    cookies: dict[str, str]  # percent-decoded values
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern, e.g. {"id": "3"}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("content-type", "")

    def json_body(self) -> Json:
        """The body parsed as JSON (``None`` if empty); 400 if it is not valid JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise HTTPError(400, "invalid JSON body") from None

    def fields(self) -> dict[str, Any]:
        """Form fields from a JSON object body or a form-encoded body (first value of each name)."""
        if self.is_json:
            data = self.json_body()
            if data is None:
                return {}
            if not isinstance(data, dict):
                raise HTTPError(400, "JSON body must be an object")
            return data
        form = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] for name, values in form.items()}


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str
    headers: Headers = field(default_factory=list)


def json_response(data: Json, status: int = 200, headers: Headers | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), "application/json", headers or [])


def html_response(html: str, status: int = 200, headers: Headers | None = None) -> Response:
    return Response(status, html.encode(), "text/html; charset=utf-8", headers or [])


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title></head>\n'
        f'<body>\n{body}\n<p><a href="/">home</a></p>\n</body></html>\n'
    )


def _shop_page(title: str, body: str, head: str = "") -> str:
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title>{head}'
        '<link rel="stylesheet" href="/shop/shop.css"></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )


def set_cookie(name: str, value: str, extra: str = "") -> tuple[str, str]:
    return "Set-Cookie", f"{name}={quote(value, safe='')}; Path=/{extra}"


def parse_cookies(header: str) -> dict[str, str]:
    cookies = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            cookies[name.strip()] = unquote(value.strip().strip('"'))
    return cookies


def as_int(value: Any) -> int | None:
    """``value`` as an int if it is an int or a decimal string, else None (booleans are not ints here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    if len(store) > MAX_REMEMBERED:
        store.popitem(last=False)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", pattern) + "$")


REASONS = {s.value: s.phrase for s in HTTPStatus}
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
Handler = Callable[[Request], Response]


class DemoShop:
    """The WSGI application object; ``make_app()`` returns a fresh one."""

    grpc: Any = None  # the gRPC service beside it (runner.demo.grpc_service), when the server started one

    def __init__(self) -> None:
        self.reset()
        self.routes: dict[str, dict[str, Handler]] = {}  # pattern -> method ("*": any) -> handler
        self.patterns: list[tuple[re.Pattern[str], str]] = []  # for patterns with <params>
        for method, pattern, handler in [
            ("GET", "/", self.home),
            ("GET", "/about", self.about),
            ("GET", "/login", self.login_page),
            ("POST", "/login", self.login),
            ("GET", "/items", self.items),
            ("GET", "/items/<id>", self.item),
            ("POST", "/orders", self.create_order),
            ("GET", "/orders", self.list_orders),
            ("POST", "/register", self.register),
            ("GET", "/profile", self.profile),
            ("POST", "/profile", self.submit_profile),
            ("GET", "/credit-limit", self.credit_limit),
            ("GET", "/slow", self.slow),
            ("GET", "/fail", self.fail),
            ("GET", "/json", self.json_doc),
            ("GET", "/xml", self.xml_doc),
            ("*", "/echo", self.echo),
            ("GET", "/redirect", self.redirect),
            ("GET", "/cookies/set", self.set_cookies),
            ("GET", "/cookies", self.cookies),
            ("POST", "/RPC2", self.rpc),
            ("*", "/graphql", self.graphql),
            ("GET", "/shop", self.shop_login),
            ("GET", "/shop/checkout", self.shop_checkout),
            ("POST", "/shop/orders", self.shop_order),
            ("GET", "/shop/orders/<id>", self.shop_receipt),
            ("GET", "/shop/shop.css", self.shop_css),
            ("GET", "/__stats", self.stats),
            ("POST", "/__reset", self.reset_state),
        ]:
            if pattern not in self.routes and "<" in pattern:
                self.patterns.append((compile_pattern(pattern), pattern))
            self.routes.setdefault(pattern, {})[method] = handler

    def reset(self) -> None:
        self.sessions: OrderedDict[str, None] = OrderedDict()
        self.tokens: OrderedDict[str, str] = OrderedDict()  # bearer token -> user
        self.carts: OrderedDict[str, str] = OrderedDict()  # browser shop: cart id -> CSRF token of its page
        self.users: set[str] = set()  # users that logged in (for the demo_user cookie)
        self.phones: dict[str, str] = {}  # registered phone -> name
        self.profiles: dict[str, dict[str, Any]] = {}  # user -> submitted profile
        self.registrations: dict[str, int] = {}  # phone -> attempts, duplicates included
        self.orders: deque[dict[str, Any]] = deque(maxlen=MAX_REMEMBERED)
        self.next_order_id = 1
        self.logins = 0
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.xmlrpc = RpcService(ITEMS)
        self.graphql_demo = GraphqlDemo(ITEMS)  # runner.demo.graphql
        self.sockets = DemoSockets()  # the WebSocket endpoints' counters (runner.demo.websocket)

    # -- WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace") or "/"
        pattern, methods, params = self.match(path)
        if pattern is None:
            self.count(f"{method} <not found>")
            response = json_response({"error": "not found"}, 404)
        else:
            if pattern not in UNCOUNTED:
                self.count(f"{method} {pattern}")
            handler = methods.get(method) or methods.get("*")
            if handler is None and method == "HEAD":
                handler = methods.get("GET")
            if handler is None:
                allow = ", ".join(sorted(methods))
                response = json_response({"error": "method not allowed"}, 405, [("Allow", allow)])
            else:
                response = self.dispatch(handler, environ, method, path, params)
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *response.headers,
        ]
        start_response(f"{response.status} {REASONS.get(response.status, 'Unknown')}", headers)
        return [b""] if method == "HEAD" else [response.body]

    def match(self, path: str) -> tuple[str | None, dict[str, Handler], dict[str, str]]:
        if path in self.routes:
            return path, self.routes[path], {}
        for regex, pattern in self.patterns:
            m = regex.match(path)
            if m:
                return pattern, self.routes[pattern], m.groupdict()
        return None, {}, {}

    def count(self, key: str) -> None:
        self.requests += 1
        self.by_path[key] = self.by_path.get(key, 0) + 1

    def dispatch(
        self, handler: Handler, environ: dict[str, Any], method: str, path: str, params: dict[str, str]
    ) -> Response:
        try:
            request = self.parse(environ, method, path, params)
            return handler(request)
        except HTTPError as e:
            return json_response({"error": e.message}, e.status, e.headers)

    @staticmethod
    def parse(environ: dict[str, Any], method: str, path: str, params: dict[str, str]) -> Request:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        body = environ["wsgi.input"].read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise HTTPError(413, "request body too large")
        return Request(
            method=method,
            path=path,
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            cookies=parse_cookies(headers.get("cookie", "")),
            body=body,
            params=params,
        )

    # -- pages -----------------------------------------------------------------------------------------

    def home(self, request: Request) -> Response:
        links = "".join(f'<li><a href="{p}">{p[1:]}</a></li>' for p in ("/login", "/items", "/about"))
        return html_response(page("lrun demo shop", f"<h1>lrun demo shop</h1>\n<ul>{links}</ul>"))

    def about(self, request: Request) -> Response:
        text = "<h1>About</h1>\n<p>The built-in target application of lrun, for demos and tests.</p>"
        return html_response(page("About the lrun demo shop", text))

    def login_page(self, request: Request) -> Response:
        session, csrf = secrets.token_hex(16), secrets.token_hex(8)
        remember(self.sessions, session, None)
        body = (
            "<h1>Welcome to the demo shop</h1>\n"
            f'<script>\nvar csrf = "{csrf}";\n</script>\n'
            '<form method="post" action="/login">\n'
            '<label>User <input type="text" name="user"/></label>\n'
            '<label>Password <input type="password" name="password"/></label>\n'
            f'<div class="btnbox"><input type="hidden" name="session" value="{session}"/> '
            '<input type="submit" value="Log in"/></div>\n'
            "</form>"
        )
        sid = set_cookie("demo_sid", secrets.token_hex(8), "; HttpOnly")
        return html_response(page("lrun demo shop - log in", body), headers=[sid])

    def login(self, request: Request) -> Response:
        fields = request.fields()
        user, password, session = (str(fields.get(k, "")) for k in ("user", "password", "session"))
        if session not in self.sessions:
            raise HTTPError(403, "invalid session")
        if not user or password != PASSWORD:
            raise HTTPError(401, "bad credentials")
        token = secrets.token_hex(16)
        remember(self.tokens, token, user)
        self.users.add(user)
        self.logins += 1
        return json_response({"status": "ok", "token": token, "user": user}, headers=[set_cookie("demo_user", user)])

    def items(self, request: Request) -> Response:
        return json_response({"items": list(ITEMS)})

    def item(self, request: Request) -> Response:
        item_id = as_int(request.params["id"])
        if item_id is None or not 1 <= item_id <= len(ITEMS):
            raise HTTPError(404, "no such item")
        item = ITEMS[item_id - 1]
        if request.arg("format") == "html":
            name, price = escape(item["name"]), f"{item['price']:.2f}"
            body = f'<h1 class="name">{name}</h1>\n<span class="price">{price}</span>'
            return html_response(page(item["name"], body))
        return json_response(item)

    # -- orders, accounts --------------------------------------------------------------------------------

    def bearer_user(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise HTTPError(401, "missing or invalid token", [("WWW-Authenticate", "Bearer")])
        return user

    def create_order(self, request: Request) -> Response:
        arrived = time.time()
        user = self.bearer_user(request)
        fields = request.fields()
        item = as_int(fields.get("item"))
        if item is None or not 1 <= item <= len(ITEMS):
            raise HTTPError(400, "no such item")
        quantity = as_int(fields.get("quantity", 1))
        if quantity is None or quantity < 1:
            raise HTTPError(400, "invalid quantity")
        order = {"order_id": self.next_order_id, "user": user, "item": item, "quantity": quantity}
        self.next_order_id += 1
        self.orders.append({**order, "time": arrived})
        return json_response({"status": "ok", **{k: v for k, v in order.items() if k != "user"}}, 201)

    def list_orders(self, request: Request) -> Response:
        user = self.bearer_user(request)
        return json_response([order for order in self.orders if order["user"] == user])

    def register(self, request: Request) -> Response:
        fields = request.fields()
        phone, name = str(fields.get("phone") or "").strip(), str(fields.get("name") or "")
        if not phone:
            raise HTTPError(400, "phone required")
        self.registrations[phone] = self.registrations.get(phone, 0) + 1
        if phone in self.phones:
            raise HTTPError(409, "phone already registered")
        self.phones[phone] = name
        return json_response({"status": "ok", "phone": phone, "name": name}, 201)

    def cookie_user(self, request: Request) -> str:
        user = request.cookies.get("demo_user", "")
        if user not in self.users:
            raise HTTPError(401, "not logged in")
        return user

    def profile(self, request: Request) -> Response:
        user = self.cookie_user(request)
        credit_limit = 1000 + zlib.crc32(user.encode()) % 50 * 100
        return json_response({"user": user, "credit_limit": credit_limit, **self.profiles.get(user, {})})

    def submit_profile(self, request: Request) -> Response:
        user = self.cookie_user(request)
        fields = request.fields()
        income = as_int(fields.get("income"))
        if income is None or income < 0:
            raise HTTPError(400, "income must be a whole number")
        self.profiles[user] = {"name": str(fields.get("name") or ""), "income": income}
        return json_response({"status": "ok", "user": user}, 201)

    def credit_limit(self, request: Request) -> Response:
        """The credit limit of the logged-in user: needs a submitted profile (income decides the limit)."""
        user = self.cookie_user(request)
        profile = self.profiles.get(user)
        if profile is None:
            raise HTTPError(409, "submit a profile first")
        limit = min(50_000, profile["income"] // 10 // 100 * 100)
        return json_response({"user": user, "credit_limit": limit, "currency": "EUR"})

    # -- the browser shop: pages a person or a browser walks (login, checkout, receipt) ------------------
    # Each dynamic value lives where real sites keep it: a hidden input (session), a JSON token kept by
    # JavaScript and sent as Bearer, a <meta> CSRF token sent as a header, a cart id in a script variable,
    # and an order id in a redirect's Location.

    def shop_login(self, request: Request) -> Response:
        session = secrets.token_hex(16)
        remember(self.sessions, session, None)
        body = (
            "<h1>Log in to the shop</h1>\n"
            '<form id="login"><label>User <input type="text" name="user"/></label>\n'
            '<label>Password <input type="password" name="password"/></label>\n'
            f'<input type="hidden" name="session" value="{session}"/><button type="submit">Log in</button></form>\n'
            '<p id="status"></p><p id="next" hidden><a href="/shop/checkout">Go to checkout</a></p>\n'
            "<script>\ndocument.getElementById('login').onsubmit = async (event) => {\n"
            "  event.preventDefault();\n"
            "  const fields = new URLSearchParams(new FormData(event.target));\n"
            "  const answer = await fetch('/login', {method: 'POST', body: fields});\n"
            "  const data = await answer.json();\n"
            "  sessionStorage.setItem('token', data.token);\n"
            "  document.getElementById('status').textContent = 'Welcome, ' + data.user;\n"
            "  document.getElementById('next').hidden = false;\n};\n</script>"
        )
        return html_response(_shop_page("Shop login", body))

    def shop_checkout(self, request: Request) -> Response:
        cart, csrf = secrets.token_hex(12), secrets.token_urlsafe(18)
        remember(self.carts, cart, csrf)
        options = "".join(f'<option value="{i["id"]}">{escape(i["name"])}</option>' for i in ITEMS)
        body = (
            "<h1>Checkout</h1>\n"
            f'<form id="order"><select name="item">{options}</select>\n'
            '<input type="number" name="quantity" value="1"/><button type="submit">Order</button></form>\n'
            '<p id="result"></p>\n'
            f'<script>\nvar cartId = "{cart}";\n'
            "document.getElementById('order').onsubmit = async (event) => {\n"
            "  event.preventDefault();\n"
            "  const form = new FormData(event.target);\n"
            "  const answer = await fetch('/shop/orders', {method: 'POST', headers: {\n"
            "    'Authorization': 'Bearer ' + sessionStorage.getItem('token'), 'Content-Type': 'application/json',\n"
            "    'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},\n"
            "    body: JSON.stringify({cart: cartId, item: Number(form.get('item')),\n"
            "                          quantity: Number(form.get('quantity'))})});\n"
            "  const order = await answer.json();\n"
            "  const text = 'Thank you: order ' + order.order_id + ' ' + order.status;\n"
            "  document.getElementById('result').textContent = text;\n"
            "};\n</script>"
        )
        return html_response(_shop_page("Checkout", body, f'<meta name="csrf-token" content="{csrf}">'))

    def shop_order(self, request: Request) -> Response:
        """An order from the checkout page: 303 to its receipt (``/shop/orders/<id>``)."""
        user = self.bearer_user(request)
        fields = request.fields()
        csrf = self.carts.get(str(fields.get("cart", "")))
        if csrf is None or request.headers.get("x-csrf-token") != csrf:
            raise HTTPError(403, "unknown cart or bad CSRF token")
        item, quantity = as_int(fields.get("item")), as_int(fields.get("quantity", 1))
        if item is None or not 1 <= item <= len(ITEMS) or quantity is None or quantity < 1:
            raise HTTPError(400, "no such item or invalid quantity")
        order = {"order_id": self.next_order_id, "user": user, "item": item, "quantity": quantity}
        self.next_order_id += 1
        self.orders.append({**order, "time": time.time()})
        location = f"/shop/orders/{order['order_id']}"
        return json_response({"status": "created"}, 303, [("Location", location)])

    def shop_receipt(self, request: Request) -> Response:
        user = self.bearer_user(request)
        order_id = as_int(request.params["id"])
        order = next((o for o in self.orders if o["order_id"] == order_id and o["user"] == user), None)
        if order is None:
            raise HTTPError(404, "no such order")
        return json_response({"status": "ok", "order_id": order_id, "item": order["item"]})

    def shop_css(self, request: Request) -> Response:
        return Response(200, b"body { font-family: sans-serif; }\n", "text/css")

    # -- test helpers ------------------------------------------------------------------------------------

    def slow(self, request: Request) -> Response:
        ms = as_int(request.arg("ms", "500"))
        if ms is None:
            raise HTTPError(400, "ms must be an integer")
        ms = max(0, min(ms, MAX_SLEEP_MS))
        gevent.sleep(ms / 1000)
        return json_response({"slept_ms": ms})

    def fail(self, request: Request) -> Response:
        status = as_int(request.arg("status", "500"))
        if status is None or not 400 <= status <= 599:
            raise HTTPError(400, "status must be an integer in 400..599")
        return Response(status, b"internal error (on purpose)", "text/plain; charset=utf-8")

    def json_doc(self, request: Request) -> Response:
        return json_response({"status": "ok", "token": secrets.token_hex(8)})

    def xml_doc(self, request: Request) -> Response:
        items = "".join(
            f'<item id="{i["id"]}"><name>{escape(i["name"])}</name><price>{i["price"]:.2f}</price></item>'
            for i in ITEMS[:3]
        )
        doc = f'<?xml version="1.0" encoding="UTF-8"?>\n<catalog>{items}</catalog>\n'
        return Response(200, doc.encode(), "application/xml")

    def echo(self, request: Request) -> Response:
        """Everything the request carried; ``json`` and ``form`` are None unless the Content-Type says so."""
        try:
            parsed = request.json_body() if request.is_json else None
        except HTTPError:
            parsed = None
        form = None
        if "x-www-form-urlencoded" in request.headers.get("content-type", ""):
            form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        return json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "headers": request.headers,
                "cookies": request.cookies,
                "body": request.body.decode("utf-8", "replace"),
                "json": parsed,
                "form": form,
            }
        )

    def redirect(self, request: Request) -> Response:
        to = request.arg("to", "/") or "/"
        if not to.startswith("/") or to.startswith("//") or "\\" in to or any(ord(c) < 32 for c in to):
            raise HTTPError(400, "only relative paths are allowed")
        status = as_int(request.arg("status", "302"))
        if status not in (301, 302, 303, 307, 308):
            raise HTTPError(400, "status must be one of 301, 302, 303, 307, 308")
        return json_response({"location": to}, status, [("Location", quote(to, safe="/?&=#:;@+,!~*'()$"))])

    def set_cookies(self, request: Request) -> Response:
        cookies = {name: values[0] for name, values in request.query.items()}
        if not all(COOKIE_NAME.match(name) for name in cookies):
            raise HTTPError(400, "invalid cookie name")
        return json_response({"cookies": cookies}, headers=[set_cookie(n, v) for n, v in cookies.items()])

    def cookies(self, request: Request) -> Response:
        return json_response({"cookies": request.cookies})

    def stats(self, request: Request) -> Response:
        return json_response(
            {
                "requests": self.requests,
                "by_path": self.by_path,
                "registrations": self.registrations,
                "orders": list(self.orders),
                "logins": self.logins,
                "xmlrpc": self.xmlrpc.stats(),
                "grpc": self.grpc.stats() if self.grpc is not None else None,
                "websocket": self.sockets.stats(),
                "graphql": {**self.graphql_demo.stats(), "subscriptions": self.sockets.graphql.stats()},
            }
        )

    def rpc(self, request: Request) -> Response:
        return Response(200, self.xmlrpc.handle(request.body), "text/xml")

    def graphql(self, request: Request) -> Response:
        try:
            query, variables, operation = request_parts(request.method, request.query, request.json_body())
        except ValueError:
            raise HTTPError(400, "variables must be JSON") from None
        return json_response(self.graphql_demo.execute(query, variables, operation))

    def reset_state(self, request: Request) -> Response:
        self.reset()
        if self.grpc is not None:
            self.grpc.reset()
        return json_response({"status": "ok"})


def make_app() -> DemoShop:
    """A fresh demo shop WSGI application with empty state."""
    return DemoShop()
