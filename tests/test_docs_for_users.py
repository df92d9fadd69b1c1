"""The documentation speaks to users: no issue numbers, no paths of the machine a page was
written on, no pointers into the test suite that an installed user does not have; the Results
page shows the commands that made its tables as one reruns them (files by name, the page it
updates), and the maths renders offline (no CDN)."""
import json
import re
from pathlib import Path

import pytest

from dendrisim.results import shown_command

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "auto_examples" not in p.parts and "_build" not in p.parts)


@pytest.mark.parametrize("page", [*PAGES, REPO / "README.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_no_issue_numbers_or_machine_paths(page):
    text = page.read_text()
    assert not re.search(r"\bissues? #\d+|\(#\d+[,)]", text, flags=re.I), page
    assert not re.search(r"the issue (that|reported|set)|environment in which this page", text, flags=re.I), page
    for path in ("/tmp/", "/work/", "/home/"):
        assert path not in text, f"{page}: {path}"


@pytest.mark.parametrize("page", ["results.md", "howto/microcircuit.md"])
def test_the_results_and_microcircuit_pages_point_at_no_tests(page):
    assert "tests/" not in (DOCS / page).read_text()


def test_the_shown_command_names_files_and_the_page_not_the_machine():
    stored = ("python scripts/results.py --suite through-time --text /tmp/d16/stdlib.txt "
              "--series=/tmp/d16/temps.csv --out /tmp/d16/tt --update README.md --epochs 3")
    assert shown_command(stored) == ("python scripts/results.py --suite through-time --text stdlib.txt "
                                     "--series temps.csv --update docs/results.md --epochs 3")
    kept = "python scripts/results.py --suite dendritic --data-root /usr/share/datasets/fashion-mnist"
    assert shown_command(kept) == kept


def test_the_results_page_shows_rerunnable_commands():
    made = [line for line in (DOCS / "results.md").read_text().splitlines() if line.startswith("Made by `")]
    assert len(made) == len(json.loads((REPO / "results.json").read_text()))  # one per suite on the page
    for line in made:
        command = line.split("`")[1]
        assert command.startswith("python scripts/results.py") and command.endswith("--update docs/results.md")
        assert "--out" not in command


def test_maths_is_latex_rendered_by_a_shipped_mathjax():
    conf = (DOCS / "conf.py").read_text()
    assert '"sphinx.ext.mathjax"' in conf and '"sphinx-mathjax-offline"' in conf
    assert "sphinx-mathjax-offline" in (REPO / "pyproject.toml").read_text()
    assert '"dollarmath"' in conf
    for page in ("math.md", "concepts.md", "howto/dynamics.md", "howto/microcircuit.md"):
        text = (DOCS / page).read_text()
        assert text.count("$$") >= 2, f"{page}: its main equations are not display maths"
    script = (REPO / ".ci" / "docs.sh").read_text()
    assert " -n " in script and "<(script|link)" in script  # nitpicky, and no page loads from the network
