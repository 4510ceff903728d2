"""The built-in demo target: a small "shop" web app that quickstarts, examples and tests load against.

``start_demo()`` runs it in a child process; ``runner.demo.server.serve`` runs it in this one;
``make_app()`` is the bare WSGI application.
"""

from runner.demo.app import make_app
from runner.demo.process import DemoProcess, start_demo

__all__ = ["DemoProcess", "make_app", "start_demo"]
