"""The ``parallel:`` step: a user's requests sent at once, as a browser fetches a page's resources.

Each request runs in a greenlet of its own (at most ``max_connections`` at once) and is reported as it would
be alone; over HTTP/2 they are streams of the user's one connection, over HTTP/1.1 each takes an idle
connection to its origin or opens one (the session keeps up to six per origin). The step ends when all have
ended; a flow signal or an error of one of them is raised afterwards, the first in the group's order. With a
``name`` the group is timed as a transaction, failed when one of its requests failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import gevent
from gevent.pool import Pool

from runner.engine.user import Step, Think, VirtualUser
from runner.scenario.model import ParallelStep


def compile_parallel(step: ParallelStep, requests: Sequence[Step], think: Think | None) -> list[Step | Think]:
    """The group as one step (and the user's think time after it, if any)."""
    name = step.name
    lanes = min(step.max_connections, len(requests))

    def lane(request: Step, user: VirtualUser) -> BaseException | None:
        try:
            request(user)
        except Exception as exc:  # flow signals too: raised in the user's greenlet once all have ended
            return exc
        return None

    def run(user: VirtualUser) -> None:
        if name is not None:
            user.begin_transaction(name)
        session = user.session
        session.parallel = True  # a deadline timer per request: each greenlet is interrupted on its own
        pool = Pool(lanes)
        greenlets = []
        try:
            greenlets = [pool.spawn(lane, request, user) for request in requests]
            gevent.joinall(greenlets)
        except BaseException:
            gevent.killall(greenlets)  # the user was stopped: its requests go with it
            raise
        finally:
            session.parallel = False
        for greenlet in greenlets:
            if greenlet.value is not None:
                raise greenlet.value
        if name is not None:
            user.end_transaction()

    return [run] if think is None else [run, think]
