"""The report page (pipeline/page.py): its embedded data, escaping and self-containment (fast, no browser), and
the page itself in headless Chromium from file:// (search, filters, paging, deep links, untrusted text)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline import inspection, page
from pipeline import synthetic as synth
from pipeline.inspection import load_iteration, pair_kind
from tests.browser import assert_not_blank, browser, browser_page  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parent.parent

# ~90 pairs of all four kinds: more than one page of 50 cards
SYNTH = {"prompts": 40, "responses": 4, "judgments": 3, "meta_judged": 1, "verifiable": 0.3, "seed": 3}
EVIL = '</script><script>alert(1)</script><!--<script> <img src=x onerror="alert(2)"> & &amp; "q" \U0001F600 é'


def _iteration(root: Path, **args):
    synth.write_iteration(root, "M1", **{**SYNTH, **args})
    return load_iteration("M1", root)


@pytest.fixture(scope="module")
def synth_it(tmp_path_factory):
    return _iteration(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def evil_it(tmp_path_factory):
    """A small iteration whose first pair's texts (chosen response, thought, its first judgment, prompt) try to
    break out of the page: script end tags, comment openers, markup; and a character outside the BMP (UTF-16
    offsets)."""
    it = _iteration(tmp_path_factory.mktemp("evil"), prompts=4, verifiable=0.0)
    p = next(q for q in it.pairs.values() if q.kind == "response")
    r = it.responses[p.chosen_id]
    thought, response = "\U0001F600 thinking " + EVIL, "answer " + EVIL
    it.responses[r.response_id] = dataclasses.replace(
        r, thought=thought, response=response, output=f"Thought: {thought}\nAnswer: {response}")
    j = it.judgments_of[r.response_id][0]
    it.judgments[j.judgment_id] = dataclasses.replace(j, text="judged " + EVIL)
    it.prompts[p.prompt_id] = dataclasses.replace(it.prompts[p.prompt_id], instruction="asked " + EVIL)
    it.index()
    return it, p


def _script_elements(html: str) -> list[str | None]:
    """The type attribute of every <script> element an HTML parser finds."""
    from html.parser import HTMLParser

    found: list[str | None] = []

    class Scripts(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "script":
                found.append(dict(attrs).get("type"))

    Scripts().feed(html)
    return found


def _utf16_slice(text: str, span: list[int]) -> str:
    b = text.encode("utf-16-le")
    return b[2 * span[0]:2 * span[1]].decode("utf-16-le")


def _part(r: dict, field: str) -> str:
    v = r[field]
    return _utf16_slice(r["output"], v) if isinstance(v, list) else v


def _haystack(d: dict, p: dict) -> str:
    """What the page's search matches for one pair (mirrors haystack() in page.js)."""
    out = [p["id"], p["prompt_id"], p.get("prompt_text", "")]
    pr = d["prompts"].get(p["prompt_id"])
    if pr:
        out += [pr["instruction"], pr["input"] or ""]

    def response(rid, with_judgments):
        out.append(rid)
        r = d["responses"].get(rid)
        if r:
            out.extend([_part(r, "thought"), _part(r, "response")])
            for jid in (r["judgments"] or []) if with_judgments else []:
                out.extend([jid, d["judgments"][jid]["text"]])

    for role in ("chosen", "rejected"):
        sid = p[f"{role}_id"]
        if f"{role}_text" in p:
            out.extend([sid, p[f"{role}_text"]])
        elif p["kind"] in ("response", "verified"):
            response(sid, True)
        elif p["kind"] == "judgment":
            out.extend([sid, d["judgments"][sid]["text"]])
        elif p["kind"] == "reflection":
            f = d["reflections"][sid]
            out.extend([sid, f["text"], f["retry"]])
    if p.get("context_id"):
        response(p["context_id"], False)
    return "\n".join(out).lower()


# ---------------------------------------------------------------------------------------- no browser
def test_embedded_data_round_trips_and_references_resolve(synth_it):
    html = page.build_page(synth_it, compress=False)
    d = page.read_embedded(html)
    assert d == json.loads(json.dumps(page.page_data(synth_it)))
    assert d["key"] == "M1" and d["page_size"] == page.PAGE_SIZE
    assert [p["id"] for p in d["pairs"]] == sorted(
        synth_it.pairs, key=lambda i: page.KIND_ORDER.index(pair_kind(synth_it.pairs[i])))
    assert set(d["kinds"]) == {"response", "verified", "judgment", "reflection", "judge_training"}
    for p in d["pairs"]:
        src = synth_it.pairs[p["id"]]
        assert p["margin"] == pytest.approx(src.chosen_score - src.rejected_score)
        assert p["prompt_id"] in d["prompts"]
        if p["kind"] == "judge_training":  # judgments of a known pair: the pair carries their texts and the judge's prompt
            assert p["chosen_text"] and p["rejected_text"] and p["prompt_text"].startswith("A user gave")
            continue
        table = {"response": "responses", "verified": "responses", "judgment": "judgments",
                 "reflection": "reflections"}[p["kind"]]
        assert p["chosen_id"] in d[table] and p["rejected_id"] in d[table]
        if p["kind"] in ("judgment", "reflection"):
            assert p["context_id"] in d["responses"]
    for rid, r in d["responses"].items():  # thought and response stored as spans of the output reproduce them
        src = synth_it.responses[rid]
        assert (_part(r, "thought"), _part(r, "response")) == (src.thought, src.response)
        for jid in r["judgments"] or []:
            assert d["judgments"][jid]["text"] == synth_it.judgments[jid].text
    # each response / judgment stored once, and only the ones cards show
    shown = {p[k] for p in d["pairs"] for k in ("chosen_id", "rejected_id", "context_id") if k in p}
    assert set(d["responses"]) <= shown
    assert len(d["responses"]) < len(synth_it.responses)


def test_explanations_match_inspection(synth_it):
    """page_data computes pair_view's `why` on a per-prompt cut of the iteration (fast at paper scale): same
    answers as on the whole iteration."""
    d = page.page_data(synth_it)
    for p in d["pairs"]:
        assert p["why"] == inspection.explain_pair(synth_it, synth_it.pairs[p["id"]]), p["id"]
        assert p["reference"] == inspection.pair_view(synth_it, synth_it.pairs[p["id"]])["reference"]


def test_untrusted_text_cannot_end_the_script_element(evil_it):
    it, pair = evil_it
    html = page.build_page(it, compress=False)
    assert "</script><script>alert(1)" not in html
    assert "<!--<script>" not in html
    assert html.lower().count("</script") == 2  # the data element's and the code's own end tags only
    assert _script_elements(html) == ["application/json", None]  # as an HTML parser sees it
    d = page.read_embedded(html)
    assert d["prompts"][pair.prompt_id]["instruction"] == "asked " + EVIL
    r = d["responses"][pair.chosen_id]
    assert _part(r, "response") == "answer " + EVIL and _part(r, "thought") == "\U0001F600 thinking " + EVIL
    assert isinstance(r["response"], list)  # stored as a UTF-16 span even after a non-BMP character
    assert d["judgments"][r["judgments"][0]]["text"] == "judged " + EVIL
    assert "<\\/script>" in html


def test_a_side_whose_row_is_missing_shows_the_pairs_own_text(tmp_path):
    it = _iteration(tmp_path, prompts=3, verifiable=0.0)
    p = next(q for q in it.pairs.values() if q.kind == "response")
    del it.responses[p.chosen_id]
    del it.prompts[p.prompt_id]
    it.index()
    d = page.read_embedded(page.build_page(it))
    rec = next(x for x in d["pairs"] if x["id"] == p.pair_id)
    assert rec["chosen_text"] == p.chosen[-1]["content"] and "rejected_text" not in rec
    assert rec["prompt_text"] == p.prompt[-1]["content"]
    assert p.chosen_id in _haystack(d, rec) and p.chosen[-1]["content"].lower() in _haystack(d, rec)


def test_compressed_data_round_trips(synth_it):
    plain = page.build_page(synth_it, compress=False)
    packed = page.build_page(synth_it, compress=True)
    assert 'id="data-gz"' in packed and 'id="data"' not in packed
    assert page.read_embedded(packed) == page.read_embedded(plain)
    assert len(packed) < len(plain)
    assert page.build_page(synth_it) == plain  # small: plain JSON by default
    assert page.build_page(synth_it, compress=True) == packed  # deterministic (gzip mtime 0)


def test_page_is_self_contained(synth_it):
    html = page.build_page(synth_it, compress=False)
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", html, re.IGNORECASE)
    assert not re.search(r"<link\b|@import|url\(|<iframe\b|\bfetch\(|XMLHttpRequest|<script[^>]+src", html, re.IGNORECASE)
    data_start = html.index('<script type="application/json" id="data">')
    outside = html[:data_start] + html[html.index("</script>", data_start):]
    assert "http://" not in outside and "https://" not in outside
    for hook in ('id="search"', 'id="kind"', 'id="min-margin"', 'id="count"', 'id="prev"', 'id="next"',
                 'id="page-label"', "<svg"):
        assert hook in html


def test_header_counts_metrics_and_figures(synth_it):
    html = page.build_page(synth_it, compress=False)
    prof = inspection.profile(synth_it)
    for kind, n in prof["pairs_by_kind"].items():
        assert re.search(rf"<td>{kind}</td><td class=\"num\">{n:,}</td>", html)
    assert f"{len(synth_it.pairs)} preference pairs" in html
    assert "judge.parse_rate" in html  # a headline metric from metrics/M1/judge.json
    titles = [f["title"] for f in page.figures(synth_it)]
    assert titles[:3] == ["Judge scores", "Response lengths", "Elo ratings of judgments"]
    assert {t for t in titles if t.startswith("Margins")} == {f"Margins of {k} pairs" for k in prof["pairs_by_kind"]}
    assert html.count('<svg class="hist"') == len(titles)


def test_histogram_counts_every_value():
    svg = page.histogram_svg([0, 1, 1, 2.4, 5, 5, 5], "score", integer_bins=(0, 5))
    counts = [int(c) for c in re.findall(r"<title>[^<]*: (\d+)</title>", svg)]
    assert counts == [1, 2, 1, 0, 0, 3]
    svg = page.histogram_svg([float(x) for x in range(100)], "chars")
    assert sum(int(c) for c in re.findall(r"<title>[^<]*: (\d+)</title>", svg)) == 100
    assert "<title>" in page.histogram_svg([7.0, 7.0], "same")  # one value: one bin, no division by zero
    assert page.histogram_svg([], "nothing").startswith("<svg")


def test_write_page_is_atomic_and_returns_its_size(synth_it, tmp_path):
    out = tmp_path / "reports" / "M1" / "index.html"
    n = page.write_page(synth_it, out)
    assert n == out.stat().st_size and out.read_text(encoding="utf-8").startswith("<!doctype html>")
    out.write_text("old")
    assert page.write_page(synth_it, out) == n
    assert sorted(p.name for p in out.parent.iterdir()) == ["index.html"]  # no temporary file left


def test_a_page_that_cannot_be_written_is_one_line_and_leaves_nothing(synth_it, tmp_path, monkeypatch, capsys):
    """A file where a folder should be, a folder as --out, a read-only folder (faked: tests may run as root,
    whom permissions do not stop): one line naming the path; no folder made on the way stays."""
    import errno
    import os

    from pipeline.errors import OutputError
    from selfreward import cli

    synth.write_iteration(tmp_path / "project", "M2", **{**SYNTH, "prompts": 3, "verifiable": 0.0})
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match=r"notes.txt/r/index.html: cannot write — .*notes.txt is a file, not a "):
        page.write_page(synth_it, tmp_path / "notes.txt" / "r" / "index.html")
    with pytest.raises(OutputError, match="cannot write — it is a folder; name the HTML file"):
        page.write_page(synth_it, tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(page.tempfile, "mkstemp", denied)
    out = tmp_path / "reports" / "M1" / "index.html"
    with pytest.raises(OutputError) as e:
        page.write_page(synth_it, out)
    assert str(e.value).startswith(f"{out}: cannot write — Permission denied — ") and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "project"]  # reports/M1/ made is gone
    capsys.readouterr()
    root = tmp_path / "project"
    assert cli.main(["--root", str(root), "page", "M2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / 'reports/M2/index.html'}: cannot write — Permission denied")
    assert err.count("\n") == 1 and not (root / "reports").exists()


def test_cli_page_writes_reports_key_index(tmp_path, capsys):
    from selfreward import cli
    synth.write_iteration(tmp_path, "M2", **{**SYNTH, "prompts": 3, "verifiable": 0.0})
    assert cli.main(["--root", str(tmp_path), "page", "M2"]) == 0
    out = tmp_path / "reports" / "M2" / "index.html"
    assert str(out) in capsys.readouterr().out
    assert page.read_embedded(out.read_text(encoding="utf-8"))["key"] == "M2"


def test_demo_iteration(tmp_path):
    """The repository's own demo iteration (data/M1, a real tiny run), when its DVC outputs are checked out."""
    if not (REPO / "data" / "M1" / "responses.jsonl").is_file():
        pytest.skip("data/M1 is not checked out (dvc pull / dvc repro)")
    shutil.copytree(REPO / "data" / "M1", tmp_path / "data" / "M1")
    shutil.copytree(REPO / "metrics" / "M1", tmp_path / "metrics" / "M1")
    it = load_iteration("M1", tmp_path)
    d = page.read_embedded(page.build_page(it))
    assert [p["id"] for p in d["pairs"]] and len(d["pairs"]) == len(it.pairs)
    assert all(p["why"]["agrees"] for p in d["pairs"])


# ------------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def pages(tmp_path_factory, synth_it, evil_it):
    folder = tmp_path_factory.mktemp("pages")
    paths = {"plain": folder / "plain" / "index.html", "packed": folder / "packed" / "index.html",
             "evil": folder / "evil" / "index.html"}
    page.write_page(synth_it, paths["plain"], compress=False)
    page.write_page(synth_it, paths["packed"], compress=True)
    page.write_page(evil_it[0], paths["evil"])
    data = page.read_embedded(paths["plain"].read_text(encoding="utf-8"))
    return paths, data


def _open(p, path: Path, fragment: str = ""):
    p.goto(path.as_uri() + (f"#{fragment}" if fragment else ""))
    p.wait_for_function("document.getElementById('count').textContent.length > 0")


def _wait_count(p, text: str):
    p.wait_for_function("want => document.getElementById('count').textContent === want", arg=text)


def _card_ids(p) -> list[str]:
    return p.eval_on_selector_all("article.pair", "els => els.map(e => e.id)")


def test_page_opens_from_file_with_every_pair_counted(browser_page, pages):
    paths, d = pages
    total = len(d["pairs"])
    assert total > page.PAGE_SIZE
    _open(browser_page, paths["plain"])
    assert browser_page.inner_text("#count") == f"{total} of {total} pairs shown"
    pages_n = -(-total // page.PAGE_SIZE)
    assert browser_page.inner_text("#page-label") == f"page 1 of {pages_n}"
    assert _card_ids(browser_page) == [p["id"] for p in d["pairs"][:page.PAGE_SIZE]]
    kinds = browser_page.eval_on_selector_all("#kind option", "els => els.map(e => e.value)")
    assert kinds == ["", *d["kinds"]]
    assert browser_page.title() == "M1 · selfreward report"
    assert_not_blank(browser_page.screenshot())
    assert browser_page.errors == []


def test_compressed_page_opens_the_same(browser_page, pages):
    paths, d = pages
    _open(browser_page, paths["packed"])
    total = len(d["pairs"])
    assert browser_page.inner_text("#count") == f"{total} of {total} pairs shown"
    assert _card_ids(browser_page) == [p["id"] for p in d["pairs"][:page.PAGE_SIZE]]
    assert browser_page.errors == []


def test_search_narrows_cards_to_the_matching_pairs(browser_page, pages):
    paths, d = pages
    hays = {p["id"]: _haystack(d, p) for p in d["pairs"]}
    words = sorted({w for p in d["pairs"][:10] for w in re.findall(r"[a-z]{6,}", hays[p["id"]])})
    matches = {w: [p["id"] for p in d["pairs"] if w in hays[p["id"]]] for w in words}
    word = next(w for w in words if 2 <= len(matches[w]) <= 12)
    _open(browser_page, paths["plain"])
    browser_page.fill("#search", word.upper())  # case-insensitive
    _wait_count(browser_page, f"{len(matches[word])} of {len(d['pairs'])} pairs shown")
    assert _card_ids(browser_page) == matches[word]
    # two terms: both must occur; an id finds its pair
    target = d["pairs"][-1]
    browser_page.fill("#search", target["chosen_id"])
    _wait_count(browser_page, f"1 of {len(d['pairs'])} pairs shown")
    assert _card_ids(browser_page) == [target["id"]]
    browser_page.fill("#search", f"{word} zzzz-no-such-text")
    _wait_count(browser_page, f"0 of {len(d['pairs'])} pairs shown")
    assert _card_ids(browser_page) == []
    assert browser_page.errors == []


def test_kind_margin_length_filters_and_sort(browser_page, pages):
    paths, d = pages
    total = len(d["pairs"])
    _open(browser_page, paths["plain"])
    for kind in d["kinds"]:
        browser_page.select_option("#kind", kind)
        want = [p["id"] for p in d["pairs"] if p["kind"] == kind]
        _wait_count(browser_page, f"{len(want)} of {total} pairs shown")
        assert set(browser_page.eval_on_selector_all("article.pair", "els => els.map(e => e.dataset.kind)")) == {kind}
        assert _card_ids(browser_page) == want[:page.PAGE_SIZE]
    browser_page.select_option("#kind", "response")
    browser_page.fill("#min-margin", "2")
    want = [p["id"] for p in d["pairs"] if p["kind"] == "response" and p["margin"] >= 2]
    _wait_count(browser_page, f"{len(want)} of {total} pairs shown")
    assert _card_ids(browser_page) == want
    browser_page.click("#reset")
    browser_page.select_option("#length", "longer")
    want = [p["id"] for p in d["pairs"] if p["chosen_chars"] > p["rejected_chars"]]
    _wait_count(browser_page, f"{len(want)} of {total} pairs shown")
    assert _card_ids(browser_page) == want[:page.PAGE_SIZE]
    browser_page.click("#reset")
    browser_page.select_option("#sort", "margin-asc")
    _wait_count(browser_page, f"{total} of {total} pairs shown")
    by_margin = sorted(range(total), key=lambda i: (d["pairs"][i]["margin"], i))
    assert _card_ids(browser_page) == [d["pairs"][i]["id"] for i in by_margin[:page.PAGE_SIZE]]
    browser_page.select_option("#sort", "id")
    assert _card_ids(browser_page) == sorted(p["id"] for p in d["pairs"])[:page.PAGE_SIZE]
    assert browser_page.errors == []


def test_pager_moves_between_pages(browser_page, pages):
    paths, d = pages
    n = -(-len(d["pairs"]) // page.PAGE_SIZE)
    _open(browser_page, paths["plain"])
    assert browser_page.is_disabled("#prev") and not browser_page.is_disabled("#next")
    browser_page.click("#next")
    assert browser_page.inner_text("#page-label") == f"page 2 of {n}"
    assert _card_ids(browser_page) == [p["id"] for p in d["pairs"][page.PAGE_SIZE:2 * page.PAGE_SIZE]]
    browser_page.click("#prev")
    assert browser_page.inner_text("#page-label") == f"page 1 of {n}"
    assert browser_page.errors == []


def _in_view(p, element_id: str) -> bool:
    return p.evaluate("""id => { const r = document.getElementById(id).getBoundingClientRect();
                                 return r.top >= 0 && r.top < window.innerHeight; }""", element_id)


def test_deep_link_opens_the_page_of_the_pair_and_highlights_it(browser_page, pages):
    paths, d = pages
    target = d["pairs"][page.PAGE_SIZE + 7]  # on page 2
    _open(browser_page, paths["plain"], target["id"])
    browser_page.wait_for_selector(f"article.pair.highlight[id='{target['id']}']")
    assert browser_page.inner_text("#page-label").startswith("page 2 of ")
    assert _in_view(browser_page, target["id"])
    assert browser_page.eval_on_selector_all(".pair.highlight", "els => els.map(e => e.id)") == [target["id"]]
    # a row id a card shows (a response pair's rejected response) leads to its pair; hashchange, no reload
    other = next(p for p in d["pairs"][:page.PAGE_SIZE] if p["kind"] == "response")
    browser_page.evaluate("id => { location.hash = id; }", other["rejected_id"])
    browser_page.wait_for_selector(f"article.pair.highlight[id='{other['id']}']")
    assert browser_page.inner_text("#page-label").startswith("page 1 of ")
    assert _in_view(browser_page, other["id"])
    assert browser_page.eval_on_selector_all(".pair.highlight", "els => els.map(e => e.id)") == [other["id"]]
    side = browser_page.locator(f"article.pair[id='{other['id']}'] .side.rejected")
    assert "highlight" in side.get_attribute("class")
    # a pair hidden by the filters: they are cleared so it can be shown
    browser_page.select_option("#kind", "reflection")
    browser_page.evaluate("id => { location.hash = id; }", target["id"])
    browser_page.wait_for_selector(f"article.pair.highlight[id='{target['id']}']")
    assert browser_page.input_value("#kind") == ""
    # the permalink of a card is its own id
    href = browser_page.get_attribute(f"article.pair[id='{target['id']}'] a.permalink", "href")
    assert href == f"#{target['id']}"
    assert browser_page.errors == []


def test_untrusted_text_is_shown_as_text(browser_page, pages, evil_it):
    paths, _ = pages
    dialogs = []
    browser_page.on("dialog", lambda dlg: (dialogs.append(dlg.message), dlg.dismiss()))
    _, pair = evil_it
    _open(browser_page, paths["evil"], pair.pair_id)
    card = browser_page.locator(f"article.pair[id='{pair.pair_id}']")
    assert "answer " + EVIL in card.locator(".side.chosen pre.text").first.text_content()
    assert "asked " + EVIL in card.locator(".prompt-text pre").text_content()
    assert browser_page.locator("#cards img").count() == 0
    assert browser_page.locator("script").count() == 2
    browser_page.wait_for_timeout(100)
    assert dialogs == [] and browser_page.errors == []


def test_sides_stack_on_a_narrow_screen(browser_page, pages):
    paths, _ = pages
    _open(browser_page, paths["plain"])

    def boxes():
        first = browser_page.locator("article.pair").first
        return first.locator(".side.chosen").bounding_box(), first.locator(".side.rejected").bounding_box()

    browser_page.set_viewport_size({"width": 1280, "height": 800})
    chosen, rejected = boxes()
    assert rejected["x"] > chosen["x"] + chosen["width"] - 1 and abs(rejected["y"] - chosen["y"]) < 1
    browser_page.set_viewport_size({"width": 420, "height": 800})
    chosen, rejected = boxes()
    assert rejected["y"] >= chosen["y"] + chosen["height"] - 1
    assert browser_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert_not_blank(browser_page.screenshot())
