"""Headless Chromium for the viewer's tests: Debian's chromium driven by the Playwright Python package.

Playwright's own browser download needs the internet; Debian's package does not (`make test` and CI
install it when missing). Without it the browser tests skip, saying why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module."""
    if chromium_path() is None:
        pytest.skip("no Chromium: install Debian's chromium package (`make test` does it when run as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        instance = launch(playwright)
        try:
            yield instance
        finally:
            instance.close()


def open_page(browser: Any, path: Path, *, hash: str = "") -> Any:
    """A fresh page on PATH (file://), ready once the viewer says so; errors and requests are recorded."""
    # The page's Content-Security-Policy forbids eval, which Playwright's wait_for_function uses itself.
    page = browser.new_page(viewport={"width": 1400, "height": 850}, bypass_csp=True)
    page.errors = []
    page.requests = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: (page.errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(path.resolve().as_uri() + hash)
    page.wait_for_function("window.__afterimageReady === true")
    return page
