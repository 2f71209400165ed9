"""Text matching for triggers: pure functions, no database.

Text is normalised first (case, accents, punctuation, emoji, stretched letters, whitespace),
so "GUIDE!!", "guide 🙏" and "Guíde" all read as "guide".
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

# Letters (not digits: "1000" stays) repeated three times or more are a stretched word.
_STRETCHED = re.compile(r"([^\W\d_])\1{2,}")
_DOUBLED = re.compile(r"([^\W\d_])\1+")
_NOT_WORD = re.compile(r"[^\w]+")
# Word endings folded before fuzzy comparison so "pricing" and "prices" meet "price".
_SUFFIXES = ("ings", "ing", "ies", "es", "ed", "s")
DEFAULT_FUZZY_THRESHOLD = 80.0


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_WORD.sub(" ", without_marks.replace("_", " ")).strip()


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Case, accents, punctuation and emoji folded; stretched letters cut to two."""
    return _STRETCHED.sub(r"\1\1", _fold(text))


def tokens(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


def _squeeze(word: str) -> str:
    return _DOUBLED.sub(r"\1", word)


@dataclass(frozen=True)
class _Word:
    text: str  # normalised
    squeezed: str | None  # all doubled letters cut to one, only for a stretched word

    def matches(self, keyword_word: str) -> bool:
        # "guiiiide" finds "guide" and "freeeee" finds "free", yet an ordinary "good" does not
        # find "god": only a word the person stretched is compared with its letters squeezed.
        if self.text == keyword_word:
            return True
        return self.squeezed is not None and self.squeezed == _squeeze(keyword_word)


@lru_cache(maxsize=4096)
def _words(text: str) -> tuple[_Word, ...]:
    return tuple(
        _Word(_STRETCHED.sub(r"\1\1", raw), _squeeze(raw) if _STRETCHED.search(raw) else None)
        for raw in _fold(text).split()
    )


def _run_matches(words: tuple[_Word, ...], needle: tuple[str, ...]) -> bool:
    return all(word.matches(part) for word, part in zip(words, needle, strict=True))


@dataclass(frozen=True)
class Match:
    keyword: str
    score: float  # 0-100


def match_exact(text: str, keywords: list[str]) -> Match | None:
    words = _words(text)
    for keyword in keywords:
        needle = tokens(keyword)
        if words and len(needle) == len(words) and _run_matches(words, needle):
            return Match(keyword, 100.0)
    return None


def _contains_run(haystack: tuple[_Word, ...], needle: tuple[str, ...]) -> bool:
    width = len(needle)
    return any(
        _run_matches(haystack[i : i + width], needle) for i in range(len(haystack) - width + 1)
    )


def match_contains(text: str, keywords: list[str]) -> Match | None:
    """The keyword appears as whole words: "price" in "what's the price?", not "priceless"."""
    words = _words(text)
    best: Match | None = None
    for keyword in keywords:
        needle = tokens(keyword)
        # A longer keyword is the more specific match.
        longer = best is None or len(keyword) > len(best.keyword)
        if needle and longer and _contains_run(words, needle):
            best = Match(keyword, 100.0)
    return best


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def match_fuzzy(
    text: str, keywords: list[str], threshold: float = DEFAULT_FUZZY_THRESHOLD
) -> Match | None:
    """Typos and word variants ("prcie", "prices", "pricing" find "price").

    rapidfuzz's Levenshtein-based ratio is fast (C++) and well maintained; we compare
    word windows of the keyword's length, after folding common endings, so one typo in a
    long comment is not drowned by the rest of the text. Words under four letters must
    match exactly: one edit in a three-letter word is a different word.
    """
    words = tuple(_stem(word) for word in tokens(text))
    best: Match | None = None
    for keyword in keywords:
        needle = tuple(_stem(word) for word in tokens(keyword))
        if not needle or len(words) < len(needle):
            continue
        joined_needle = " ".join(needle)
        for start in range(len(words) - len(needle) + 1):
            window = words[start : start + len(needle)]
            if any(min(len(a), len(b)) < 4 and a != b for a, b in zip(window, needle, strict=True)):
                continue
            score = fuzz.ratio(" ".join(window), joined_needle)
            if score >= threshold and (best is None or score > best.score):
                best = Match(keyword, score)
    return best


def match_text(
    mode: str, text: str, keywords: list[str], *, fuzzy_threshold: float | None = None
) -> Match | None:
    if mode == "any":
        return Match("", 100.0)
    if mode == "exact":
        return match_exact(text, keywords)
    if mode == "contains":
        return match_contains(text, keywords)
    if mode == "fuzzy":
        return match_fuzzy(text, keywords, fuzzy_threshold or DEFAULT_FUZZY_THRESHOLD)
    # Intent matching is not evaluated by this version; the import warns about such triggers.
    return None
