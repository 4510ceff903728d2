"""lrun capacity: the highest open-model arrival rate that meets every condition (``search``: the rules,
``step``: one step as a run, ``run``: the search and its outputs, ``command``: its input checked)."""
