"""Text that comes from input files: which characters may pass into the project's outputs,
and how a text cell is made safe to open in a spreadsheet.

Unsafe characters
-----------------
A character is *unsafe* when its Unicode general category is

- ``Cc`` (control), except tab, line feed and carriage return: NUL, ESC, DEL, the C1
  controls (U+0080-U+009F) ...;
- ``Cf`` (format): the bidirectional controls U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
  U+061C, the zero-width characters U+200B-U+200D, U+2060, U+FEFF, the soft hyphen U+00AD,
  the tag characters U+E0000-U+E007F ...;
- ``Cs`` (surrogate) or ``Co`` (private use).

They are invisible or reorder what a reader sees (a name that prints as ``PbSe`` but is
``Pb<U+200B>Se`` is another chemical to every lookup), and NUL ends a string in C code.
Where text enters the project such a cell is refused: a recipe row goes to the rejected
table with reason ``control_character_in_<field>`` (:mod:`nanoforge.recipes`), a TEM file
to the rejected images (:mod:`nanoforge.tem.ingest`), a bad chemicals-table line is an
error naming it (:mod:`nanoforge.chemicals`).

Tab, line feed, carriage return and the other Unicode spaces (no-break space, U+2028 line
separator ...) are harmless: names are normalised to single-line text with one space between
words (:func:`nanoforge.abbreviations.clean_text`).

Where rejected text is kept for the record (the ``raw`` and ``source_id`` columns of the
rejected recipes, the ``source_path`` of rejected images), each unsafe character is written
as its JSON escape (``\\u202e``; surrogate pairs above U+FFFF) by :func:`escape_unsafe`.

Formula-leading cells
---------------------
A spreadsheet opening a CSV file runs a cell that starts with ``=``, ``+``, ``-``, ``@``,
tab or carriage return (or their full-width forms U+FF1D, U+FF0B, U+FF0D, U+FF20) as a
formula: ``=HYPERLINK("http://x","y")`` becomes a link. :func:`csv_cell` prefixes such a
text cell with a single quote (the OWASP rule for CSV injection), after leading spaces;
a text cell that is a plain decimal number (``-1.5``, ``+3``, ``-2e-3``) is left as it is,
a spreadsheet reads it as that number. :func:`nanoforge.tables.write_csv` applies this to
every text cell and column name of every CSV file the project writes; numeric columns are
written unchanged.
"""

from __future__ import annotations

import json
import re
import unicodedata

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})
WHITESPACE_CONTROLS = frozenset("\t\n\r")
FORMULA_LEADS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_PLAIN_NUMBER = re.compile(r"^ *[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? *$")
_CONTROL_NAMES = {"\x00": "NULL", "\x1b": "ESCAPE", "\x7f": "DELETE", "\x85": "NEXT LINE"}


def is_unsafe(char: str) -> bool:
    """Whether one character must not pass from an input into an output (module docstring)."""
    return char not in WHITESPACE_CONTROLS and unicodedata.category(char) in UNSAFE_CATEGORIES


def describe(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``: a character named so that the message shows it."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char) or {
        "Cc": "control character", "Cs": "surrogate", "Co": "private-use character"
    }.get(unicodedata.category(char), "character")
    return f"U+{ord(char):04X} ({name})"


def unsafe_characters(value) -> list[str]:
    """The distinct unsafe characters of a text value, in order of appearance (``[]`` for
    anything that is not a string, e.g. a number read from a workbook)."""
    if not isinstance(value, str) or value.isprintable():  # isprintable: fast, and never true for one
        return []
    return list(dict.fromkeys(ch for ch in value if is_unsafe(ch)))


def unsafe_message(value) -> str | None:
    """``'Pb\\x00Se' holds U+0000 (NULL)``, or None where the value is safe. The value is
    shown with Python's escapes, so the message itself is safe to print."""
    chars = unsafe_characters(value)
    if not chars:
        return None
    return f"{value!r} holds {', '.join(describe(c) for c in chars)}"


def escape_unsafe(text: str) -> str:
    """``text`` with every unsafe character written as its JSON escape (``\\u0000``,
    ``\\u202e``); other characters unchanged. Inside a JSON string the result decodes to the
    original text."""
    if text.isprintable():
        return text
    return "".join(json.dumps(ch)[1:-1] if is_unsafe(ch) else ch for ch in text)


def csv_cell(text: str) -> str:
    """A text cell safe to open in a spreadsheet: unsafe characters escaped, and a single
    quote in front where it would start a formula (module docstring)."""
    text = escape_unsafe(text)
    lead = text.lstrip(" ")[:1]
    if lead in FORMULA_LEADS and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text
