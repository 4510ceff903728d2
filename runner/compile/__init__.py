"""The compile layer: a validated scenario becomes generated ``VirtualUser`` classes whose steps are closures.

``compiler`` drives it; ``templating`` (Jinja2 templates compiled once), ``extract`` (correlation),
``checkpoints``, ``jsonpath``, ``pools`` (a data pool's policies) and ``scripting`` (the scenario's Python
module) make the parts. Nothing here runs a test: the engine below runs what this layer builds.
"""
