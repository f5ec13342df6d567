"""Final-answer extraction and comparison: grades completions and keys the votes of majority vote.

Numbers are compared exactly as fractions, so a key never depends on float formatting:
"12.0", "12" and "12,0" (decimal comma) share the key "12"; "1/2", "0.5" and "\\frac{1}{2}" share
"0.5"; a non-terminating fraction is written "p/q" ("1/3").

Separators in numbers, the rule:
- "," followed by groups of exactly three digits is a thousands separator: "1,000", "1,234.5".
- "." followed by groups of three digits and then "," is German style: "1.234,5".
- A lone "," followed by one, two or four or more digits can only be a decimal comma: "3,5".
- A space, no-break space or thin space between three-digit groups is a thousands separator:
  "1 000", "12 345 678".
- "." is always a decimal point otherwise, so "1.000" is 1, never 1000.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

# --- number syntax -----------------------------------------------------------------------------

_SPACES = " \u00a0\u202f\u2009"
_THOUSANDS_COMMA = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"
_GERMAN = r"\d{1,3}(?:\.\d{3})+,\d+"
_THOUSANDS_SPACE = rf"\d{{1,3}}(?:[{_SPACES}]\d{{3}})+(?![\d.,])"
_DECIMAL_COMMA = r"\d+,(?:\d{1,2}|\d{4,})(?![\d,])"
_PLAIN = r"\d+(?:\.\d+)?|\.\d+"
_UNSIGNED = rf"(?:{_GERMAN}|{_THOUSANDS_COMMA}(?!\d)|{_THOUSANDS_SPACE}|{_DECIMAL_COMMA}|{_PLAIN})"
_NUMBER = rf"-?{_UNSIGNED}"
# Symbolic answers have no decimal comma or space grouping: "3,5" is a list, "1,000" is 1000.
_SYMBOLIC_NUMBER = rf"-?(?:{_THOUSANDS_COMMA}(?!\d)|{_PLAIN})"


def _value_pattern(number: str) -> re.Pattern[str]:
    # A fraction is one value, so "3/4" must not be read as the two numbers 3 and 4.
    return re.compile(
        rf"(?P<sign>-)?\\frac\{{(?P<fnum>{number})\}}\{{(?P<fden>{number})\}}"
        rf"|(?P<num>{number})(?:\s*/\s*(?P<den>{number}))?"
    )


_VALUE_RE = _value_pattern(_NUMBER)
_SYMBOLIC_VALUE_RE = _value_pattern(_SYMBOLIC_NUMBER)
_RAW_NUMBER_RE = re.compile(rf"[-−]?{_UNSIGNED}")

# Dashes that models write for a minus sign; full-width forms (U+FF01-FF5E) map to ASCII by offset.
_PUNCTUATION = {ord("−"): "-", ord("–"): "-"} | {
    code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)
}


def to_ascii_digits(text: str) -> str:
    """Unicode decimal digits (Bengali, Thai, Telugu...) and full-width forms as ASCII."""
    return "".join(
        str(unicodedata.decimal(char)) if not char.isascii() and char.isdecimal() else char
        for char in text.translate(_PUNCTUATION)
    )


def _parse_unsigned(token: str) -> Fraction:
    if re.fullmatch(_GERMAN, token):
        return Fraction(token.replace(".", "").replace(",", "."))
    if re.fullmatch(_THOUSANDS_COMMA, token):
        return Fraction(token.replace(",", ""))
    if re.fullmatch(_DECIMAL_COMMA, token):
        return Fraction(token.replace(",", "."))
    return Fraction(re.sub(f"[{_SPACES}]", "", token))


def _parse_number(token: str) -> Fraction:
    negative = token.startswith("-")
    value = _parse_unsigned(token.lstrip("-"))
    return -value if negative else value


def _value_of(match: re.Match[str]) -> Fraction | None:
    if match["fnum"] is not None:
        numerator, denominator = _parse_number(match["fnum"]), _parse_number(match["fden"])
        sign = -1 if match["sign"] else 1
    else:
        numerator, sign = _parse_number(match["num"]), 1
        denominator = _parse_number(match["den"]) if match["den"] else Fraction(1)
    return None if denominator == 0 else sign * numerator / denominator


def number_key(value: Fraction) -> str:
    """The canonical text of a number: "12", "-0.5", "1/3"."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    # Terminating decimal: exact digits, no float rounding.
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
    whole, fraction = divmod(abs(value.numerator) * 10**digits // value.denominator, 10**digits)
    return f"{'-' if value < 0 else ''}{whole}.{fraction:0{digits}d}"


def _key_value(key: str) -> Fraction | None:
    match = re.fullmatch(r"-?\d+(?:\.\d+)?(?:/\d+)?", key)
    return Fraction(key) if match else None


# --- LaTeX clean-up shared by both kinds of answer ----------------------------------------------

_LATEX_NOISE = re.compile(
    r"\\left|\\right|\\[!,;: ]|\\displaystyle|\^\s*\\circ|\^\s*\{\s*\\circ\s*\}|\\circ|\\\$|\\%"
    r"|\\mathrm\s*\{\s*\}"
)
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mbox|mathrm|mathbf)\s*\{([^{}]*)\}")
_TRAILING_UNIT = re.compile(
    r"\s*\\(?:text|mbox|mathrm)\s*\{\s*[a-zA-Z][a-zA-Z .]*\}\s*(?:\^\s*\{?\d\}?)?\s*$"
)


def _clean_latex(answer: str) -> str:
    text = to_ascii_digits(answer).strip()
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    # ",\!" is how MATH writes a thousands separator: "10,\!080".
    text = re.sub(r",\\!\s*", ",", text)
    # "\frac12" is LaTeX for "\frac{1}{2}".
    text = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\sqrt\s*(\w)", r"\\sqrt{\1}", text)
    boxed = re.fullmatch(r"\\boxed\s*\{(.*)\}", text, flags=re.S)
    if boxed:
        text = boxed[1]
    stripped = _TRAILING_UNIT.sub("", text)
    if stripped.strip():
        text = stripped
    text = _LATEX_NOISE.sub(" ", text)
    text = _TEXT_COMMAND.sub(r"\1", text)
    return text.strip().rstrip(".").strip()


# --- canonical keys ------------------------------------------------------------------------------


def _numeric_key(answer: str) -> str | None:
    """Key of the last number (or fraction) in the answer; units, "$" and "%" do not count."""
    text = _clean_latex(answer).replace("$", "").replace("%", "")
    # A division by zero ("1/0") is no value; the answer's last real number still counts.
    values = [
        value for match in _VALUE_RE.finditer(text) if (value := _value_of(match)) is not None
    ]
    if not values:
        return _string_key(answer)
    return number_key(values[-1])


def _string_key(answer: str) -> str | None:
    """Key of a symbolic answer: LaTeX spacing and sizing removed; a lone number keyed as one."""
    text = _clean_latex(answer)
    bare = text.replace("$", "").strip()
    whole = _SYMBOLIC_VALUE_RE.fullmatch(bare)
    if whole:
        value = _value_of(whole)
        if value is not None:
            return number_key(value)
    key = re.sub(r"\s+", "", text)
    key = re.sub(r"^\$(.*)\$$", r"\1", key)
    return key or None


# --- per-dataset rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GradingRules:
    """How answers of one dataset are keyed and compared."""

    canonical: Callable[[str], str | None]
    """Turns a raw answer into its voting key."""
    symbolic: bool
    """Ask math_verify when the keys differ (answers may be LaTeX expressions)."""


NUMERIC = GradingRules(canonical=_numeric_key, symbolic=False)
# Contest answers are numbers, but a model may write them as LaTeX that only math_verify reads.
CONTEST = GradingRules(canonical=_numeric_key, symbolic=True)
SYMBOLIC = GradingRules(canonical=_string_key, symbolic=True)

GRADING_RULES: dict[str, GradingRules] = {
    "gsm8k": NUMERIC,
    "mgsm": NUMERIC,
    "arithmetic": NUMERIC,
    "aime": CONTEST,
    "amc": CONTEST,
    "math": SYMBOLIC,
    "math500": SYMBOLIC,
    "generic": SYMBOLIC,
}


def rules_for(dataset: str) -> GradingRules:
    """The rules of a dataset; unknown datasets get the generic rules."""
    return GRADING_RULES.get(dataset.lower(), GRADING_RULES["generic"])


# --- extraction ----------------------------------------------------------------------------------


def _boxed_contents(text: str) -> list[str]:
    contents = []
    for match in re.finditer(r"\\(?:boxed|fbox)\s*(\{)?", text):
        if match[1] is None:
            # "\boxed 5": the argument is the next token.
            token = re.match(r"\S+", text[match.end() :])
            if token:
                contents.append(token[0].rstrip("$"))
            continue
        depth, start = 1, match.end()
        for position in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            if depth == 0:
                contents.append(text[start:position])
                break
    return contents


_FINAL_ANSWER_RE = re.compile(
    r"\**\s*final\s+answer\s*\**\s*[:：]\s*\**[ \t]*(?P<rest>[^\n]*(?:\n\s*[^\n]+)?)", re.I
)
_HASHES_RE = re.compile(r"####\s*(?P<rest>[^\n]+)")
_ANSWER_IS_RE = re.compile(r"answer\s+is\s*[:：]?\s*(?P<rest>.+?)(?=\.\s|\.?\s*$|\n)", re.I | re.M)


def _final_answer_lines(text: str) -> list[str]:
    answers = []
    for match in _FINAL_ANSWER_RE.finditer(text):
        # The answer is on the same line, or on the next one when the marker ends its line.
        first, _, following = match["rest"].partition("\n")
        answers.append(first if first.strip(" *") else following)
    return answers


def _tidy(answer: str) -> str | None:
    answer = answer.strip().strip("*").strip()
    if len(answer) > 1 and answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    answer = answer.rstrip(".").strip()
    return answer or None


_EXTRACTORS: tuple[Callable[[str], list[str]], ...] = (
    _boxed_contents,
    _final_answer_lines,
    lambda text: [match["rest"] for match in _HASHES_RE.finditer(text)],
    lambda text: [match["rest"] for match in _ANSWER_IS_RE.finditer(text)],
    lambda text: [match[0] for match in _RAW_NUMBER_RE.finditer(text)],
)


def extract_answer(text: str, dataset: str = "generic") -> str | None:
    """The final answer in a completion, or None.

    Tries, in order, the last ``\\boxed{}``, the last ``Final Answer:``, the last ``####``, the
    last "answer is", then the last number; the first that yields a non-empty answer wins.
    """
    del dataset  # One extraction order serves every dataset so far; kept for per-dataset rules.
    for extractor in _EXTRACTORS:
        for candidate in reversed(extractor(text)):
            answer = _tidy(candidate)
            if answer is not None:
                return answer
    return None


def canonical_answer(answer: str | None, dataset: str = "generic") -> str | None:
    """A key under which equivalent answers compare equal (and vote together); None if empty."""
    if answer is None or not answer.strip():
        return None
    return rules_for(dataset).canonical(answer)


# --- comparison ----------------------------------------------------------------------------------


def _math_verify_equal(gold: str, predicted: str) -> bool:
    from math_verify import parse, verify

    # math_verify times out with SIGALRM, which only the main thread may use; elsewhere it runs
    # without a timeout rather than failing every comparison.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold_parsed = parse(f"${gold}$", parsing_timeout=timeout)
        predicted_parsed = parse(f"${predicted}$", parsing_timeout=timeout)
        if not gold_parsed or not predicted_parsed:
            return False
        return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=timeout))
    except Exception:  # math_verify and sympy raise many types (and TimeoutError) on odd input.
        return False


def is_correct(predicted: str | None, gold: str, dataset: str = "generic") -> bool:
    """Whether the predicted answer equals the gold one. Never raises.

    Equal keys, numbers within 1e-6 relative, or (symbolic datasets) math_verify equivalence.
    A gold that is a whole GSM8K solution is reduced to its ``#### n`` answer first.
    """
    try:
        if predicted is None or not predicted.strip():
            return False
        rules = rules_for(dataset)
        if "####" in gold:
            gold = extract_answer(gold, dataset) or gold
        predicted_key, gold_key = rules.canonical(predicted), rules.canonical(gold)
        if predicted_key is None or gold_key is None:
            return False
        if predicted_key == gold_key:
            return True
        predicted_value, gold_value = _key_value(predicted_key), _key_value(gold_key)
        if predicted_value is not None and gold_value is not None:
            return abs(predicted_value - gold_value) <= Fraction(1, 10**6) * max(
                abs(gold_value), abs(predicted_value)
            )
        return rules.symbolic and _math_verify_equal(gold, predicted)
    except Exception:  # Grading one odd answer must not stop a batch.
        return False
