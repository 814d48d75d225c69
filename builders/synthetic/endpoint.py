"""Which endpoint to call, from the CLI and the environment (never from files in the repo).

Precedence: explicit arguments, then ``HEXAINST_BASE_URL`` / ``HEXAINST_MODEL``. With no base
URL: if ``DEEPSEEK_API_KEY`` is set, DeepSeek's API with ``deepseek-reasoner`` (the project's
default generator); otherwise the embedded local model. The key comes from
``OPENAI_API_KEY`` or ``DEEPSEEK_API_KEY``; it lives only in this object's ``api_key`` field,
which ``repr`` hides, and is never logged, cached or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hexainst.builders.synthetic.generators import generator_registry
from hexainst.builders.synthetic.prompts import model_table
from hexainst.kernel import environment
from hexainst.kernel.errors import UserError

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

    The one place the generator's model name is resolved from the settings and the environment
    (what a build records as its inputs); :func:`resolve_endpoint` then picks the default endpoint
    when none is asked for, and a build takes the first model an endpoint lists when none is named.
    """
    return base_url or environment.base_url(env), model or environment.model(env)


def resolve_endpoint(base_url: str | None = None, model: str | None = None,
                     generator: str | None = None, env: Mapping[str, str] | None = None) -> Endpoint:
    base_url, model = requested(base_url, model, env)
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
        raise UserError(f"base URL {redact_url(base_url)!r} (--base-url or $HEXAINST_BASE_URL) is not a valid URL: "
                        f"{exc}") from None
    if not parts.scheme.startswith("http"):
        raise UserError(f"base URL {redact_url(base_url)!r} is not an http(s) URL")
    if host.endswith("deepseek.com"):
        if not key:
            raise UserError("the DeepSeek API needs a key: set DEEPSEEK_API_KEY (or OPENAI_API_KEY)")
        model = model or default["model"]
    return Endpoint(base_url, model, route="chat", api_key=key or NO_KEY)
