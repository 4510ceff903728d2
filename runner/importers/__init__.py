"""Recordings in, scenarios out: ``lrun import`` (HAR 1.2, with automatic correlation).

The pipeline: ``har.read_har`` (a file to typed entries) -> ``filter.select`` (noise out, with a summary) ->
``correlate.correlate`` (values responses gave and later requests sent become extractors and templates) ->
``write.write_scenario`` (YAML with comments). ``verify.verify`` replays the result once against a host.
"""

from runner.importers.har import Entry, HarError, Recording, read_har

__all__ = ["Entry", "HarError", "Recording", "read_har"]
