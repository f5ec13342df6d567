"""A tiny random Qwen2 model folder for engine tests and benchmarks (not package code).

It loads in vLLM in seconds and generates noise quickly, and it needs no network.
``tests/engines/conftest.py`` builds one per session; ``bench/bench_vllm_batching.py`` builds
its own.
"""

from __future__ import annotations

from pathlib import Path

from ttscale.model_prep import _write_marker

_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer_corpus() -> str:
    """A few KB of text in the shape prompts and answers take (digits, cues, ChatML)."""
    lines = [
        "Question: What is {a} plus {b}? Let me think step by step. {a} + {b} = {c}. "
        "Wait, let me check: {c} - {b} = {a}. Final Answer: {c}",
        "Solve: {a} times {b}. Wait, {a} * {b} is {d}. Final Answer: \\boxed{{{d}}}",
    ]
    text = []
    for a in range(2, 31, 3):
        for b in range(3, 40, 7):
            for line in lines:
                text.append(line.format(a=a, b=b, c=a + b, d=a * b))
    text.append("The answer is 0 1 2 3 4 5 6 7 8 9 10 100 1000. Therefore, so, because.")
    return "\n".join(text)


def build_tiny_model(dir: Path, seed: int = 0) -> Path:
    """Write a tiny random Qwen2 model (2 layers, hidden 64) with a BPE tokenizer to ``dir``.

    For engine tests: it loads in vLLM in seconds and generates noise quickly. Needs no network.
    """
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    folder = Path(dir)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    # Exactly Qwen2Tokenizer's pipeline: transformers rebuilds it for model_type qwen2 whatever
    # tokenizer.json says, so training with another split would make the file lie.
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus().splitlines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=2048,
    )
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 32: the smallest vLLM's CPU attention supports
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=bpe.token_to_id("<|im_end|>"),
        pad_token_id=bpe.token_to_id("<|endoftext|>"),
        dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(folder)
    _write_marker(folder, {"source": "build_tiny_model", "seed": str(seed)})
    return folder
