"""``dendrisim rules`` prints plain text: no reStructuredText roles or literal quotes, no
line cut off after a colon that introduced an equation, lines wrapped to the terminal."""
import re

import pytest

from dendrisim import commands
from dendrisim.plasticity import RULES


def test_plain_text_strips_roles_and_literals():
    rst = ("Uses :class:`~dendrisim.plasticity.base.Relaxation` and :meth:`feedback_weight`,\n"
           "    :math:`a_l = δ B^T`, ``W.grad`` and `x`; see :doc:`the maths <../math>`.")
    assert commands.plain_text(rst) == ("Uses Relaxation and feedback_weight, a_l = δ B^T, W.grad and x; "
                                        "see the maths.")


def test_a_summary_that_introduces_an_equation_ends_as_a_sentence():
    doc = """Kolen-Pollack: feedback ``B`` learned
    by the transposed update:

    .. math:: W = B^T
    """
    assert commands.docstring_summary(doc) == "Kolen-Pollack: feedback B learned by the transposed update."
    assert commands.docstring_summary(None) == ""


@pytest.mark.parametrize("name", RULES.names())
def test_every_rule_entry_is_plain_wrapped_text(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = commands.describe_rule(name)
    assert "``" not in text and not re.search(r":[a-z]+:`", text), text
    assert "\n    " in text  # options are indented under their heading
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    summary = lines[1].strip()
    assert not summary.endswith(":") and "  " not in summary


def test_kp_summary_is_whole_and_long_option_docs_wrap_under_their_column(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    kp = commands.describe_rule("kp")
    words = " ".join(kp.split())
    assert "with the same weight decay on both. settling schemes:" in words
    assert "feedback B of Wᵀ's shape" in words  # ``B`` without its quotes
    truncate = [line for line in kp.splitlines() if line.startswith("    truncate")][0]
    following = kp.splitlines()[kp.splitlines().index(truncate) + 1]
    assert len(truncate) <= 80 and following.startswith(" " * len("    feedback_init  "))
    assert "plasticity.decay 1e-05..0.1 (log)" in kp  # an item is never broken across lines
