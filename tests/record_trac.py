"""Walk Trac in headless Chromium (Playwright) with HAR recording on: ``record_trac.py URL HAR``.

Opens the new-ticket form, creates a ticket (a 303 to it), opens the list of active tickets and the new ticket
by its link there, then adds a comment to it. Every wait is bounded. Run as a subprocess (no gevent here)."""

from __future__ import annotations

import sys

from browser import launch


def main(url: str, har: str) -> None:
    with launch(record_har_path=har) as context:
        page = context.new_page()
        page.goto(f"{url}/newticket")
        page.fill("#field-summary", "Printer jams")
        page.fill("#field-description", "on the third floor")
        page.click("input[name=submit]")
        page.wait_for_url("**/ticket/*")
        page.goto(f"{url}/report/1")
        page.click("td.summary a:text-is('Printer jams')")
        page.wait_for_url("**/ticket/*")
        print(page.url)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
