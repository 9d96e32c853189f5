"""Debian's chromium, headless, driven by Playwright (no browser download), for the review
probes of tests/review (tests/review_page/conftest.py has the page tests' own fixtures)."""

import contextlib
import os

CHROMIUM = os.environ.get("DRYGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def chromium_page():
    """A fresh page in a fresh chromium (str paths, as .ci/run installs it)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise AssertionError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()
