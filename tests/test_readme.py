"""The README stays true: its key reference is the one the code generates."""
from pathlib import Path

from dendrisim.reference import reference

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_key_reference_is_current():
    text = README.read_text()
    start, end = text.index("<!-- keys -->\n") + len("<!-- keys -->\n"), text.index("<!-- /keys -->")
    assert text[start:end] == reference(), "regenerate with: python -m dendrisim.reference --update README.md"


def test_readme_names_every_registered_rule():
    from dendrisim.plasticity import RULES

    text = README.read_text()
    for name in RULES.names():
        assert f"`{name}`" in text
