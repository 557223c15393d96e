"""A fake Hugging Face Hub: just what ``huggingface_hub.snapshot_download`` calls.

A real aiohttp server on 127.0.0.1 (free port) in a background thread. Point a client at it
with ``HF_ENDPOINT=hub.url``. Each repository is a local directory whose files are served
(a fixed commit per repository, no Xet headers, so plain HTTP downloads are used):

* ``GET /api/models/{org}/{name}[/revision/{rev}]``: model info (``sha``, ``siblings``);
* ``GET /api/models/{org}/{name}/tree/{rev}``: the recursive file listing;
* ``GET``/``HEAD /{org}/{name}/resolve/{rev}/{file}``: the file, with ``ETag``,
  ``X-Repo-Commit`` and ``Content-Length``.

An unknown repository answers 404 with ``X-Error-Code: RepoNotFound``, an unknown revision
``RevisionNotFound``, an unknown file ``EntryNotFound``, as the Hub does. Every request path
is recorded in ``requests``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

__all__ = ["FakeHub"]


@dataclass
class _Repo:
    directory: Path
    revisions: set[str]
    commit: str

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.rglob("*") if p.is_file())


@dataclass
class FakeHub:
    repos: dict[str, _Repo] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_repo(self, repo_id: str, directory: Path, revisions: tuple[str, ...] = ()) -> str:
        """Serve ``directory`` as ``repo_id`` (revision ``main`` and ``revisions``); returns
        the repository's commit hash."""
        commit = hashlib.sha1(repo_id.encode()).hexdigest()  # an id, not security
        self.repos[repo_id] = _Repo(directory, {"main", *revisions}, commit)
        return commit

    def start(self) -> FakeHub:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="fake-hub", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # -- the API ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.path)
        self.requests.append(f"{request.method} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            repo = self._repo(repo_id)
            if not rest:
                return self._info(repo_id, repo)
            if rest[0] == "revision" and len(rest) == 2:
                self._revision(repo, rest[1])
                return self._info(repo_id, repo)
            if rest[0] == "tree" and len(rest) >= 2:
                self._revision(repo, rest[1])
                return self._tree(repo)
        elif len(parts) >= 5 and parts[2] == "resolve" and request.method in ("GET", "HEAD"):
            repo = self._repo("/".join(parts[:2]))
            self._revision(repo, parts[3])
            return self._file(repo, "/".join(parts[4:]))
        raise _error(404, "", "Not found")

    def _repo(self, repo_id: str) -> _Repo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise _error(401, "RepoNotFound", "Repository not found")
        return repo

    @staticmethod
    def _revision(repo: _Repo, revision: str) -> None:
        if revision not in repo.revisions and revision != repo.commit:
            raise _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _info(self, repo_id: str, repo: _Repo) -> web.Response:
        siblings = [{"rfilename": self._name(repo, p)} for p in repo.files()]
        body = {
            "_id": repo.commit[:24],
            "id": repo_id,
            "modelId": repo_id,
            "sha": repo.commit,
            "private": False,
            "disabled": False,
            "gated": False,
            "siblings": siblings,
        }
        return web.json_response(body)

    def _tree(self, repo: _Repo) -> web.Response:
        entries = [
            {
                "type": "file",
                "path": self._name(repo, p),
                "size": p.stat().st_size,
                "oid": _etag(p),
            }
            for p in repo.files()
        ]
        return web.json_response(entries)

    def _file(self, repo: _Repo, name: str) -> web.Response:
        file = (repo.directory / name).resolve()
        if not file.is_relative_to(repo.directory.resolve()) or not file.is_file():
            raise _error(404, "EntryNotFound", f"{name} does not exist")
        headers = {
            "ETag": f'"{_etag(file)}"',
            "X-Repo-Commit": repo.commit,
            "Content-Type": "application/octet-stream",
        }
        # aiohttp sends Content-Length, and no body to a HEAD request
        return web.Response(body=file.read_bytes(), headers=headers)

    @staticmethod
    def _name(repo: _Repo, file: Path) -> str:
        return file.relative_to(repo.directory).as_posix()


def _etag(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _error(status: int, code: str, message: str) -> web.HTTPException:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    cls = {401: web.HTTPUnauthorized, 404: web.HTTPNotFound}[status]
    return cls(headers=headers, text=f'{{"error": "{message}"}}', content_type="application/json")
