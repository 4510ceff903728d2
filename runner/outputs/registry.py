"""Every output lrun has, in the order the run calls them: the one place an output is registered.

To add one: write its class (``runner.outputs.handler.Output``, or ``FileOutput`` for a file written at the end)
with an ``of(settings)`` that picks the settings it needs, and add it here. A file output's path is checked before
the load starts (``runner.output_paths``). Files come after the live outputs and the results file (``JsonOutput``)
last of them: when another file was lost, it says the exit code the run ends with. The webhook is told last, once
the files are written.
"""

from __future__ import annotations

from runner.outputs.files import CsvOutput, HtmlOutput, JsonOutput, JunitOutput
from runner.outputs.handler import FileOutput, Output
from runner.outputs.jsonl import JsonLinesOutput
from runner.outputs.live import OtelOutput, PrometheusOutput, WebhookOutput

OUTPUTS: tuple[type[Output], ...] = (
    PrometheusOutput,
    OtelOutput,
    JsonLinesOutput,
    CsvOutput,
    HtmlOutput,
    JunitOutput,
    JsonOutput,
    WebhookOutput,
)

FILE_OUTPUTS: tuple[type[FileOutput], ...] = tuple(o for o in OUTPUTS if issubclass(o, FileOutput))
