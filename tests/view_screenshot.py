"""The README's screenshot of `afterimage view`: `python -m tests.view_screenshot docs/viewer.png`.

Generates the offline quickstart (configs/quickstart.yaml), judges it with the fake server standing in
for a judge (scores vary by conversation), writes the page and photographs it in headless Chromium
with a conversation open. Nothing here reaches the network.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import zlib
from pathlib import Path

from tests.browser import launch
from tests.evaluate_helpers import judge_responder
from tests.fakeserver import FakeOpenAIServer
from tests.helpers import ROOT, invoke


def _score(criterion: str, transcript: str) -> float:
    """A judge whose scores vary by conversation and criterion, deterministically."""
    return round(0.35 + (zlib.crc32(f"{criterion}:{transcript}".encode()) % 650) / 1000, 3)


def build_page(folder: Path) -> Path:
    shutil.copytree(ROOT / "configs", folder / "configs")
    out = folder / "out" / "quickstart.jsonl"
    generated = invoke("generate", str(folder / "configs" / "quickstart.yaml"), "-o", str(out), "-n", "40", "-q")
    assert generated.exit_code == 0, generated.output
    server = FakeOpenAIServer().start()
    server.responder = judge_responder(_score)
    try:
        judged = invoke("evaluate", str(out), "--judge-model", "openai/gpt-4o", "--api-base", server.api_base, "-q")
        assert judged.exit_code == 0, judged.output
    finally:
        server.stop()
    page = folder / "out" / "quickstart.html"
    viewed = invoke("view", str(folder / "out" / "quickstart.evaluated.jsonl"), "-o", str(page), "-q")
    assert viewed.exit_code == 0, viewed.output
    return page


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/viewer.png").resolve()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        page_path = build_page(Path(tmp))
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1440, "height": 820}, bypass_csp=True)
            page.goto(page_path.as_uri())
            page.wait_for_function("window.__afterimageReady === true")
            page.select_option("#f-sort", "score")
            page.check("#f-desc")
            page.wait_for_timeout(300)
            page.click("#list .item >> nth=1")
            for _ in range(2):
                page.keyboard.press("j")
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target))
            page.goto(page_path.as_uri() + "#overview")
            page.wait_for_function("window.__afterimageReady === true")
            page.screenshot(path=str(target.with_name(target.stem + "-overview.png")), full_page=False)
            browser.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
