"""Walk the demo shop in headless Chromium (Playwright) with HAR recording on: ``record_shop.py URL HAR``.

Logs in on /shop (hidden session input; the page's JavaScript keeps the JSON token), goes to the checkout,
browses an item page, comes back to the checkout (a fresh CSRF meta tag and cart id) and orders (Bearer token,
CSRF header, a 303 to the receipt). Every wait is bounded. Run as a subprocess so that no gevent patching
meets Playwright.
"""

from __future__ import annotations

import sys

from browser import launch


def main(url: str, har: str) -> None:
    with launch(record_har_path=har) as context:
        page = context.new_page()
        page.goto(f"{url}/shop")
        page.fill("input[name=user]", "alice")
        page.fill("input[name=password]", "secret")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Welcome, alice")
        page.wait_for_load_state("networkidle")  # the HAR keeps the login's answer (the token) once it is in
        page.click("text=Go to checkout")
        page.wait_for_url("**/shop/checkout")
        page.goto(f"{url}/items/2?format=html")
        page.goto(f"{url}/shop/checkout")
        page.select_option("select[name=item]", "3")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Thank you: order")
        print(page.inner_text("#result"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
