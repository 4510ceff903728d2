"""The files written from the results at the end of a run: CSV, HTML, JUnit XML, the JSON results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.outputs.handler import FileOutput, Output

if TYPE_CHECKING:
    from runner.config import RunSettings
    from runner.report.model import Results


class CsvOutput(FileOutput):
    setting, option, what, linked = "csv", "--csv", "CSV", False

    def __init__(self, path: str, full_history: bool = False) -> None:
        super().__init__(path)
        self.full_history = full_history

    @classmethod
    def of(cls, settings: RunSettings) -> Output | None:
        return cls(settings.csv, settings.csv_full_history) if settings.csv else None

    @property
    def shown(self) -> str:
        return f"{self.path}_*.csv"

    def write(self, results: Results) -> None:
        from runner.report.csv import write_csv

        write_csv(results, self.path, self.full_history)


class HtmlOutput(FileOutput):
    setting, option, what = "html", "--html", "HTML report"

    def write(self, results: Results) -> None:
        from runner.report.html import write_html

        write_html(results, self.path)


class JunitOutput(FileOutput):
    setting, option, what = "junit", "--junit", "JUnit XML"

    def write(self, results: Results) -> None:
        from runner.report.junit import write_junit

        write_junit(results, self.path)


class JsonOutput(FileOutput):
    """The results file; written last, so that when another output was lost it says the exit code the run ends
    with (1): the run gives it results marked so."""

    setting, option, what = "json", "--json", "results"

    def write(self, results: Results) -> None:
        from runner.report.results import write_json

        write_json(results, self.path)
