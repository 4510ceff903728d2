"""Distributed runs: one master, many workers, over ZeroMQ.

- ``protocol``  every message, typed and versioned; encoding and checked decoding (start here)
- ``transport`` the ZeroMQ socket of either end: CURVE, handshake watching, the receive loop, sending
- ``cluster``   the master's workers without sockets: ``WorkerState``, membership, liveness, rebalance
- ``services``  what the master serves workers' users: pool rows, rendezvous, user ids, setup variables
- ``master``    ``MasterRunner`` (the wiring: drives workers, merges their statistics) and ``run_master``
- ``worker``    ``WorkerRunner``: a ``LocalRunner`` driven by the master's targets
- ``local``     ``--processes N``: worker processes on this machine
- ``bundle``    the scenario's files, sent to workers that have no copy

The master reuses the local run's ending (``runner.drive.drive``): same load shapes, thresholds, console, results
and outputs; the results gain a ``workers`` list.
"""
