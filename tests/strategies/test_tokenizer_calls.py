"""Strategies' tokenizer calls leave the event loop free (fast, a stdlib HTTP server on loopback).

Against an OpenAI-compatible server, a strategy's prompt building (chat template, cue encoding)
and its token split (bisection by decoding) are HTTP requests. A shard runs every unit on one
event loop, so a blocking call would stall them all: here a ticker coroutine runs beside two
units, and the server notes the ticker's count when each tokenizer request arrives and when it
answers; the count must have moved during every one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from json_server import json_server

from ttscale.engines.config import OpenAIEngineConfig
from ttscale.engines.openai import OpenAICompatibleEngine
from ttscale.prompts import PROFILES
from ttscale.runner import Unit, attempt_unit
from ttscale.schemas import Question
from ttscale.strategies.kinds.budget_forcing import BudgetForcingConfig
from ttscale.strategies.kinds.majority import MajorityConfig

TOKENIZER_DELAY_S = 0.1
# The served model's vocabulary: every completion is these five tokens, so "Final Answer:" (the
# plain profile's end of thinking) first appears in the decoded prefix of 4 tokens.
VOCAB = {10: "Let ", 11: "me ", 12: "think.\n", 13: "Final Answer:", 14: " 5"}
COMPLETION = {
    "choices": [
        {
            "index": 0,
            "text": "".join(VOCAB.values()),
            "token_ids": list(VOCAB),
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3},
}
Q = Question(id="q", question="What is 2 plus 3?", answer="5", dataset="arithmetic")


class Ticks:
    """How often the ticker coroutine has run; the server thread reads it."""

    count = 0


class Tokenizing:
    """What the server saw: (path, ticks when the request arrived, ticks when it answered)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, int]] = []


def _answer(path: str, body: dict[str, Any]) -> dict[str, Any]:
    if path == "/v1/completions":
        return COMPLETION
    if path == "/detokenize":
        return {"prompt": "".join(VOCAB.get(t, "?") for t in body["tokens"])}
    # /tokenize: a chat (three ids) or a text (one id per word; the ids are never decoded).
    return {"tokens": [1, 2, 3] if "messages" in body else [4] * len(body["prompt"].split())}


@pytest.fixture()
def server() -> Iterator[tuple[str, Tokenizing]]:
    seen = Tokenizing()

    def answer(path: str, raw: bytes) -> tuple[int, Any]:
        body = json.loads(raw)
        arrived = Ticks.count
        if path != "/v1/completions":
            time.sleep(TOKENIZER_DELAY_S)
            seen.requests.append((path, arrived, Ticks.count))
        return 200, _answer(path, body)

    with json_server(answer) as url:
        yield url, seen


def test_tokenizer_calls_of_strategies_do_not_block_the_event_loop(
    server: tuple[str, Tokenizing],
) -> None:
    url, seen = server
    engine = OpenAICompatibleEngine(OpenAIEngineConfig(base_url=url, model="m"))
    majority = MajorityConfig(n=[2], max_tokens=16)
    forcing = BudgetForcingConfig(budgets_tokens=[64], extensions=1, answer_max_tokens=8)

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            Ticks.count += 1
            await asyncio.sleep(0.005)

    async def main() -> list[Any]:
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        try:
            return await asyncio.gather(
                attempt_unit(engine, PROFILES["plain"], Q, Unit("majority", 2, majority), "r", 1),
                attempt_unit(
                    engine, PROFILES["plain"], Q, Unit("budget_forcing", 64, forcing), "r", 1
                ),
            )
        finally:
            stop.set()
            await ticking
            await engine.close()

    voted, forced = asyncio.run(main())
    assert voted.error is None and forced.error is None
    paths = {path for path, _, _ in seen.requests}
    # Chat template and cue encoding (both units), the token split by decoding (majority).
    assert paths == {"/tokenize", "/detokenize"}
    for path, arrived, answered in seen.requests:
        assert answered > arrived, f"the event loop stood still during {path}"
    # The split bisected by decoding is still exact: 4 thinking tokens, then the answer token.
    assert [(c.thinking_tokens, c.answer_tokens) for c in voted.calls] == [(4, 1), (4, 1)]
    assert voted.decision.final_answer == "5"
