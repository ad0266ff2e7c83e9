"""Characters that must not reach names, principals or log lines, and how to show them safely.

A key label, a JWT ``sub`` or a certificate subject ends up in log lines, in the audit log and on
an operator's terminal. There a line feed starts a forged log record, an ANSI escape (``ESC [``)
recolours or hides text, a bidi override (U+202E) shows ``gpj.exe`` as ``exe.jpg``, and a
zero-width space makes two different names look the same. The Unicode categories refused here:

* ``Cc`` — control characters (C0, DEL, C1: NUL, LF, CR, ESC …)
* ``Cf`` — format characters (bidi embeddings, overrides and isolates, zero-width space and
  joiners, soft hyphen, BOM)
* ``Zl`` / ``Zp`` — LINE SEPARATOR and PARAGRAPH SEPARATOR (line breaks for many viewers)
* ``Cs`` — lone surrogates (JSON ``"\\ud800"``; not text, and not encodable as UTF-8)
"""

from __future__ import annotations

import unicodedata

#: Unicode general categories of the characters :func:`unsafe_character` reports.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def unsafe_character(text: str) -> str | None:
    """The first control, format, line-separator or surrogate character of ``text``, or None.

    ``str.isprintable()`` (one C loop) is False for every such character, so printable text
    costs no per-character lookup."""
    if text.isprintable():
        return None
    for char in text:
        if _unsafe(char):
            return char
    return None


def character_name(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a character named so that a message can show it."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def escape_unsafe(text: str) -> str:
    """``text`` with every unsafe character written as an escape (``\\n``, ``\\x1b``, ``\\u202e``),
    for one-line logs. Printable text is returned as it is."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if not _unsafe(char):
            out.append(char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(out)
