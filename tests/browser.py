"""Helpers for real headless-Chromium tests: Playwright for Python driving Debian's `chromium` package.

Not a test file. A test module imports the fixtures it uses (pytest then registers them for that module):

    from tests.browser import assert_not_blank, browser, browser_page  # noqa: F401 (fixtures)

    def test_x(browser_page, tmp_path):
        browser_page.goto((tmp_path / "x.html").as_uri())
        assert browser_page.errors == []

`browser` is module-scoped (one Chromium per test module, ~0.5 s to start); `browser_page` is a fresh context and
page per test, with console errors and uncaught page errors collected in `page.errors` (a list of str).

Without Chromium or the playwright package the tests skip with the reason; under CI (CI=true) they fail instead,
since CI must really run them (.ci/run installs Debian's chromium; requirements.txt pins playwright).

Notes from setting this up (Debian 12, chromium 156.0.8078.79, playwright 1.64.1 whose own build is Chromium 156):
- Playwright never downloads a browser here (its CDN is unreachable): we always pass `executable_path`. Keep the
  playwright pin close to Debian's Chromium major (playwright 1.64.x <-> Chromium 156, 1.65 <-> 159); a browser far
  newer than the driver can break on protocol changes. Override the binary with SELFREWARD_CHROMIUM=/path.
- /usr/bin/chromium is Debian's shell wrapper (it sources /etc/chromium.d/*). It prints a harmless
  "[: ...: unexpected operator" on stderr where /dev/shm shows up twice in findmnt; launching still works, and
  /usr/lib/chromium/chromium (the real binary) works the same.
- As root the sandbox cannot start ("Chromium sandboxing failed!"): Playwright already passes --no-sandbox unless
  chromium_sandbox=True; we list it anyway so the intent is visible.
- Playwright's `--headless` is the new headless mode (old headless is gone from Chromium since 132), and it already
  adds --disable-dev-shm-usage, --disable-background-networking, --disable-component-update, --disable-sync and
  --no-first-run, which matter on a machine without network (no lookups of Google's hosts at start).
- --disable-gpu: no GPU here; software rendering. Screenshots render fine with it (and without it).
- Fonts: the base image has fonts-dejavu-core (fontconfig depends on a font), enough for text to render;
  --no-install-recommends skips fonts-liberation, which nothing here needs.
- Timings measured here (2 shared cores): driver start ~0.4 s, launch ~0.2-0.3 s, new page ~0.3 s,
  file:// load ~0.1 s, screenshot ~0.3 s.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator

import pytest

ENV_VAR = "SELFREWARD_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu"]
DEFAULT_TIMEOUT_MS = 10_000  # a failing wait should fail fast, not after Playwright's 30 s
VIEWPORT = {"width": 800, "height": 600}


def chromium_executable() -> str | None:
    """The Chromium to drive: $SELFREWARD_CHROMIUM (a path or a name on PATH), else chromium, chromium-browser or
    google-chrome on PATH; None when there is none (or the env var names nothing runnable)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        return shutil.which(env)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI (CI=true), where browser tests must run."""
    if in_ci():
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _missing_chromium_reason() -> str:
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return f"{ENV_VAR}={env!r} is not an executable file nor a command on PATH"
    return (f"no Chromium found ({', '.join(CANDIDATES)} not on PATH): "
            "install it with `apt-get install -y --no-install-recommends chromium` or set " + ENV_VAR)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium (a playwright.sync_api.Browser) for the whole test module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        unavailable(f"the playwright package is missing ({e}): pip install -r requirements.txt")
    exe = chromium_executable()
    if exe is None:
        unavailable(_missing_chromium_reason())
    # A launch failure with a browser present is a real failure: let it raise, locally too.
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def browser_page(browser) -> Iterator[object]:
    """A fresh context and page per test; `page.errors` collects console errors and uncaught exceptions."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
    errors: list[str] = []
    page.errors = errors

    def on_console(msg) -> None:
        if msg.type == "error":
            loc = msg.location or {}
            errors.append(f"console.error: {msg.text} ({loc.get('url', '')}:{loc.get('lineNumber', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    try:
        yield page
    finally:
        context.close()


def assert_not_blank(png_bytes: bytes, min_std: float = 2.0, min_colors: int = 3) -> None:
    """Fail when a PNG screenshot is one flat colour (nothing rendered): needs some grey-level spread."""
    from PIL import Image, ImageStat

    assert png_bytes[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    img = Image.open(io.BytesIO(png_bytes)).convert("L")
    std = ImageStat.Stat(img).stddev[0]
    colors = img.getcolors(maxcolors=256) or []  # None only when over 256, impossible for "L"
    assert img.width > 0 and img.height > 0, "empty image"
    assert std >= min_std and len(colors) >= min_colors, (
        f"screenshot looks blank: {img.width}x{img.height}, grey stddev {std:.2f}, {len(colors)} grey levels")
