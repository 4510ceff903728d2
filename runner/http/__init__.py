"""HTTP client of virtual users: one keep-alive session per user, cookies, redirects, timing."""

from runner.http.cookies import CookieJar
from runner.http.response import Response
from runner.http.session import NOTHING, HttpSession

__all__ = ["NOTHING", "CookieJar", "HttpSession", "Response"]
