"""The request side: one cached, concurrent client per build, and the endpoint check before it.

* :func:`preflight` asks the endpoint once (``GET /models``, a short timeout, no retries) before
  any work: an endpoint that is down, answers HTML or an error, or does not serve the model is
  one line (:class:`EndpointError`), not one per request.
* :class:`Client` sends (or replays from the :class:`~hexainst.builders.synthetic.cache.RequestCache`)
  one request per candidate; ``openai.AsyncOpenAI`` brings the retries, timeouts and
  ``Retry-After`` handling. A request that fails for good is a recorded rejection with the
  server's own explanation; when the first requests all fail and none succeeded, the endpoint
  is broken and the build stops with one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hexainst.builders.synthetic import prompts
from hexainst.builders.synthetic.cache import RequestCache
from hexainst.builders.synthetic.endpoint import Endpoint, redact_url
from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError

log = logging.getLogger(__name__)

#: A build stops when this many requests failed for good before any succeeded.
BROKEN_AFTER = 3


class EndpointError(UserError):
    """The endpoint is unreachable, answers something that is not the OpenAI wire format, or lacks the model."""


class OfflineCacheMiss(UserError):
    """Offline replay needs a request that is not in the cache."""


class MalformedResponse(ValueError):
    """A 200 answer that is JSON but not the OpenAI wire format."""


@dataclass
class Tally:
    requests: int = 0  # HTTP requests answered by the endpoint this run (each SDK retry is not counted)
    cache_hits: int = 0
    request_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    rejections: Counter = field(default_factory=Counter)

    def add_usage(self, usage: dict[str, Any] | None, cached: bool) -> None:
        usage = usage or {}
        p, c = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        if cached:
            self.cached_prompt_tokens += p
            self.cached_completion_tokens += c
        else:
            self.prompt_tokens += p
            self.completion_tokens += c
            self.reasoning_tokens += int(usage.get("reasoning_tokens") or 0)


def wire_answer(data: Any, route: str) -> dict[str, Any]:
    """The cache entry for a response body: content, reasoning, finish reason, usage."""
    try:
        choice = data["choices"][0]
        if route == "chat":
            msg = choice["message"]
            content, reasoning = msg.get("content"), msg.get("reasoning_content")
        else:
            content, reasoning = choice.get("text"), None
        finish = choice.get("finish_reason")
        raw_usage = data.get("usage") or {}
        usage = {"prompt_tokens": int(raw_usage.get("prompt_tokens") or 0),
                 "completion_tokens": int(raw_usage.get("completion_tokens") or 0)}
        details = raw_usage.get("completion_tokens_details") or {}
        if details.get("reasoning_tokens"):
            usage["reasoning_tokens"] = int(details["reasoning_tokens"])
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedResponse(f"not a {route} completion: {exc!r}") from None
    if content is not None and not isinstance(content, str):
        raise MalformedResponse("content is not a string")
    return {"content": content, "reasoning_content": reasoning, "finish_reason": finish, "usage": usage,
            "model": data.get("model")}


def _server_message(exc: Exception) -> str:
    """The explanation an API error carries (the server's ``error.message``), shortened."""
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
    if not msg:
        msg = getattr(exc, "message", None) or str(exc)
    msg = " ".join(str(msg).split())
    return msg[:300]


def preflight(endpoint: Endpoint, timeout: float = 15.0) -> list[str]:
    """Ask ``GET {base_url}/models`` once; return the model ids it lists.

    Raises :class:`EndpointError` (one line naming the URL) when the endpoint cannot be reached,
    answers an HTTP error or something that is not a model list (an HTML page, say), or when
    ``endpoint.model`` is set and not among the listed models.
    """
    import httpx  # deferred: httpx (~0.1 s); `hexainst --help` imports this module

    assert endpoint.base_url is not None
    request_url = endpoint.base_url.rstrip("/") + "/models"
    url = redact_url(request_url)  # what messages show
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    try:
        resp = httpx.get(request_url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        detail = str(exc).replace(request_url, url)
        raise EndpointError(f"endpoint {endpoint.host} is not reachable ({url}): {type(exc).__name__}: {detail}") from None
    if resp.status_code != 200:
        try:
            detail = _server_message(type("E", (), {"body": resp.json()})())
        except ValueError:
            detail = " ".join(resp.text.split())[:200]
        raise EndpointError(f"endpoint {endpoint.host}: GET {url} answered HTTP {resp.status_code}: {detail}")
    try:
        data = resp.json()
        ids = [str(m["id"]) for m in data["data"]]
    except (ValueError, KeyError, TypeError):
        kind = resp.headers.get("content-type", "unknown content type")
        raise EndpointError(
            f"endpoint {endpoint.host}: GET {url} did not answer an OpenAI model list ({kind}, starts "
            f"{resp.text[:60]!r}); is {endpoint.display_url} the API's base URL (often ending in /v1)?"
        ) from None
    if endpoint.model is not None and ids and endpoint.model not in ids:
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        raise EndpointError(f"model {endpoint.model!r} is not served by {endpoint.host}; it lists: {shown}")
    if not ids and endpoint.model is None:
        raise SettingError("model", f"is needed: endpoint {endpoint.host} lists no model")
    return ids


class Client:
    """Sends (or replays) the requests of a build; one instance per build."""

    def __init__(self, endpoint: Endpoint, cache: RequestCache, *, offline: bool, concurrency: int,
                 timeout: float, max_retries: int, starter: Any = None) -> None:
        """``starter``: a blocking callable that starts the endpoint (the embedded server) and
        returns its base URL; it is called on the first cache miss only, so a fully cached
        rerun never loads a model."""
        self.endpoint = endpoint
        self.cache = cache
        self.offline = offline
        self.tally = Tally()
        self.sem = asyncio.Semaphore(max(1, concurrency))
        self.client = None
        self.timeout, self.max_retries = timeout, max_retries
        self.starter = starter
        self._start_lock = asyncio.Lock()
        self._successes = 0
        self._failures: list[str] = []
        self._held: list[str] = []
        self.broken: EndpointError | None = None
        #: Cache keys of every answer this build used (replayed or fresh): what its generations file holds.
        self.used: set[str] = set()
        self.bar: Any = None  # a tqdm bar over requests, while a round runs
        if not offline and endpoint.base_url is not None:
            self._connect()

    def _connect(self) -> None:
        from openai import AsyncOpenAI  # deferred: openai (~0.4 s); `hexainst --help` imports this module

        self.client = AsyncOpenAI(base_url=self.endpoint.base_url, api_key=self.endpoint.api_key,
                                  timeout=self.timeout, max_retries=self.max_retries)

    async def _ensure_client(self) -> None:
        async with self._start_lock:
            if self.client is None:
                if self.starter is None:
                    raise UserError(f"no endpoint to send requests to ({self.endpoint.model})")
                self.endpoint.base_url = await asyncio.to_thread(self.starter)
                self._connect()

    async def _send(self, payload: Any, params: dict[str, Any]) -> dict[str, Any]:
        """POST one request through the SDK's client (its retries, timeouts and Retry-After
        handling) and read the JSON body ourselves: the SDK's typed request transform and
        response models cost ~10 ms of CPU per call, which is most of the client's time."""
        assert self.client is not None
        if self.endpoint.route == "chat":
            body = {"model": self.endpoint.model, "messages": payload, **params}
            data = await self.client.post("/chat/completions", body=body, cast_to=object)
        else:
            body = {"model": self.endpoint.model, "prompt": payload, **params}
            data = await self.client.post("/completions", body=body, cast_to=object)
        return wire_answer(data, self.endpoint.route)

    def first_answer_deadline(self) -> float:
        """Seconds a request may take, retries included, while the endpoint has answered none: one timeout,
        and half of one more for the SDK's retry of a slow start (a 429, a reset connection)."""
        return self.timeout * 1.5 + 5.0

    async def _first_answer(self, payload: Any, params: dict[str, Any]) -> dict[str, Any]:
        """:meth:`_send`, bounded in time until the endpoint has answered once: an endpoint that lists its
        model but never answers a completion stops the build with one line, instead of every request
        waiting through all its retries (minutes each, hours for a build)."""
        if self._successes:
            return await self._send(payload, params)
        deadline = self.first_answer_deadline()
        try:
            return await asyncio.wait_for(self._send(payload, params), deadline)
        except TimeoutError:
            if self.broken is None:
                self.broken = EndpointError(
                    f"endpoint {self.endpoint.display_url} answered no completion within {deadline:.0f} s "
                    f"(--timeout {self.timeout:g} s, then a retry), and none before; it lists its models but does "
                    "not answer: check the server, or give a longer --timeout")
            raise self.broken from None

    def _broken(self, what: str, line: str) -> None:
        """Record a failed request; stop the build when the first ones all failed. Lines about single
        failures are held back until a request succeeds (then the endpoint works and they matter)."""
        self._failures.append(what)
        if self._successes == 0:
            self._held.append(line)
            if len(self._failures) >= BROKEN_AFTER:
                self.broken = EndpointError(
                    f"endpoint {self.endpoint.host} failed the first {len(self._failures)} requests and answered "
                    f"none: {self._failures[0]}"
                )
                raise self.broken
        else:
            log.warning(line)

    async def answer(self, key: str, payload: Any, params: dict[str, Any], where: str,
                     prompt_version: str = "") -> dict[str, Any] | None:
        """The cached or fresh answer to a request; None if the request failed for good."""
        entry = self.cache.get(key)
        if entry is not None:
            self.used.add(key)
            self.tally.cache_hits += 1
            self.tally.add_usage(entry.get("usage"), cached=True)
            return entry
        if self.offline:
            raise OfflineCacheMiss(
                f"offline replay: no cached answer for {where} (cache key {key}) in {self.cache.dir}; "
                f"run without --offline to request it"
            )
        import openai  # deferred: openai (~0.4 s); `hexainst --help` imports this module

        if self.broken is not None:
            raise self.broken
        if self.client is None:
            await self._ensure_client()
        async with self.sem:
            if self.broken is not None:
                raise self.broken
            try:
                entry = await self._first_answer(payload, params)
            except (openai.APIStatusError, openai.APIConnectionError, openai.APITimeoutError) as exc:
                self.tally.request_failures += 1
                self.tally.rejections["request_failed"] += 1
                status = getattr(exc, "status_code", None)
                what = f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}: {_server_message(exc)}"
                self._broken(what, f"synthetic: request for {where} failed after retries: {what}")
                return None
            except (openai.APIResponseValidationError, json.JSONDecodeError, MalformedResponse) as exc:
                # A 200 whose body is not the wire format: not cached, so a rerun asks again.
                self.tally.requests += 1
                what = f"a 200 answer that is not an OpenAI completion ({exc})"
                self._broken(what, f"synthetic: answer for {where} is not an OpenAI completion: {exc}")
                return {"content": None, "finish_reason": "malformed_response", "usage": {}}
            finally:
                if self.bar is not None:
                    self.bar.update(1)
        self._successes += 1
        for line in self._held:
            log.warning(line)
        self._held.clear()
        self.tally.requests += 1
        self.tally.add_usage(entry["usage"], cached=False)
        # Written as soon as it arrives (a killed run loses nothing answered), with the request as
        # sent (never the key or the URL), so the generations can be published and replayed.
        entry["request"] = {"model": self.endpoint.model or "", "route": self.endpoint.route, "payload": payload,
                            "params": params, "prompt_version": prompt_version}
        self.cache.put(key, entry)
        self.used.add(key)
        return entry


def cost(model: str | None, tally: Tally) -> float | None:
    """USD cost of the tokens sent this run, from ``data/models.json`` prices (None when unknown)."""
    settings = prompts.model_table()["models"].get(model or "")
    if not settings or settings.get("price_input") is None:
        return None
    return round((tally.prompt_tokens * settings["price_input"] + tally.completion_tokens * settings["price_output"]) / 1e6, 6)
