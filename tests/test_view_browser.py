"""The viewer page in a real headless Chromium: list, filters, search, sort, j/k, jump, pairs, tool calls,
the overview and the rejected items, a sample's banner, the virtualised list, and no network at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import open_page
from tests.helpers import invoke
from tests.view_helpers import evaluated_row, preference_row, sample_rows, tool_row, write_jsonl, write_ledger

ROWS = [*sample_rows(30), preference_row(0), tool_row(0)]


@pytest.fixture(scope="module")
def page_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("view")
    source = write_jsonl(folder / "run.jsonl", ROWS)
    write_ledger(
        source,
        [
            {"item": 40, "id": "lost-040", "cause": "context_limit", "error": "prompt is 9000 tokens, limit 8192"},
            {"item": 41, "id": "lost-041", "cause": "content_filter", "error": "refused by the content filter"},
        ],
    )
    result = invoke("view", str(source), "-q")
    assert result.exit_code == 0, result.output
    return folder / "run.html"


def count_text(page: Any) -> str:
    return page.inner_text("#count")


def listed_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#list .item", "items => items.map(i => i.dataset.row)")


def wait_for_ids(page: Any, expected: list[str]) -> None:
    """Wait until the list shows exactly these rows (filters apply after a short debounce)."""
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#list .item')].map(i => i.dataset.row))"
        " === JSON.stringify(ids)",
        arg=expected,
    )


def shown_id(page: Any) -> str:
    return page.inner_text("#conversation h3")


def test_the_page_lists_every_row_and_makes_no_request(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    assert count_text(page) == "32 of 32 conversations"
    assert listed_ids(page)[:3] == ["row-00000", "row-00001", "row-00002"]
    assert page.errors == []
    assert page.requests == [page_path.resolve().as_uri()]  # the page itself, nothing else


def test_j_and_k_walk_the_list_and_the_conversation_shows_as_bubbles(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    page.keyboard.press("j")
    assert shown_id(page) == "row-00000"
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert shown_id(page) == "row-00002"
    page.keyboard.press("k")
    assert shown_id(page) == "row-00001"
    roles = page.eval_on_selector_all("#conversation .bubble", "bs => bs.map(b => b.dataset.role)")
    assert roles == ["user", "assistant", "user", "assistant"]  # row 1 has two turns
    assert "Answer 1.0: python lists" in page.inner_text("#conversation")
    facts = page.inner_text(".facts")
    for expected in ("good", "0.751", "a retired sysadmin", "doc-1-chunk-1", "openai/gpt-4o-mini", "$0.00020"):
        assert expected in facts
    assert "helpfulness feedback 1" in facts
    assert page.is_visible("#list .item.on[data-row='row-00001']")
    # reasoning is collapsed until opened
    assert not page.is_visible("#conversation details pre")
    page.click("#conversation details summary")
    assert page.inner_text("#conversation details pre") == "Thinking about python lists for row 1."


def test_filters_answer_by_grade_score_persona_turns_and_model(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    page.select_option("#f-grade", "perfect")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('6 of')")
    assert listed_ids(page) == [f"row-{i:05d}" for i in range(0, 30, 5)]
    page.click("#f-clear")
    page.fill("#f-score-min", "0.7")
    page.fill("#f-turns-min", "3")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('4 of')")
    assert listed_ids(page) == ["row-00005", "row-00011", "row-00020", "row-00026"]
    page.click("#f-clear")
    page.fill("#f-persona", "sysadmin")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('10 of')")
    page.click("#f-clear")
    page.select_option("#f-kind", "dup")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('2 of')")
    assert listed_ids(page) == ["row-00007", "row-00012"]
    page.click("#f-clear")
    page.fill("#f-chunk", "doc-3-chunk-0")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('3 of')")
    assert listed_ids(page) == ["row-00003", "row-00015", "row-00027"]


def test_search_finds_text_in_any_message_and_sort_orders_the_list(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    page.fill("#f-search", "ANSWER 17.1")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('1 of')")
    assert listed_ids(page) == ["row-00017"]
    page.fill("#f-search", "get_weather")  # tool call arguments and names are searchable too
    wait_for_ids(page, ["tool-000"])
    page.click("#f-clear")
    page.select_option("#f-sort", "score")
    page.check("#f-desc")
    page.wait_for_function("afterimageView.ids()[0] === 'row-00020'")
    ids = page.evaluate("afterimageView.ids()")
    assert ids[0] == "row-00020"  # perfect, with the largest bonus (20 % 7 == 6: 0.956)
    scores = [r["final_score"] for r in ROWS if r.get("final_score") is not None]
    assert page.inner_text("#list .item >> nth=0").find(f"{max(scores):.2f}") >= 0
    # rows without a score go last in either direction
    assert ids[-2:] == ["pref-000", "tool-000"]


def test_jump_to_an_id_opens_it_even_when_filtered_out(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    page.select_option("#f-grade", "bad")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('6 of')")
    page.fill("#f-jump", "row-00004")  # graded not_acceptable: not in the list
    page.press("#f-jump", "Enter")
    page.wait_for_function("document.querySelector('#conversation h3')?.textContent === 'row-00004'")
    assert count_text(page).startswith("32 of")  # the filters were cleared to show it in the list


def test_a_link_to_a_row_opens_it(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path, hash="#row=row-00009")
    assert shown_id(page) == "row-00009"


def test_preference_rows_show_chosen_and_rejected_side_by_side(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path, hash="#row=pref-000")
    assert page.inner_text("[data-side=chosen]").endswith("Tuples are slightly faster to create and iterate.")
    assert page.inner_text("[data-side=rejected]").endswith("Lists are always faster, use them everywhere.")
    chosen, rejected = (page.locator(f"[data-side={side}]").bounding_box() for side in ("chosen", "rejected"))
    assert abs(chosen["y"] - rejected["y"]) < 1 and rejected["x"] > chosen["x"] + chosen["width"] - 1
    assert '"margin": 0.6' in page.inner_text(".facts")


def test_tool_calls_show_their_arguments_and_results(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path, hash="#row=tool-000")
    call = page.inner_text("[data-call=call_weather_1]")
    assert "get_weather" in call and '"city": "Oslo"' in call
    result = page.inner_text(".bubble[data-role=tool]")
    assert "result of call_weather_1" in result and '"sky": "snow"' in result


def test_row_text_is_shown_as_text_never_run(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path, hash="#row=row-00005")
    assert "<script>alert(1)</script> tag </script>" in page.inner_text("#conversation")
    assert page.errors == []


def test_the_overview_draws_charts_and_links_duplicate_clusters(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    page.click("#tab-overview")
    assert page.is_visible("#overview") and not page.is_visible("#browse")
    assert page.locator("#overview svg").count() >= 5
    text = page.inner_text("#overview")
    assert "Near-duplicate clusters: 1" in text and "3 rows" in text
    page.click("#overview a[href='#row=row-00012']")
    page.wait_for_function("document.querySelector('#conversation h3')?.textContent === 'row-00012'")
    assert page.is_visible("#browse")


def test_the_rejected_page_lists_the_ledger_items_with_their_cause(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    assert page.inner_text("#tab-rejected") == "Rejected (2)"
    page.click("#tab-rejected")
    rows = page.eval_on_selector_all("#rejected-table tr[data-cause]", "rs => rs.map(r => r.dataset.cause)")
    assert rows == ["context_limit", "content_filter"]
    assert "prompt is 9000 tokens, limit 8192" in page.inner_text("#rejected")


def test_a_sample_says_so_and_the_list_stays_virtual(browser: Any, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "big.jsonl", [evaluated_row(i) for i in range(3000)])
    result = invoke("view", str(source), "--max-rows", "2000", "-o", str(tmp_path / "big.html"), "-q")
    assert result.exit_code == 0, result.output
    page = open_page(browser, tmp_path / "big.html")
    assert page.is_visible("#banner")
    assert "uniform sample of 2,000 of 3,000 rows (--max-rows 2,000)" in page.inner_text("#banner")
    assert count_text(page) == "2,000 of 2,000 conversations (a sample)"
    assert page.locator("#list .item").count() < 60  # only the rows in view are in the DOM
    page.eval_on_selector("#list", "l => { l.scrollTop = l.scrollHeight; }")
    page.wait_for_timeout(100)
    ids = listed_ids(page)
    assert ids[-1] == page.evaluate(
        "(() => { const d = JSON.parse(document.getElementById('afterimage-index')"
        ".textContent); return d.cols.id[d.cols.id.length - 1]; })()"
    )
