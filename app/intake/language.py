"""Cheap language identification: script counting, then stop-word voting for Latin-script text.

This is deliberately crude.  It only has to answer "is this English?" well enough to decide whether the
English rules should run; it never needs to be right about which non-English language it is looking at.
"""

from __future__ import annotations

import re

from app.intake._util import wordset

SUPPORTED_LANGUAGES = frozenset({"en"})

# (first code point, last code point, script name, default language code)
_SCRIPT_RANGES: tuple[tuple[int, int, str, str], ...] = (
    (0x0370, 0x03FF, "greek", "el"),
    (0x0400, 0x052F, "cyrillic", "ru"),
    (0x0530, 0x058F, "armenian", "hy"),
    (0x0590, 0x05FF, "hebrew", "he"),
    (0x0600, 0x06FF, "arabic", "ar"),
    (0x0750, 0x077F, "arabic", "ar"),
    (0x0900, 0x097F, "devanagari", "hi"),
    (0x0980, 0x09FF, "bengali", "bn"),
    (0x0B80, 0x0BFF, "tamil", "ta"),
    (0x0E00, 0x0E7F, "thai", "th"),
    (0x10A0, 0x10FF, "georgian", "ka"),
    (0x1100, 0x11FF, "hangul", "ko"),
    (0x3040, 0x30FF, "kana", "ja"),
    (0x3130, 0x318F, "hangul", "ko"),
    (0x3400, 0x4DBF, "han", "zh"),
    (0x4E00, 0x9FFF, "han", "zh"),
    (0xAC00, 0xD7AF, "hangul", "ko"),
    (0xFB50, 0xFDFF, "arabic", "ar"),
    (0xFE70, 0xFEFF, "arabic", "ar"),
)

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": wordset(
        """the of and to in is was that for on with as by said were are it from at have has had an be this
        not but they their he she which who would will been after"""
    ),
    "fr": wordset("le la les des du un une et est dans que qui pour sur pas au aux avec ont été selon"),
    "es": wordset("el la los las del y en que por con para una un es se según fue han sus al"),
    "de": wordset("der die das und ist nicht mit den dem ein eine sich auf für von zu im wurde sind"),
    "it": wordset("il lo la gli le di e che per con una un sono è stato della nel dei secondo"),
    "pt": wordset("o os as do da dos das e em que para com uma um não foi segundo pelo pela"),
    "nl": wordset("de het een en van in is dat op te met voor niet zijn werd volgens"),
}

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _script_of(ch: str) -> tuple[str, str]:
    cp = ord(ch)
    if cp < 0x0250 or 0x1E00 <= cp <= 0x1EFF:
        return "latin", "en"
    for lo, hi, script, lang in _SCRIPT_RANGES:
        if lo <= cp <= hi:
            return script, lang
    return "other", "und"


def detect_language(text: str) -> str:
    """Return a best-guess ISO 639-1 code ("en", "ko", "ru", ...) or "und" when there is nothing to go on."""
    counts: dict[str, int] = {}
    langs: dict[str, str] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        script, lang = _script_of(ch)
        counts[script] = counts.get(script, 0) + 1
        langs[script] = lang
    if letters == 0:
        return "und"
    latin = counts.get("latin", 0)
    if latin / letters < 0.5:
        script = max((s for s in counts if s != "latin"), key=lambda s: counts[s])
        if script == "han" and counts.get("kana", 0):
            return "ja"
        if script == "kana":
            return "ja"
        if script == "cyrillic" and re.search(r"[іїєґІЇЄҐ]", text):
            return "uk"
        if script == "arabic" and re.search(r"[پچژگ]", text):
            return "fa"
        return langs[script]
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 6:
        return "en"  # too little text to vote; assume the desk's default
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    if scores[best] == 0:
        return "en"
    if best != "en" and scores["en"] >= 0.8 * scores[best]:
        return "en"
    return best


def normalise_language(code: str | None) -> str | None:
    """ "EN", "en-GB", "en_US" -> "en"; None stays None."""
    if code is None:
        return None
    code = code.strip().lower().replace("_", "-")
    return code.split("-", 1)[0] or None
