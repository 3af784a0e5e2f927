"""The model an --api-base server serves decides the run and the cache, not its URL: another model loaded
behind the same URL is refused on the same output and never answered from the old model's cache, while
a replica serving the same model resumes the run."""

from __future__ import annotations

import orjson
import pytest

from tests.fakeserver import FakeOpenAIServer

from .evaluate_helpers import judge_responder
from .helpers import invoke, make_config, read_rows

FAST_RETRY = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.02}


@pytest.fixture
def llama() -> FakeOpenAIServer:
    """A server that, like llama.cpp or vLLM, names the model it serves in its answers."""
    server = FakeOpenAIServer(model_name="model-a", echo_model=False).start()
    yield server
    server.stop()


def generate(server, cfg, out, *extra: str):
    args = ("generate", str(cfg), "-o", str(out), "--model", "local", "--api-base", server.api_base)
    return invoke(*args, "-q", "--json", *extra)


def chat_calls(server) -> int:
    return server.stats["requests"]


def test_rows_record_the_served_model_asked_once_per_run(llama, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    result = generate(llama, cfg, tmp_path / "a.jsonl", "-n", "4")
    assert result.exit_code == 0, result.stderr
    rows = read_rows(tmp_path / "a.jsonl")
    assert len(rows) == 4
    for row in rows:
        assert row["metadata"]["models"] == {
            "respondent": "openai/local",
            "correspondent": "openai/local",
            "served": {"respondent": "model-a", "correspondent": "model-a"},
        }
    assert llama.stats["model_lists"] == 1


def test_a_gateway_in_openai_base_url_is_asked_what_it_serves_and_openai_is_not(llama, tmp_path, monkeypatch):
    """A URL from OPENAI_BASE_URL that is not api.openai.com is a server of yours, as an --api-base is."""
    monkeypatch.setenv("OPENAI_BASE_URL", llama.api_base)
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent={"model": "openai/local"})
    result = invoke("generate", str(cfg), "-o", str(tmp_path / "a.jsonl"), "-n", "2", "-q")
    assert result.exit_code == 0, result.stderr
    assert read_rows(tmp_path / "a.jsonl")[0]["metadata"]["models"]["served"]["respondent"] == "model-a"
    assert llama.stats["model_lists"] == 1
    from afterimage_cli.engine.served import asks_for_served_model
    from afterimage_cli.providers.factory import LLMFactory

    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert not asks_for_served_model(LLMFactory.create("openai/gpt-4o-mini"))


def test_another_served_model_is_refused_on_the_same_output_and_misses_the_cache(llama, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    out = tmp_path / "a.jsonl"
    assert generate(llama, cfg, out, "-n", "4").exit_code == 0
    before, calls = out.read_bytes(), chat_calls(llama)
    llama.model_name = "model-b"  # another model loaded into the same server, same URL
    result = generate(llama, cfg, out, "-n", "6")
    assert result.exit_code == 2
    assert "--overwrite" in result.stderr and "Traceback" not in result.stderr
    assert out.read_bytes() == before and chat_calls(llama) == calls
    result = generate(llama, cfg, tmp_path / "b.jsonl", "-n", "4")
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["cache_hits"] == 0
    assert chat_calls(llama) > calls  # model-b answered, not model-a's cache
    assert {r["metadata"]["models"]["served"]["respondent"] for r in read_rows(tmp_path / "b.jsonl")} == {"model-b"}


def test_a_replica_serving_the_same_model_resumes_with_no_new_calls(llama, tmp_path) -> None:
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    out = tmp_path / "a.jsonl"
    assert generate(llama, cfg, out, "-n", "4").exit_code == 0
    with FakeOpenAIServer(model_name="model-a", echo_model=False) as replica:
        result = generate(replica, cfg, out, "-n", "4")
        assert result.exit_code == 0, result.stderr
        assert chat_calls(replica) == 0 and len(read_rows(out)) == 4
        result = generate(replica, cfg, tmp_path / "copy.jsonl", "-n", "4")  # a new output: all from the cache
        assert result.exit_code == 0, result.stderr
        assert chat_calls(replica) == 0 and orjson.loads(result.stdout)["cache_hits"] > 0


def test_another_model_under_the_same_alias_is_told_apart(llama, tmp_path) -> None:
    llama.model_meta = {"n_params": 135_000_000, "size": 270_000_000}
    cfg = make_config(tmp_path, retry=FAST_RETRY)
    out = tmp_path / "a.jsonl"
    assert generate(llama, cfg, out, "-n", "3").exit_code == 0
    served = read_rows(out)[0]["metadata"]["models"]["served"]["respondent"]
    assert served.startswith("model-a#")
    llama.model_meta = {"n_params": 360_000_000, "size": 720_000_000}  # same --alias, other weights
    result = generate(llama, cfg, out, "-n", "3")
    assert result.exit_code == 2 and "--overwrite" in result.stderr


@pytest.mark.parametrize("provider", [None, "litellm"])
def test_without_a_model_list_the_first_answer_names_the_served_model(llama, tmp_path, provider) -> None:
    llama.models_status = 404
    respondent = {"model": "offline", **({"provider": provider} if provider else {})}
    cfg = make_config(tmp_path, retry=FAST_RETRY, respondent=respondent)
    out = tmp_path / "a.jsonl"
    result = generate(llama, cfg, out, "-n", "3")
    assert result.exit_code == 0, result.stderr
    assert {r["metadata"]["models"]["served"]["respondent"] for r in read_rows(out)} == {"model-a"}
    llama.model_name = "model-b"
    calls = chat_calls(llama)
    result = generate(llama, cfg, out, "-n", "3")
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert chat_calls(llama) == calls + 1  # the one-token request that asked


def test_evaluate_never_answers_from_another_judges_cache(llama, tmp_path) -> None:
    llama.responder = judge_responder()
    assert invoke("generate", str(make_config(tmp_path)), "-n", "3", "-q").exit_code == 0
    source = str(tmp_path / "out.jsonl")

    def evaluate(out: str):
        args = ("evaluate", source, "-o", str(tmp_path / out), "--judge-model", "judge", "--api-base", llama.api_base)
        result = invoke(*args, "-q", "--json")
        assert result.exit_code == 0, result.stderr
        return orjson.loads(result.stdout)["judge"]

    assert evaluate("a.jsonl")["cache_hits"] == 0
    assert evaluate("b.jsonl")["cache_hits"] == 3  # the same judge model: from the cache
    llama.model_name = "judge-b"
    calls = chat_calls(llama)
    assert evaluate("c.jsonl")["cache_hits"] == 0 and chat_calls(llama) == calls + 3


def test_served_id_describes_the_weights_when_the_server_does() -> None:
    from afterimage_cli.engine.served import pick_listed, served_id

    vllm = {"id": "default", "object": "model", "created": 123, "root": "Qwen/Qwen2.5-7B-Instruct", "parent": None}
    assert served_id(vllm).startswith("default#")
    assert served_id({**vllm, "created": 456}) == served_id(vllm)  # the request time is not the model
    assert served_id({**vllm, "root": "Qwen/Qwen2.5-3B-Instruct"}) != served_id(vllm)
    llama = {"id": "smollm2", "meta": {"n_vocab": 49152, "n_ctx": 512, "n_ctx_train": 8192, "n_params": 134515008}}
    bigger_context = {**llama, "meta": {**llama["meta"], "n_ctx": 4096}}  # the same weights, restarted
    assert served_id(bigger_context) == served_id(llama)
    assert served_id({**llama, "meta": {**llama["meta"], "n_params": 360000000}}) != served_id(llama)
    assert (
        served_id({"id": "Qwen/Qwen2.5-7B-Instruct", "root": "Qwen/Qwen2.5-7B-Instruct"}) == "Qwen/Qwen2.5-7B-Instruct"
    )
    listed = [{"id": "llama3.1:latest"}, {"id": "qwen2.5:7b"}]
    assert pick_listed(listed, "qwen2.5:7b") == {"id": "qwen2.5:7b"}
    assert pick_listed(listed, "mistral") is None  # ambiguous: the first answer says
    assert pick_listed([{"id": "/models/smollm2.gguf"}], "local") == {"id": "/models/smollm2.gguf"}


def test_evaluate_refuses_to_resume_an_output_judged_by_another_served_model(llama, tmp_path) -> None:
    llama.responder = judge_responder()
    assert invoke("generate", str(make_config(tmp_path)), "-n", "3", "-q").exit_code == 0
    args = ("evaluate", str(tmp_path / "out.jsonl"), "-o", str(tmp_path / "judged.jsonl"), "--judge-model", "judge")
    args += ("--api-base", llama.api_base, "-q")
    assert invoke(*args).exit_code == 0
    assert llama.stats["model_lists"] == 1  # asked once per evaluate, for the fingerprint and the cache keys
    assert invoke(*args).exit_code == 0  # the same served judge: resumes
    llama.model_name = "judge-b"  # another model loaded behind the same URL and alias
    result = invoke(*args)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert len(read_rows(tmp_path / "judged.jsonl")) == 3  # verdicts of one judge only
