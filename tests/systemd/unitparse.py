"""Read unit files back the way systemd does, independently of credo.systemd.syntax.

Written from the manual pages, not from credo's quoting code: systemd.syntax(7) (a line
``Key=value``; ``#``/``;`` comments), systemd.service(5) "Command lines" (words split on
whitespace, ``"..."``/``'...'`` quoting, C escapes; then specifiers; then ``$``
substitution in the arguments) and systemd.exec(5) ``Environment=`` (quoting and specifiers only).
Only the specifier ``%%`` and no ``$NAME`` reference is accepted: credo writes neither, so one
means a quoting bug.
"""

from __future__ import annotations

import re

__all__ = ["environment", "exec_argv", "settings", "split_words"]

# systemd.syntax(7), "Quoting": the C-style escapes.
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "\\": "\\", '"': '"', "'": "'", "s": " "}  # fmt: skip


def settings(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{"Service": [("ExecStart", "..."), ...]}``: each section's assignments in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], [])
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        assert not stripped.endswith("\\"), f"continuation line: {line!r}"
        key, sep, value = stripped.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def _unescape(text: str, i: int) -> tuple[str, int]:
    """The C escape at ``text[i]`` (just after the backslash) -> (character, next index)."""
    char = text[i]
    if char in _SIMPLE:
        return _SIMPLE[char], i + 1
    if char == "x":
        value = int(text[i + 1 : i + 3], 16)
        assert value != 0, "NUL is refused"
        return chr(value), i + 3
    if char in "01234567":
        return chr(int(text[i : i + 3], 8)), i + 3
    if char in "uU":
        width = 4 if char == "u" else 8
        return chr(int(text[i + 1 : i + 1 + width], 16)), i + 1 + width
    raise AssertionError(f"unknown escape sequence \\{char} in {text!r}")


def split_words(value: str) -> list[str]:
    """extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) in a loop: the words of a value."""
    words: list[str] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in " \t\n\r":
            i += 1
        if i == n:
            return words
        # systemd.service(5): an unquoted ";" word separates commands (and "\\;" is a literal ";").
        assert not (value[i] == ";" and value[i + 1 : i + 2] in ("", " ", "\t")), (
            f"a ; separator in {value!r}"
        )
        word: list[str] = []
        quote: str | None = None
        while i < n:
            char = value[i]
            if quote is None and char in " \t\n\r":
                break
            i += 1
            if char == "\\":
                assert i < n, f"trailing backslash in {value!r}"
                decoded, i = _unescape(value, i)
                word.append(decoded)
            elif quote is None and char in "\"'":
                quote = char
            elif char == quote:
                quote = None
            else:
                word.append(char)
        assert quote is None, f"unbalanced quoting in {value!r}"
        words.append("".join(word))


def _specifiers(word: str) -> str:
    """systemd.unit(5) "Specifiers": only ``%%`` (a literal ``%``) is expected here."""
    assert re.fullmatch(r"(?:[^%]|%%)*", word), f"an unescaped specifier in {word!r}"
    return word.replace("%%", "%")


def _dollars(word: str) -> str:
    """systemd.service(5): ``$$`` is a literal ``$``; ``$NAME``/``${NAME}`` would be substituted."""
    assert re.fullmatch(r"(?:[^$]|\$\$)*", word), f"a $ reference in {word!r}"
    return word.replace("$$", "$")


def exec_argv(value: str) -> list[str]:
    """The argv systemd runs for ``ExecStart=value`` (no prefixes, no ``;``: credo writes neither)."""
    words = split_words(value)
    assert words, "empty command line"
    assert words[0].startswith("/"), f"program path not absolute: {words[0]!r}"
    return [_specifiers(words[0])] + [_dollars(_specifiers(word)) for word in words[1:]]


def environment(values: list[str]) -> dict[str, str]:
    """The variables of ``Environment=`` lines (quoting and specifiers; ``$`` is literal)."""
    env: dict[str, str] = {}
    for value in values:
        for word in split_words(value):
            name, sep, val = _specifiers(word).partition("=")
            assert sep and name, f"not an assignment: {word!r}"
            env[name] = val
    return env
