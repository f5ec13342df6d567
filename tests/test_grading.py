from __future__ import annotations

import threading

import pytest

from ttscale.grading import GRADING_RULES, canonical_answer, extract_answer, is_correct


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (r"so the ratio is \boxed{\frac{3}{4}}.", r"\frac{3}{4}"),
        (r"It grows by \boxed{10\%} each year.", r"10\%"),
        (r"First \boxed{3}, corrected: \boxed{5}", "5"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
        ("Final Answer: 42\nI hope this helps!", "42"),
        ("Final Answer: 5\nwait, no.\nFinal Answer: 7", "7"),
        ("**Final Answer:** 18.", "18"),
        ("Final Answer:\n\n36", "36"),
        ("final answer: $1,234.50", "$1,234.50"),
        ("Final Answer: $12$", "12"),
        ("She has 9 eggs.\n#### 18", "18"),
        ("The answer is 18. Then we check 3 + 4.", "18"),
        ("So the answer is $18.50.", "$18.50"),
        ("After 3 steps we reach 17 and stop", "17"),
        ("It costs -5 dollars", "-5"),
        ("উত্তর হল ৭২", "৭২"),
        ("No idea, sorry.", None),
        ("", None),
        (r"Final Answer: 3 but \boxed{4}", "4"),
        ("Final Answer: 9\n#### 8", "9"),
        (r"\boxed{}\nFinal Answer: 6", "6"),
    ],
)
def test_extract_answer(completion: str, expected: str | None) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(
    ("answer", "dataset", "key"),
    [
        ("72", "gsm8k", "72"),
        ("1,000", "gsm8k", "1000"),
        ("1,450,000", "mgsm", "1450000"),
        ("1 000", "gsm8k", "1000"),
        ("1\u202f000", "mgsm", "1000"),
        ("3,5", "mgsm", "3.5"),
        ("1.234,5", "mgsm", "1234.5"),
        ("1.000", "gsm8k", "1"),
        ("12.0", "gsm8k", "12"),
        ("12.50", "gsm8k", "12.5"),
        ("-7", "gsm8k", "-7"),
        ("−7", "gsm8k", "-7"),
        ("$1,234.50", "gsm8k", "1234.5"),
        ("50%", "gsm8k", "50"),
        (r"10\%", "gsm8k", "10"),
        ("18 dollars", "gsm8k", "18"),
        ("1/2", "gsm8k", "0.5"),
        ("0.5", "gsm8k", "0.5"),
        (r"\frac{1}{2}", "math", "0.5"),
        (r"\dfrac{1}{2}", "math", "0.5"),
        (r"-\frac{3}{4}", "math", "-0.75"),
        (r"\frac12", "math", "0.5"),
        ("2/6", "generic", "1/3"),
        (r"90^\circ", "math", "90"),
        (r"\text{Evelyn}", "math", "Evelyn"),
        (r"5.4 \text{ cents}", "math", "5.4"),
        (r"10,\!080", "math", "10080"),
        (r"\$32,\!348", "math", "32348"),
        ("3, 5, 7", "math", "3,5,7"),
        ("1,-2", "math", "1,-2"),
        (r"\left( 3, \frac{\pi}{2} \right)", "math", r"(3,\frac{\pi}{2})"),
        ("৭২", "mgsm", "72"),
        ("๗๒", "mgsm", "72"),
        ("౭౨", "mgsm", "72"),
        ("७२", "mgsm", "72"),
        ("７２", "mgsm", "72"),
        ("(৩,৫)", "math", "(3,5)"),
        ("x＝１２，５", "generic", "x=12,5"),
        ("025", "aime", "25"),
        ("27.0", "amc", "27"),
        (None, "gsm8k", None),
        ("   ", "math", None),
    ],
)
def test_canonical_answer(answer: str | None, dataset: str, key: str | None) -> None:
    assert canonical_answer(answer, dataset) == key


@pytest.mark.parametrize(
    ("predicted", "gold", "dataset"),
    [
        ("৭২", "72", "mgsm"),
        ("$1,234.50", "1234.5", "gsm8k"),
        ("72", "Half of 144 is <<144/2=72>>72.\n#### 72", "gsm8k"),
        ("1/2", "0.5", "generic"),
        ("0.3333333", "1/3", "generic"),
        (r"\frac{3}{4}", "0.75", "math"),
        (r"(3,\frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)", "math500"),
        ("x^2 + 2x + 1", "(x+1)^2", "math"),
        (r"2\sqrt{2}", r"\sqrt{8}", "math"),
        ("2,125", "2125", "gsm8k"),
        ("12", "12.00", "arithmetic"),
        ("25", "025", "aime"),
    ],
)
def test_is_correct_accepts_equivalent_answers(predicted: str, gold: str, dataset: str) -> None:
    assert is_correct(predicted, gold, dataset)


@pytest.mark.parametrize(
    ("predicted", "gold", "dataset"),
    [
        ("73", "72", "gsm8k"),
        ("73", "Half of 146 is 73.\n#### 72", "gsm8k"),
        ("-72", "72", "gsm8k"),
        ("7.2", "72", "gsm8k"),
        ("0.33", "1/3", "generic"),
        (None, "72", "gsm8k"),
        ("", "72", "gsm8k"),
        ("x^2 + 1", "(x+1)^2", "math"),
        (r"(3,\frac{\pi}{3})", r"\left( 3, \frac{\pi}{2} \right)", "math"),
        (r"\frac{", "3", "math"),
        ("}}}{{{", r"\sqrt{", "math"),
    ],
)
def test_is_correct_rejects_different_answers(
    predicted: str | None, gold: str, dataset: str
) -> None:
    assert not is_correct(predicted, gold, dataset)


def test_is_correct_does_not_raise_on_odd_input() -> None:
    odd = [r"\frac{1}{0}", "1/0", "\\", "$$", "∞", "\x00", "9" * 5000, r"\boxed{\boxed{"]
    for predicted in odd:
        for dataset in GRADING_RULES:
            # None of them is 1 (nor is 1 any of them): the answer is False, not an exception,
            # not None, and not a catch-all True.
            assert is_correct(predicted, "1", dataset) is False, (predicted, dataset)
            assert is_correct("1", predicted, dataset) is False, (predicted, dataset)


def test_is_correct_works_outside_the_main_thread() -> None:
    # math_verify's SIGALRM timeout cannot run in a worker thread.
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(is_correct("(x+1)^2", "x^2+2x+1")))
    worker.start()
    worker.join()
    assert results == [True]


def test_equal_answers_share_a_vote_key() -> None:
    votes = ["1/2", "0.5", r"\frac{1}{2}", r"\boxed{0.50}", "0.50"]
    assert {canonical_answer(vote, "math") for vote in votes} == {"0.5"}


def test_unknown_dataset_uses_generic_rules() -> None:
    assert canonical_answer("12.0", "no-such-set") == canonical_answer("12.0", "generic") == "12"
