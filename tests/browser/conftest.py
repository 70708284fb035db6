"""Headless Chromium for the report tests, driven through Playwright's Python API.

Playwright drives the system's Chromium (`executable_path`), never a browser it downloads
(`playwright install` is not needed). Missing Chromium or Playwright skips these tests on a
developer machine and fails them in CI (CI=true), where they must run.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import REPO_ROOT, in_ci

ARTIFACTS = REPO_ROOT / "test-artifacts"

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CHARTS_TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """$FARM_CHROMIUM when set (and only it), else the system's chromium."""
    chosen = os.environ.get("FARM_CHROMIUM")
    candidates = [chosen] if chosen else [shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A persistent Chromium context on a fresh user-data-dir, shared by a module's tests."""
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium not found (apt-get install chromium, or set FARM_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed (pip install 'farm[test]')")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, timeout=60_000,
        )
        try:
            yield context
        finally:
            context.close()


@dataclasses.dataclass
class OpenedPage:
    """A page with everything it did recorded: requests, console errors, uncaught errors, dialogs."""

    page: Any
    url: str
    requests: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    dialogs: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture(scope="module")
def open_page(browser) -> Callable[..., OpenedPage]:
    """open_page(path, width=1280) -> OpenedPage, loaded and with every chart drawn."""
    pages = []

    def opener(path: Path, width: int = 1280, height: int = 900) -> OpenedPage:
        page = browser.new_page()
        pages.append(page)
        opened = OpenedPage(page, Path(path).resolve().as_uri())
        page.set_viewport_size({"width": width, "height": height})

        def on_route(route):  # nothing but the report file may be fetched: record and refuse the rest
            if route.request.url == opened.url:
                route.continue_()
            else:
                route.abort()

        page.route("**/*", on_route)
        page.on("request", lambda request: opened.requests.append(request.url))
        page.on("console", lambda message: opened.errors.append(f"console.{message.type}: {message.text}")
                if message.type in ("error", "assert") else None)
        page.on("pageerror", lambda error: opened.errors.append(f"uncaught: {error}"))

        def on_dialog(dialog):
            opened.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(opened.url, wait_until="load")
        page.wait_for_selector("html[data-charts=drawn]", timeout=CHARTS_TIMEOUT_MS, state="attached")
        return opened

    yield opener
    for page in pages:
        page.close()
