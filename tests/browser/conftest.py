"""Headless Chromium for the dashboard's browser tests, driven by Playwright.

The browser is Debian's `chromium` at /usr/bin/chromium (no browser download; `make test` installs it when
it is missing and the user may): a test skips locally when it is missing and fails when CI=true. Each test
gets a fresh page (its own context: no shared cookies or session storage); a script error on the page fails
the test. Screenshots go to a temporary folder, or to `BNLAB_SCREENSHOTS_DIR` when set (`make screenshots`
points it at docs/screenshots/).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from tests.fixtures.requirements import require

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}
ASSERTION_TIMEOUT_MS = 30_000

Screenshot = Callable[[Page, str], Path]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    require(CHROMIUM.exists(), f"Chromium at {CHROMIUM} (Debian's chromium package)")
    expect.set_options(timeout=ASSERTION_TIMEOUT_MS)  # a loaded 2-core machine trains slowly
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab in a context of its own; fails the test if a script on the page threw."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ASSERTION_TIMEOUT_MS)
    opened = context.new_page()
    script_errors: list[str] = []
    opened.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not script_errors, f"the page threw: {script_errors}"


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("BNLAB_SCREENSHOTS_DIR")
    if not configured:
        return tmp_path_factory.mktemp("screenshots")
    directory = Path(configured)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def screenshot(screenshot_dir: Path) -> Screenshot:
    """Saves the whole page as `<name>.png` and returns its path."""

    def take(page: Page, name: str) -> Path:
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path

    return take
