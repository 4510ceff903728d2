"""The compile layer: a validated scenario becomes generated ``VirtualUser`` classes whose steps are closures.

``compiler`` drives it; ``extract`` (correlation), ``checkpoints``, ``pools`` (a data pool's policies) and
``parallel`` make the parts, with the language's template engine and Python module (``scenario.templating``,
``scenario.scripting``); other protocols' steps compile in ``runner/protocols/``. Nothing here runs a test: the
engine below runs what this layer builds.
"""
