"""Bench scenarios for processes that share things: the response cache, the README pipeline, the index.

- cache: CPU per call of `afterimage generate` with the response cache on minus with it off, for one
  process alone and for three started at once on one cache file. Every call is a miss (each run has its
  own seed), so every call costs a lookup and a write. Refused cache writes (warnings) are counted.
- pipeline: `generate -o - | evaluate - | export - --format sharegpt` on the quickstart config against the
  fake server, cache on; rows/s from the start to the last exported row.
- index: start-up cost of a local retrieval index: the first run (embed, write the vectors file, load
  into memory) and every later one (read the file, load), for the bundled corpus and for 10k chunks.

Run it alone with `python -m tests.bench_sharing [--quick]` (it starts its own fake server); `make bench`
calls `run_all`.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.bench import (
    ROOT,
    BenchError,
    afterimage_cmd,
    child_env,
    http,
    note,
    run_standalone,
    table,
    write_config,
)

CONCURRENCY = 64
LATENCY = 0.05
PIPELINE_CONCURRENCY = 64


@dataclass
class CacheRun:
    """`processes` runs of n single-turn conversations started at once, with the cache on or off."""

    processes: int
    cache: bool
    calls: int
    cpu_ms_per_call: float  # client CPU (user+sys of the whole process) per call, over all the processes
    wall_s: float
    refused: int  # "warning: response cache …" lines: writes SQLite refused


def _reap(proc: subprocess.Popen[bytes]) -> tuple[bytes, Any]:
    """Wait for a child: (its stdout, its own rusage)."""
    assert proc.stdout is not None
    stdout = proc.stdout.read()  # a --json summary: one short line
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return stdout, usage


def cache_run(api_base: str, workdir: Path, processes: int, cache: bool, n: int, seed: int) -> CacheRun:
    """Start `processes` generate runs at once (seeds seed, seed+1, …) on one cache; wait for all."""
    respondent = {"model": "openai/fake-model", "provider": "openai_compat", "api_base": api_base}
    started = time.perf_counter()
    children = []
    for i in range(processes):
        config = workdir / f"cache-{seed + i}.yaml"
        write_config(config, respondent, CONCURRENCY)
        cfg = yaml.safe_load(config.read_text())
        cfg["cache"] = {"enabled": cache, "path": str(workdir / "shared-cache.sqlite")}
        config.write_text(yaml.safe_dump(cfg))
        args = [*afterimage_cmd(), "generate", str(config), "-n", str(n), "--seed", str(seed + i)]
        args += ["-o", str(config.with_suffix(".jsonl")), "--overwrite", "--json", "-q"]
        err = workdir / f"{config.stem}.err"
        with open(err, "wb") as fh:
            proc = subprocess.Popen(args, cwd=workdir, env=child_env(workdir), stdout=subprocess.PIPE, stderr=fh)
        children.append((proc, err))
    calls, cpu, refused = 0, 0.0, 0
    for proc, err in children:
        stdout, usage = _reap(proc)
        text = err.read_text(errors="replace")
        if proc.returncode != 0:
            raise BenchError(f"cache run: exit {proc.returncode}: {text[-800:]}")
        summary = orjson.loads(stdout.strip().splitlines()[-1])
        if summary["rows_total"] != n:
            raise BenchError(f"cache run: {summary['rows_total']}/{n} rows")
        calls += summary["calls"]
        cpu += usage.ru_utime + usage.ru_stime
        refused += text.count("warning: response cache")
    return CacheRun(processes, cache, calls, 1000 * cpu / max(calls, 1), time.perf_counter() - started, refused)


def cache_scenarios(api_base: str, workdir: Path, n: int) -> list[CacheRun]:
    """1 and 3 processes, cache off then on; seeds never repeat, so the cache only ever misses."""
    runs = []
    for seed, (processes, cache) in enumerate([(1, False), (1, True), (3, False), (3, True)]):
        note(f"cache: {processes} process(es), cache {'on' if cache else 'off'}, n={n} each …")
        runs.append(cache_run(api_base, workdir, processes, cache, n, seed=100 * (seed + 1)))
    return runs


def pipeline(api_base: str, workdir: Path, n: int) -> tuple[float, int]:
    """(rows/s, rows) of the README's three-stage pipeline on the quickstart config."""
    work = workdir / "pipeline"
    shutil.copytree(ROOT / "configs", work / "configs")
    cmd = afterimage_cmd()
    gen_args = [*cmd, "generate", "configs/quickstart.yaml", "--model", "fake-model", "--api-base", api_base]
    gen_args += ["-o", "-", "-n", str(n), "--concurrency", str(PIPELINE_CONCURRENCY), "-q"]
    judge_args = [*cmd, "evaluate", "-", "--judge-model", "fake-model", "--api-base", api_base, "-q"]
    judge_args += ["--concurrency", str(PIPELINE_CONCURRENCY)]
    out = work / "train.jsonl"
    env = child_env(work)
    started = time.perf_counter()
    with open(work / "stderr.txt", "wb") as err:
        gen = subprocess.Popen(gen_args, cwd=work, env=env, stdout=subprocess.PIPE, stderr=err)
        judge = subprocess.Popen(judge_args, cwd=work, env=env, stdin=gen.stdout, stdout=subprocess.PIPE, stderr=err)
        assert gen.stdout is not None and judge.stdout is not None
        gen.stdout.close()
        export_args = [*cmd, "export", "-", "--format", "sharegpt", "-o", str(out), "-q"]
        export = subprocess.Popen(export_args, cwd=work, env=env, stdin=judge.stdout, stderr=err)
        judge.stdout.close()
        codes = [p.wait(timeout=600) for p in (gen, judge, export)]
    elapsed = time.perf_counter() - started
    rows = sum(1 for line in out.read_bytes().splitlines() if line.strip()) if out.exists() else 0
    if codes != [0, 0, 0] or rows != n:
        errors = (work / "stderr.txt").read_text(errors="replace")[-800:]
        raise BenchError(f"pipeline: exit codes {codes}, {rows}/{n} rows: {errors}")
    return n / elapsed, rows


def _chunks(n: int) -> list[Any]:
    """n chunks of ~90 words drawn from the README (a stand-in corpus of realistic vocabulary)."""
    from afterimage_cli.documents.models import Chunk

    words = (ROOT / "README.md").read_text().split()
    rnd = random.Random(1)
    return [
        Chunk(id=f"c{i}", document_id=f"d{i // 10}", index=i % 10, text=" ".join(rnd.choices(words, k=90)), source="x")
        for i in range(n)
    ]


def index_start(workdir: Path, chunks: list[Any]) -> tuple[float, float]:
    """(first run: build + load, later run: load) seconds for a local index of `chunks`."""
    import qdrant_client  # noqa: F401  (imported before the clock starts: a run imports it anyway)

    from afterimage_cli.retrieval.qdrant import QdrantRetriever

    folder = str(workdir / f"index-{len(chunks)}")
    times = []
    for _ in range(2):
        retriever = QdrantRetriever(chunks, path=folder)
        started = time.perf_counter()
        retriever.ensure_index()
        times.append(time.perf_counter() - started)
        retriever.close()
    return times[0], times[1]


def index_scenarios(workdir: Path, quick: bool) -> list[tuple[str, int, float, float]]:
    """(corpus, chunks, first run s, later run s) for the bundled corpus and a large one."""
    from afterimage_cli.config import DocumentsConfig
    from afterimage_cli.documents.corpus import load_corpus

    # The quickstart's chunking of the bundled corpus.
    docs = DocumentsConfig(sources=[str(ROOT / "configs" / "corpus")], chunk_size=600, chunk_overlap=100)
    corpora = [("bundled", list(load_corpus(docs).chunks)), ("synthetic", _chunks(2_000 if quick else 10_000))]
    rows = []
    for name, chunks in corpora:
        note(f"index: {name}, {len(chunks):,} chunks …")
        first, later = index_start(workdir, chunks)
        rows.append((name, len(chunks), first, later))
    return rows


def run_all(server_url: str, workdir: Path, quick: bool) -> list[str]:
    """Every scenario; the Markdown lines of their tables."""
    http(server_url + "/_knobs", {"latency": LATENCY})
    api_base = server_url + "/v1"
    cache = cache_scenarios(api_base, workdir, 500 if quick else 3_000)
    note("pipeline …")
    rate, rows = pipeline(api_base, workdir, 200 if quick else 2_000)
    index = index_scenarios(workdir, quick)
    by = {(r.processes, r.cache): r for r in cache}
    lines = [f"#### Sharing the response cache (direct transport, concurrency {CONCURRENCY}, {LATENCY * 1000:.0f} ms)"]
    body = []
    for processes in (1, 3):
        off, on = by[(processes, False)], by[(processes, True)]
        body.append(
            [str(processes), f"{on.calls:,}", f"{off.cpu_ms_per_call:.3f}", f"{on.cpu_ms_per_call:.3f}"]
            + [f"{on.cpu_ms_per_call - off.cpu_ms_per_call:+.3f}", f"{off.wall_s:.1f}", f"{on.wall_s:.1f}"]
            + [str(on.refused)]
        )
    head = ["processes", "calls (cache on)", "CPU ms/call, off", "CPU ms/call, on", "cache overhead ms/call"]
    head += ["wall s, off", "wall s, on", "refused writes"]
    lines += ["", table([head, *body]), ""]
    lines.append(f"#### README pipeline (quickstart, generate | evaluate | export, {LATENCY * 1000:.0f} ms latency)")
    lines += ["", table([["rows", "rows/s"], [f"{rows:,}", f"{rate:,.1f}"]]), ""]
    lines.append("#### Local retrieval index: start-up")
    head = ["corpus", "chunks", "first run (embed, write, load) s", "later runs (read, load) s"]
    lines += ["", table([head, *[[c, f"{k:,}", f"{a:.2f}", f"{b:.2f}"] for c, k, a, b in index]])]
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_standalone(__doc__, "sharing", run_all, argv)


if __name__ == "__main__":
    raise SystemExit(main())
