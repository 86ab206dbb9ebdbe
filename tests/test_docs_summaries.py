"""The docs build's summary rule (scripts/griffe_summaries.py): a docstring's first line holds
its whole first sentence, and the docstring still reads the same."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "griffe_summaries.py"


@pytest.fixture(scope="module")
def summaries():
    """The script as a module. griffe comes with the docs extra; where it is not installed a
    stand-in base class lets the text rule load (the rule itself uses nothing of griffe)."""
    stand_in = None
    if importlib.util.find_spec("griffe") is None:
        stand_in = types.ModuleType("griffe")
        stand_in.Extension = type("Extension", (), {})
        sys.modules["griffe"] = stand_in
    try:
        spec = importlib.util.spec_from_file_location("griffe_summaries", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        if stand_in is not None:
            del sys.modules["griffe"]


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("text, first", [
    ("Make glibc's malloc keep freed memory for reuse, for the whole process (see the\n"
     "module docstring); True when it is in effect.\nIdempotent.",
     "Make glibc's malloc keep freed memory for reuse, for the whole process (see the "
     "module docstring); True when it is in effect."),
    ("One line. And a second sentence on it\nthat goes on.",
     "One line."),
    ("Scores, e.g. of `malt.api.Run.predict`, per view\n(one column each). More.",
     "Scores, e.g. of `malt.api.Run.predict`, per view (one column each)."),
    ("Three ways to write, each holding\nthe output's lock:\n- one\n- two",
     "Three ways to write, each holding the output's lock:"),
    ("A summary without a full stop\nover two lines\n\nArgs:\n    x: y.",
     "A summary without a full stop over two lines"),
])
def test_the_first_line_is_the_first_sentence_and_nothing_else_changes(summaries, text,
                                                                       first):
    moved = summaries.first_sentence_first(text)
    assert moved.split("\n")[0] == first
    assert words(moved) == words(text)  # only line breaks moved: Markdown reads the same


def test_a_list_or_section_after_the_first_paragraph_stays_where_it_is(summaries):
    text = "Start of a sentence\nthat ends here:\n- item one\n- item two\n\nArgs:\n    a: b."
    moved = summaries.first_sentence_first(text)
    assert moved.split("\n")[1:] == ["- item one", "- item two", "", "Args:", "    a: b."]
