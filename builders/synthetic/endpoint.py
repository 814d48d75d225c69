"""Which endpoint to call and which model to ask for, from the settings and the environment (never
from files in the repo): :func:`resolve_endpoint` is the one place both are decided.

Precedence: explicit arguments, then ``HEXAINST_BASE_URL`` / ``HEXAINST_MODEL``. With no base
URL: if ``DEEPSEEK_API_KEY`` is set, DeepSeek's API with ``deepseek-reasoner`` (the project's
default generator); otherwise the embedded local model. A remote endpoint with no model named
gets the first model it lists. The key comes from
``OPENAI_API_KEY`` or ``DEEPSEEK_API_KEY``; it lives only in this object's ``api_key`` field,
which ``repr`` hides, and is never logged, cached or written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hexainst.builders.synthetic.generators import generator_registry
from hexainst.builders.synthetic.prompts import model_table
from hexainst.kernel import environment
from hexainst.kernel.errors import UserError
from hexainst.kernel.settings import SettingError

#: Placeholder sent to local servers that need no key (the SDK insists on one).
NO_KEY = "sk-no-key-needed"

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def redact_url(url: str | None) -> str | None:
    """``url`` without the credentials it may carry (``http://user:pass@host/v1`` -> ``http://***@host/v1``):
    what a message, a log or a stage file may show. Scheme, host, port and path are kept."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None and "@" in parts.netloc:
        return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
    if parts is None and "@" in url:  # not parseable: drop everything up to the last '@' after the scheme
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}" if sep else "***@" + url.rsplit("@", 1)[1]
    return url


@dataclass
class Endpoint:
    base_url: str | None  # None: the embedded generator, started by the builder
    model: str | None
    route: str = "chat"  # "chat" or "completions"
    embedded: str | None = None  # name of the embedded generator, if any
    api_key: str = field(default=NO_KEY, repr=False)

    @property
    def display_url(self) -> str:
        """The base URL as messages show it (credentials redacted), or the embedded generator's name."""
        return redact_url(self.base_url) or f"the embedded generator {self.embedded}"

    @property
    def host(self) -> str:
        """Host and port of the endpoint, without credentials or path.

        A loopback host is recorded without its port: local servers run on a free port that
        changes every run, and rows must not change with it.
        """
        if self.base_url is None:
            return "127.0.0.1"
        parts = urlsplit(self.base_url)
        if not parts.hostname:
            return "unknown"
        if parts.hostname in LOOPBACK:
            return parts.hostname
        return parts.hostname + (f":{parts.port}" if parts.port else "")


def requested(base_url: str | None = None, model: str | None = None,
              env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The endpoint and model name asked for: each argument, else ``$HEXAINST_BASE_URL`` / ``$HEXAINST_MODEL``.

    What a build records as its inputs, and the first step of :func:`resolve_endpoint`, which decides
    the endpoint and model from it.
    """
    return base_url or environment.base_url(env), model or environment.model(env)


def resolve_endpoint(base_url: str | None = None, model: str | None = None,
                     generator: str | None = None, env: Mapping[str, str] | None = None, *, offline: bool = False,
                     listed: Callable[[Endpoint], Sequence[str]] | None = None) -> Endpoint:
    """The endpoint to call and the model to ask for: the one place the generator's model is decided.

    The model: ``model``, else ``$HEXAINST_MODEL``, else DeepSeek's default model on DeepSeek, else
    (the embedded generator) its name, else the first model ``listed`` returns for a remote endpoint
    (the build passes :func:`~hexainst.builders.synthetic.client.preflight`, which also checks a named
    model is listed; it is not asked ``offline``). ``offline`` replays the request cache, which is
    keyed by model, so a remote endpoint there must have one named.
    """
    endpoint = _endpoint(*requested(base_url, model, env), generator, env)
    if endpoint.embedded is None:
        if offline:
            if endpoint.model is None:
                raise SettingError("model", "is needed for an offline replay (or $HEXAINST_MODEL): the request "
                                            "cache is keyed by model")
        elif listed is not None:
            ids = listed(endpoint)
            if endpoint.model is None:
                endpoint.model = ids[0]
    return endpoint


def _endpoint(base_url: str | None, model: str | None, generator: str | None,
              env: Mapping[str, str] | None) -> Endpoint:
    key = environment.api_key(env)
    default = model_table()["default_endpoint"]
    if base_url is None and generator is None and environment.is_set(default["key_env"], env):
        base_url, model = default["base_url"], model or default["model"]
    if base_url is None:
        reg = generator_registry()
        name = generator or reg["default"]
        if name not in reg["generators"]:
            raise UserError(f"unknown embedded generator {name!r}; known: {', '.join(sorted(reg['generators']))}")
        return Endpoint(None, name, route=reg["generators"][name]["route"], embedded=name)
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise UserError(f"base URL {redact_url(base_url)!r} (base_url or $HEXAINST_BASE_URL) is not a valid URL: "
                        f"{exc}") from None
    if not parts.scheme.startswith("http"):
        raise UserError(f"base URL {redact_url(base_url)!r} is not an http(s) URL")
    if host.endswith("deepseek.com"):
        if not key:
            raise UserError("the DeepSeek API needs a key: set DEEPSEEK_API_KEY (or OPENAI_API_KEY)")
        model = model or default["model"]
    return Endpoint(base_url, model, route="chat", api_key=key or NO_KEY)
