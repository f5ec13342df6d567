"""A deterministic scripted engine for unit tests of strategy logic.

Never a default and never the source of a reported figure: reports flag runs made with it.
One character is one token, so token counts are easy to check by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
import zlib
from collections.abc import Sequence

from ttscale.engines.base import (
    Completion,
    EarlyStop,
    Generation,
    LocalTokenizer,
    SamplingSpec,
    TopLogprobs,
    capped_completion,
    first_early_stop,
)
from ttscale.engines.config import ScriptedEngineConfig

_QUESTION = re.compile(r"What is (\d+) (plus|minus|times) (\d+)")
_OPS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}


HESITANT = "check"
"""The word the scripted model writes with low confidence (its top token at ``HESITANT_P``)."""
HESITANT_P = 0.35
CONFIDENT_P = 0.9
VOCAB_SIZE = 0x110000
"""One token per Unicode code point."""

SETTLED = "so it is"
"""Script "settling": the trace's answer is settled once it has written "so it is N."."""
_FILLER = ["so", "then", "add", "carry", "check"]


class ScriptedEngine(LocalTokenizer):
    """Answers "What is A plus B?" questions: right with probability ``accuracy`` per sample.

    Script "arithmetic" (the default): thinking is a seeded run of filler words, then
    "Final Answer: N". A prompt that already ends in the answer cue gets just the number.

    Script "settling": one fixed trace per question (as greedy decoding gives), which a prompt
    ending in a prefix of it continues: filler, "so it is N." at a seeded position, more filler,
    then "Final Answer: N" (N right with probability ``accuracy``, seeded by the question). A
    prompt ending in the answer cue gets N once its thinking holds "so it is N.", and no answer
    before: the position where the answer settles is known (``settle_position``).

    Stop strings and ``max_tokens`` behave as in vLLM.
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

    def _answer(self, prompt: str, rng: random.Random) -> int:
        match = _QUESTION.search(prompt)
        gold = _OPS[match.group(2)](int(match.group(1)), int(match.group(3))) if match else 0
        return gold if rng.random() < self.config.accuracy else gold + rng.choice([-2, -1, 1, 3])

    def _script(self, prompt: str, seed: int) -> str:
        if self.config.script == "settling":
            return self._settling(prompt)
        rng = random.Random(seed)
        answer = self._answer(prompt, rng)
        if prompt.rstrip().endswith("Final Answer:"):
            return f" {answer}\n\n"
        filler = " ".join(rng.choice(_FILLER) for _ in range(rng.randint(3, 40)))
        return f"Let me think. {filler}.\nFinal Answer: {answer}"

    def settling_trace(self, prompt: str) -> str:
        """The "settling" script's whole trace for the question in ``prompt``."""
        match = _QUESTION.search(prompt)
        rng = random.Random(zlib.crc32(match.group(0).encode()) if match else 0)
        answer = self._answer(prompt, rng)
        before = " ".join(rng.choice(_FILLER) for _ in range(rng.randint(4, 30)))
        after = " ".join(rng.choice(_FILLER) for _ in range(rng.randint(10, 40)))
        return f"Let me think. {before}. {SETTLED} {answer}. {after}.\nFinal Answer: {answer}"

    @staticmethod
    def settle_position(thinking: str) -> int | None:
        """Characters (tokens) of ``thinking`` up to the end of its settled answer, if written."""
        found = re.search(rf"{SETTLED} -?\d+\.", thinking)
        return found.end() if found else None

    def _settling(self, prompt: str) -> str:
        written = prompt[prompt.rfind("<|assistant|>") + len("<|assistant|>") :]
        if prompt.rstrip().endswith("Final Answer:"):
            settled = re.search(rf"{SETTLED} (-?\d+)\.", written)
            return f" {settled.group(1)}\n\n" if settled else "\n\n"
        trace = self.settling_trace(prompt)
        return trace[len(written) :] if trace.startswith(written) else trace

    def _injected_failure(self, prompt_ids: Sequence[int], spec: SamplingSpec) -> bool:
        """Whether this attempt fails: seeded by request and attempt, at most twice a request."""
        key = (zlib.crc32(repr(list(prompt_ids)).encode()), spec.seed, spec.max_tokens)
        attempt = self._attempts.get(key, 0)
        if attempt >= 2:
            return False
        self._attempts[key] = attempt + 1
        return random.Random(f"{key}:{attempt}").random() < self.config.fail_rate

    @staticmethod
    def top_logprobs_of(text: str, k: int) -> tuple[TopLogprobs, ...]:
        """Synthetic top-``k`` logprobs of each character of ``text``: the top token has
        probability ``CONFIDENT_P``, or ``HESITANT_P`` inside the word ``HESITANT``; the rest of
        the mass is split evenly over k more tokens, k − 1 of which are in the top k."""
        if k < 1:
            return ()
        hesitant = [False] * len(text)
        for found in re.finditer(HESITANT, text):
            hesitant[found.start() : found.end()] = [True] * len(found.group())
        positions = []
        for unsure in hesitant:
            top = HESITANT_P if unsure else CONFIDENT_P
            positions.append((math.log(top), *[math.log((1 - top) / k)] * (k - 1)))
        return tuple(positions)

    async def generate_until(
        self, prompt_ids: Sequence[int], spec: SamplingSpec, should_stop: EarlyStop
    ) -> Generation:
        """``generate``, stopped right after the token where ``should_stop`` fires, as a
        streaming engine that aborts at once would."""
        return self.stopped(await self.generate(prompt_ids, spec), should_stop)

    def stopped(self, generation: Generation, should_stop: EarlyStop) -> Generation:
        """``generation``'s one completion cut right after the token where ``should_stop``
        fires (unchanged if it never does)."""
        (completion,) = generation.completions
        stopped = first_early_stop(completion.top_logprobs, should_stop)
        if stopped is None:
            return generation
        ids = completion.token_ids[:stopped]
        aborted = dataclasses.replace(
            completion,
            text=self.decode(ids),
            token_ids=ids,
            finish_reason="abort",
            stop_reason=None,
            cumulative_logprob=-0.1 * stopped,
            token_logprobs=completion.token_logprobs[:stopped],
            top_logprobs=completion.top_logprobs[:stopped],
            early_stop_at=stopped,
        )
        return dataclasses.replace(generation, completions=(aborted,))

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
            # Of the whole script, so a cut trace keeps the values its positions had uncut.
            top = self.top_logprobs_of(text, spec.top_logprobs)
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
                    top_logprobs=top[: len(ids)],
                    vocab_size=VOCAB_SIZE if spec.top_logprobs else None,
                )
            )
        return Generation(
            completions=tuple(completions), prompt_tokens=len(prompt_ids), latency_s=0.0
        )
