"""Model profiles: how to prompt a model, where its thinking ends, how its answer is cued."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ttscale.errors import ConfigError


@dataclass(frozen=True)
class ModelProfile:
    """Prompting facts of one model family.

    Thinking is everything the model writes before ``end_of_thinking``; the answer follows
    ``end_of_thinking + answer_cue``. Models without ``<think>`` tags use a prompted cue as the
    delimiter (SmolLM2: "Final Answer:").
    """

    name: str
    system_prompt: str
    instruction: str
    thinking_prefix: str
    end_of_thinking: str
    answer_cue: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


PROFILES: dict[str, ModelProfile] = {
    "smollm2": ModelProfile(
        name="smollm2",
        system_prompt="You are a careful assistant who solves math problems step by step.",
        instruction="Think step by step. End with a line 'Final Answer: <number>'.",
        thinking_prefix="",
        end_of_thinking="Final Answer:",
        answer_cue=" ",
    ),
    "reasoning": ModelProfile(
        name="reasoning",
        system_prompt="",
        instruction="Please reason step by step, and put your final answer within \\boxed{}.",
        thinking_prefix="<think>\n",
        end_of_thinking="</think>",
        answer_cue="\n\nFinal Answer: \\boxed{",
    ),
    "plain": ModelProfile(
        name="plain",
        system_prompt="",
        instruction="Think step by step. End with a line 'Final Answer: <answer>'.",
        thinking_prefix="",
        end_of_thinking="Final Answer:",
        answer_cue=" ",
    ),
}

# Substrings of a model name that imply a profile, checked in order.
_AUTO_PROFILE = (
    ("smollm", "smollm2"),
    ("deepseek-r1", "reasoning"),
    ("qwq", "reasoning"),
    ("qwen3", "reasoning"),
    ("s1", "reasoning"),
)


def resolve_profile(name: str, model: str) -> ModelProfile:
    """The profile called ``name``, or for 'auto' the one the model name implies ('plain' else)."""
    if name == "auto":
        lowered = model.lower()
        name = next((p for hint, p in _AUTO_PROFILE if hint in lowered), "plain")
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown model profile {name!r}; known: {sorted(PROFILES)}") from None


def question_messages(
    profile: ModelProfile, question: str, system_extra: str = ""
) -> list[dict[str, str]]:
    """Chat messages asking ``question`` under ``profile``."""
    system = " ".join(s for s in (profile.system_prompt, system_extra) if s)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": f"{question}\n\n{profile.instruction}"})
    return messages
