"""The viewer on tool rows: calls show their name and pretty arguments, results are tool bubbles named by their
tool and call, and the list filters by the tool a row calls (the page in headless Chromium; the column without)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser import open_page
from tests.helpers import invoke
from tests.test_export_support import write_jsonl
from tests.test_view_cli import embedded
from tests.tool_rows import plain_row, recovery_row, tool_row

ROWS = [tool_row(0), recovery_row(0), plain_row(0)]


@pytest.fixture(scope="module")
def page_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("view-tools")
    source = write_jsonl(folder / "tools.jsonl", ROWS)
    result = invoke("view", str(source), "-q")
    assert result.exit_code == 0, result.output
    return folder / "tools.html"


def test_the_page_embeds_the_tools_each_row_calls(page_path: Path) -> None:
    data = embedded(page_path.read_bytes())
    strings = data["strings"]
    called = [[strings[k] for k in refs] for refs in data["cols"]["tools"]]
    assert called == [["get_weather", "convert_currency", "book_table"], ["get_weather"], []]


def wait_for_ids(page: Any, expected: list[str]) -> None:
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#list .item')].map(i => i.dataset.row))"
        " === JSON.stringify(ids)",
        arg=expected,
    )


def test_tool_filter_and_bubbles(browser: Any, page_path: Path) -> None:
    page = open_page(browser, page_path)
    options = page.eval_on_selector_all("#f-tool option", "os => os.map(o => o.value)")
    assert options == ["", "book_table", "convert_currency", "get_weather"]
    page.select_option("#f-tool", "book_table")
    wait_for_ids(page, ["tools-000"])
    page.select_option("#f-tool", "get_weather")
    wait_for_ids(page, ["tools-000", "recovery-000"])
    page.select_option("#f-kind", "tool")
    page.select_option("#f-tool", "")
    wait_for_ids(page, ["tools-000", "recovery-000"])

    page = open_page(browser, page_path, hash="#row=tools-000")
    parallel = page.inner_text("[data-call=call_3]")
    assert "book_table" in parallel and '"restaurant": "Maaemo"' in parallel and '\n  "people": 2' in parallel
    step = page.locator(".bubble", has=page.locator("[data-call=call_2]"))
    assert step.locator("[data-call]").count() == 2 and "Let me do both." in step.inner_text()
    results = page.locator(".bubble[data-role=tool]")
    assert results.count() == 3
    assert "tool · book_table · result of call_3" in results.nth(2).inner_text()
    assert '"confirmed": true' in results.nth(2).inner_text()

    page = open_page(browser, page_path)
    page.click("#tab-overview")
    assert "5 (3 of 3 tools)" in page.inner_text("#overview")  # tool calls, and the tools called of those offered

    page = open_page(browser, page_path, hash="#row=recovery-000")
    assert '{"city": "Bergen"' in page.inner_text("[data-call=call_a]")  # invalid JSON is shown as written
    assert page.errors == []
