"""Smoke test of the browser-test setup (tests/browser.py): a tiny page from file:// in headless Chromium."""

from __future__ import annotations

from tests.browser import assert_not_blank, browser, browser_page  # noqa: F401 (fixtures)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>smoke</title>
<style>
  body { font-family: sans-serif; margin: 16px; background: #fff; color: #111; }
  td { border: 1px solid #444; padding: 4px 8px; }
  tr.hidden { display: none; }
</style></head>
<body>
  <h1>Rows</h1>
  <input id="q" placeholder="search">
  <table id="rows">
    <tr><td>alpha</td><td>1</td></tr>
    <tr><td>beta</td><td>2</td></tr>
    <tr><td>gamma</td><td>3</td></tr>
  </table>
  <p id="count"></p>
  <script>
    const q = document.getElementById("q");
    function update() {
      let shown = 0;
      for (const row of document.querySelectorAll("#rows tr")) {
        const match = row.cells[0].textContent.includes(q.value.trim());
        row.classList.toggle("hidden", !match);
        shown += match;
      }
      document.getElementById("count").textContent = shown + " of 3 rows";
    }
    q.addEventListener("input", update);
    update();
  </script>
</body></html>
"""


def test_page_loads_and_search_filters_rows(browser_page, tmp_path):
    page = browser_page
    html = tmp_path / "smoke.html"
    html.write_text(PAGE, encoding="utf-8")
    page.goto(html.as_uri())

    assert page.title() == "smoke"
    assert page.inner_text("#count") == "3 of 3 rows"
    assert page.locator("#rows tr:visible").count() == 3

    page.locator("#q").press_sequentially("mm")  # real key events, one `input` event each
    assert page.input_value("#q") == "mm"
    assert page.inner_text("#count") == "1 of 3 rows"
    assert page.locator("#rows tr:visible td:first-child").all_inner_texts() == ["gamma"]

    assert_not_blank(page.screenshot(full_page=True))
    assert page.errors == []


def test_errors_are_collected(browser_page, tmp_path):
    """The fixture really sees console errors and uncaught exceptions (so `errors == []` above means something)."""
    page = browser_page
    html = tmp_path / "broken.html"
    html.write_text("<!doctype html><p>x</p><script>console.error('boom'); undefinedFunction();</script>",
                    encoding="utf-8")
    page.goto(html.as_uri())
    page.wait_for_function("true")  # one round trip, so both events have arrived
    assert any("console.error: boom" in e for e in page.errors), page.errors
    assert any(e.startswith("pageerror:") and "undefinedFunction" in e for e in page.errors), page.errors
