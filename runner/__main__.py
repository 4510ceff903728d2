"""``python -m runner``: the ``lrun`` command (how ``--processes`` starts its worker processes)."""

from runner.cli import main

main()
