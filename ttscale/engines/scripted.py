"""A deterministic scripted engine for unit tests of strategy logic.

Never a default and never the source of a reported figure: reports flag runs made with it.
One character is one token, so token counts are easy to check by hand.
"""

from __future__ import annotations

import asyncio
import random
import re
import zlib
from collections.abc import Sequence

from ttscale.engines.base import (
    Completion,
    Generation,
    LocalTokenizer,
    SamplingSpec,
    capped_completion,
)
from ttscale.engines.config import ScriptedEngineConfig

_QUESTION = re.compile(r"What is (\d+) (plus|minus|times) (\d+)")
_OPS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}


class ScriptedEngine(LocalTokenizer):
    """Answers "What is A plus B?" questions: right with probability ``accuracy`` per sample.

    Thinking is a seeded run of filler words, then "Final Answer: N". A prompt that already ends
    in the answer cue gets just the number. Stop strings and ``max_tokens`` behave as in vLLM.
    """

    def __init__(self, config: ScriptedEngineConfig | None = None) -> None:
        self.config = config or ScriptedEngineConfig()
        self.name = f"scripted:{self.config.script}"
        self.requests = 0
        self.fail_every: int | None = None  # tests: every k-th request fails (recoverably)
        self._attempts: dict[tuple[int, int | None, int], int] = {}

    def encode(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(chr(t) for t in token_ids)

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        rendered = "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages)
        return self.encode(rendered + "<|assistant|>")

    def versions(self) -> dict[str, str]:
        return {
            "engine": "scripted",
            "script": self.config.script,
            "accuracy": str(self.config.accuracy),
        }

    async def close(self) -> None:
        return None

    def prefix_completion(
        self, completion: Completion, spec: SamplingSpec, max_tokens: int
    ) -> Completion | None:
        """What ``spec`` capped at ``max_tokens`` returns: the script does not depend on
        ``max_tokens`` (one character, one token), so the cut is exact."""
        text = self.decode(completion.token_ids[:max_tokens])
        return capped_completion(completion, max_tokens, text, -0.1 * max_tokens, spec.stop)

    def _script(self, prompt: str, seed: int) -> str:
        rng = random.Random(seed)
        match = _QUESTION.search(prompt)
        gold = _OPS[match.group(2)](int(match.group(1)), int(match.group(3))) if match else 0
        answer = gold if rng.random() < self.config.accuracy else gold + rng.choice([-2, -1, 1, 3])
        if prompt.rstrip().endswith("Final Answer:"):
            return f" {answer}\n\n"
        filler = " ".join(
            rng.choice(["so", "then", "add", "carry", "check"]) for _ in range(rng.randint(3, 40))
        )
        return f"Let me think. {filler}.\nFinal Answer: {answer}"

    def _injected_failure(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> bool:
        """Whether this attempt fails: seeded by request and attempt, at most twice a request."""
        key = (zlib.crc32(repr(list(prompt_ids)).encode()), spec.seed, spec.max_tokens)
        attempt = self._attempts.get(key, 0)
        if attempt >= 2:
            return False
        self._attempts[key] = attempt + 1
        return random.Random(f"{key}:{attempt}").random() < self.config.fail_rate

    async def generate(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> Generation:
        from ttscale.errors import EngineRequestError

        self.requests += 1
        if self.config.delay_s:
            # Spread (seeded) so that units of one shard finish at different times, as in vLLM.
            jitter = 0.5 + random.Random(spec.seed).random()
            await asyncio.sleep(self.config.delay_s * jitter)
        if self.fail_every and self.requests % self.fail_every == 0:
            raise EngineRequestError("scripted transient failure")
        if self.config.fail_rate and self._injected_failure(prompt_ids, spec):
            raise EngineRequestError("scripted transient failure (fail_rate)")
        prompt = self.decode(prompt_ids)
        completions = []
        for i in range(spec.n):
            seed = (spec.seed or 0) * 1009 + i
            text = self._script(prompt, seed)
            finish, stop_reason = "stop", None
            for stop in spec.stop:
                cut = text.find(stop)
                if cut >= 0:
                    text, stop_reason = text[: cut + len(stop)], stop
                    break
            if len(text) > spec.max_tokens:
                text, finish, stop_reason = text[: spec.max_tokens], "length", None
            ids = tuple(self.encode(text))
            completions.append(
                Completion(
                    text=text,
                    token_ids=ids,
                    finish_reason=finish,  # type: ignore[arg-type]
                    stop_reason=stop_reason,
                    cumulative_logprob=-0.1 * len(ids),
                    token_logprobs=tuple(-0.1 for _ in ids),
                )
            )
        return Generation(
            completions=tuple(completions), prompt_tokens=len(prompt_ids), latency_s=0.0
        )
