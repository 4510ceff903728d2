"""Walk a Django admin in headless Chromium (Playwright) with HAR recording on: ``record_django.py URL HAR``.

Logs in, adds a note, opens it by its link in the list (the id the application gave it), logs out. Every wait
is bounded. Run as a subprocess so that no gevent patching meets Playwright.
"""

from __future__ import annotations

import sys

from browser import launch


def main(url: str, har: str) -> None:
    with launch(record_har_path=har) as context:
        page = context.new_page()
        page.goto(f"{url}/admin/")
        page.fill("input[name=username]", "ada")
        page.fill("input[name=password]", "lovelace-1815")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        page.click("a[href='/admin/notes/note/add/']")
        page.fill("input[name=title]", "Shopping list")
        page.fill("textarea[name=body]", "milk and bread")
        page.click("input[name=_save]")
        page.wait_for_url("**/admin/notes/note/")
        page.click("#result_list a:text-is('Shopping list')")
        page.wait_for_url("**/change/")
        print(page.url)
        page.click("#logout-form button")
        page.wait_for_selector("text=Logged out")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
