"""Griffe extension: API summaries end where the docstring's first sentence ends.

mkdocstrings lists a module's classes, functions and attributes with the first line of each
docstring. malt's docstrings wrap their first sentence over several lines, so those summaries
stopped mid-sentence. This extension moves the rest of the first sentence up onto the first
line; in Markdown the line break it moves is a soft one, so the full docstring renders as
before. Listed in mkdocs.yml under the Python handler's `extensions`.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.")
"""Words whose full stop does not end a sentence."""
BLOCK_START = re.compile(r"\s*([-*+>|]\s|\d+[.)]\s|```|[A-Z][A-Za-z ]*:$)")
"""A line that starts a list, quote, table, code fence or docstring section (`Args:`)."""
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def sentence_end(line: str) -> int | None:
    """The index just past the first full stop (or ! ?) of `line` that ends a sentence: not
    inside `code` and not an abbreviation's."""
    for match in SENTENCE_END.finditer(line):
        before = line[:match.end()]
        if before.count("`") % 2 == 0 and not before.lower().endswith(ABBREVIATIONS):
            return match.end()
    return None


def first_sentence_first(text: str) -> str:
    """`text` with its first sentence on its first line (the rest of the first paragraph goes
    on as it was); the whole first paragraph when no sentence ends in it."""
    lines = text.split("\n")
    end = sentence_end(lines[0])
    if end is not None:  # the first sentence ends on the first line: the rest goes on below
        rest = lines[0][end:].strip()
        return "\n".join([lines[0][:end], *([rest] if rest else []), *lines[1:]])
    first = lines[0].rstrip()
    for k in range(1, len(lines)):
        line = lines[k].strip()
        if not line or BLOCK_START.match(lines[k]):
            return "\n".join([first, *lines[k:]])
        end = sentence_end(line)
        if end is not None:
            rest = line[end:].strip()
            return "\n".join([f"{first} {line[:end]}", *([rest] if rest else []),
                              *lines[k + 1:]])
        first = f"{first} {line}"
    return first


class FirstSentenceSummaries(griffe.Extension):
    """Rewrites every docstring of a loaded package with `first_sentence_first`."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = first_sentence_first(obj.docstring.value)


def _objects(obj: griffe.Object) -> list[griffe.Object]:
    """`obj` and every object defined in it (aliases left out: they are documented where they
    are defined)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_objects(member))
    return found
