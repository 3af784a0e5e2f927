"""A stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1, for the `afterimage push` tests.

It answers what `huggingface_hub` calls to create a dataset repo and commit a folder to it: repo
creation, the README's YAML validation, the repo tree, preupload (every file is a regular git blob, so
no LFS or Xet storage is involved), commit and repo info. Repos live in memory; every commit is kept
(message, files added and deleted) so a test can see what one push did. Requests need the token it was
started with. Paths it does not know are answered 404 and recorded in `unknown`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

# The Hub's documented values for the card fields the fake checks (huggingface.co/docs/hub/datasets-cards).
SIZE_CATEGORIES = {
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
    "other",
}
_REPO = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/(?P<action>tree|preupload|commit|revision)/(?P<rest>.*)$")


def git_blob_oid(content: bytes) -> str:
    """The git object id of a file, which `huggingface_hub` compares to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    message: str
    added: list[str]
    deleted: list[str]
    oid: str


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)


def card_problems(content: str) -> list[str]:
    """What the Hub's YAML validation would refuse in a dataset card (the fields afterimage writes)."""
    if not content.startswith("---\n"):
        return ["no YAML front matter"]
    header = yaml.safe_load(content[4:].split("\n---\n", 1)[0])
    problems = []
    for key in ("tags", "language", "task_categories", "size_categories"):
        value = header.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append(f'"{key}" must be a list of strings')
    for size in header.get("size_categories") or []:
        if size not in SIZE_CATEGORIES:
            problems.append(f'"size_categories" has an unknown value {size!r}')
    if not isinstance(header.get("license"), str):
        problems.append('"license" must be a string')
    for config in header.get("configs") or []:
        if not isinstance(config.get("config_name"), str) or not isinstance(config.get("data_files"), list):
            problems.append('"configs" entries need config_name and data_files')
    return problems


class FakeHub:
    """Serve in a daemon thread: `start()`, then point HF_ENDPOINT at `url`."""

    def __init__(self, token: str = "hf_test_token") -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.unknown: list[str] = []
        self.requests: list[str] = []
        self.fail_commits_with: int | None = None
        """An HTTP status to answer every commit with (a Hub outage or a refused write)."""
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="fakehub", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- requests ----

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(request.path).path
        self.requests.append(f"{method} {path}")
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._reply(request, 401, {"error": "Invalid credentials in Authorization header"})
        if method == "POST" and path == "/api/repos/create":
            return self._create(request, orjson.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            problems = card_problems(orjson.loads(body)["content"])
            status = 400 if problems else 200
            return self._reply(request, status, {"errors": [{"message": p} for p in problems], "warnings": []})
        match = _REPO.match(path)
        repo = self.repos.get(match["repo"]) if match else None
        if match is None or repo is None:
            self.unknown.append(f"{method} {path}")
            return self._reply(request, 404, {"error": "Repository not found"})
        action, repo_id = match["action"], match["repo"]
        if action == "tree":
            files = [{"type": "file", "path": p, "size": len(c), "oid": git_blob_oid(c)} for p, c in repo.files.items()]
            return self._reply(request, 200, files)
        if action == "preupload":
            asked = orjson.loads(body)["files"]
            answer = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_oid(repo.files[f["path"]]) if f["path"] in repo.files else None,
                }
                for f in asked
            ]
            return self._reply(request, 200, {"files": answer})
        if action == "commit":
            if self.fail_commits_with is not None:
                return self._reply(request, self.fail_commits_with, {"error": "The Hub is having a bad day"})
            return self._commit(request, repo_id, repo, body)
        head = repo.commits[-1].oid if repo.commits else "0" * 40
        siblings = [{"rfilename": p} for p in repo.files]
        return self._reply(request, 200, {"id": repo_id, "sha": head, "private": repo.private, "siblings": siblings})

    def _create(self, request: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        if payload.get("type") != "dataset":
            return self._reply(request, 400, {"error": "afterimage pushes datasets only"})
        if repo_id in self.repos:
            return self._reply(request, 409, {"error": "You already created this dataset repo", "url": url})
        private = payload.get("visibility") == "private" or payload.get("private") is True
        self.repos[repo_id] = Repo(private=private)
        return self._reply(request, 200, {"url": url, "name": repo_id})

    def _commit(self, request: BaseHTTPRequestHandler, repo_id: str, repo: Repo, body: bytes) -> None:
        lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        message, added, deleted = "", [], []
        for line in lines:
            value = line["value"]
            if line["key"] == "header":
                message = value["summary"]
            elif line["key"] == "file":
                repo.files[value["path"]] = base64.b64decode(value["content"])
                added.append(value["path"])
            elif line["key"] == "deletedFile":
                if value["path"] not in repo.files:
                    return self._reply(request, 400, {"error": "A file with this name doesn't exist"})
                del repo.files[value["path"]]
                deleted.append(value["path"])
        oid = hashlib.sha1(f"{repo_id}:{len(repo.commits)}".encode()).hexdigest()
        repo.commits.append(Commit(message, added, deleted, oid))
        url = f"{self.url}/datasets/{repo_id}/commit/{oid}"
        return self._reply(request, 200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = orjson.dumps(payload)
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
