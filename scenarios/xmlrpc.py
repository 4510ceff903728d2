"""XML-RPC from Python: each call is timed with ``user.measure`` and reported as a request of method ``xmlrpc``.

Any protocol goes the same way (gRPC, a database, a queue): time the call in ``with user.measure(METHOD, NAME)``;
an exception in the block, or ``call.fail("why")``, makes it a failed request. Under ``lrun`` the standard
library is patched for gevent, so ``xmlrpc.client`` waits without blocking the other users.
"""

import random
from xmlrpc.client import ServerProxy

_proxies: dict[int, ServerProxy] = {}  # one connection per virtual user, kept alive between its calls


def _proxy(user) -> ServerProxy:
    if user.user_id not in _proxies:
        _proxies[user.user_id] = ServerProxy(f"{user.host.rstrip('/')}/RPC2", allow_none=True)
    return _proxies[user.user_id]


def add(user):  # - call: add
    a, b = random.randint(1, 100), random.randint(1, 100)
    with user.measure("xmlrpc", "add") as call:
        total = _proxy(user).add(a, b)
        if total != a + b:
            call.fail(f"add({a}, {b}) returned {total}")


def item(user, item_id):  # - {call: item, args: {item_id: 3}}; an unknown id is a fault: a failed request
    found = None
    with user.measure("xmlrpc", "item") as call:
        found = _proxy(user).item(int(item_id))
        call.size = len(str(found))
    return found  # None when the call failed (the failure is reported; the iteration goes on)


def close(user):  # on_stop
    proxy = _proxies.pop(user.user_id, None)
    if proxy is not None:
        proxy("close")()
