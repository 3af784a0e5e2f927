from __future__ import annotations

import pytest

from afterimage_cli.config_loader import load_config
from afterimage_cli.engine.fingerprint import run_fingerprint
from afterimage_cli.overrides import Overrides, apply_overrides

from .helpers import make_config


@pytest.fixture
def cfg(tmp_path):
    return load_config(make_config(tmp_path, respondent={"model": "openai/m", "api_base": "http://127.0.0.1:1/v1"}))


@pytest.mark.parametrize(
    "flags",
    [
        Overrides(num=999),
        Overrides(concurrency=3),
        Overrides(output="elsewhere.jsonl"),
        Overrides(api_base="http://127.0.0.1:2/v1"),
        Overrides(no_cache=True, max_cost=1.0, max_total_tokens=10),
    ],
)
def test_operational_flags_keep_the_fingerprint(cfg, flags) -> None:
    assert run_fingerprint(apply_overrides(cfg, flags)) == run_fingerprint(cfg)


@pytest.mark.parametrize(
    "flags", [Overrides(seed=123), Overrides(model="openai/other"), Overrides(max_turns=1), Overrides(user_model="u/x")]
)
def test_content_flags_change_the_fingerprint(cfg, flags) -> None:
    assert run_fingerprint(apply_overrides(cfg, flags)) != run_fingerprint(cfg)


@pytest.mark.parametrize(
    "section,change",
    [
        ("respondent", {"rpm": 100, "tpm": 10_000, "max_concurrency": 4, "timeout": 5, "provider": "litellm"}),
        ("respondent", {"input_cost_per_million": 1.0, "adaptive_concurrency": False, "api_key_env": "K"}),
        ("retry", {"max_attempts": 2}),
        ("error_budget", {"window": 5}),
        ("cache", {"enabled": False}),
        ("budget", {"max_cost_usd": 3.0}),
        ("retriever", {"path": "elsewhere", "collection": "other", "embedding": {"batch_size": 8}}),
        ("persona_generation", {"concurrency": 9}),
    ],
)
def test_operational_fields_keep_the_fingerprint(tmp_path, section, change) -> None:
    base = {"respondent": {"model": "openai/m"}, "retriever": {}, "persona_generation": {}}
    cfg = load_config(make_config(tmp_path, **base))
    merged = {**base, section: {**base.get(section, {}), **change}}
    assert run_fingerprint(load_config(make_config(tmp_path, **merged))) == run_fingerprint(cfg)


@pytest.mark.parametrize(
    "section,change",
    [
        ("respondent", {"temperature": 0.1}),
        ("generation", {"system_prompt": "Be terse."}),
        ("personas", ["someone else"]),
        ("retriever", {"top_k": 7}),
    ],
)
def test_content_fields_change_the_fingerprint(tmp_path, section, change) -> None:
    base = {"respondent": {"model": "openai/m"}, "retriever": {}}
    cfg = load_config(make_config(tmp_path, **base))
    merged = {**base, section: change if isinstance(change, list) else {**base.get(section, {}), **change}}
    assert run_fingerprint(load_config(make_config(tmp_path, **merged))) != run_fingerprint(cfg)
