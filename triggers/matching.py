"""Text matching for triggers: pure functions and a compiled index, no database.

Text is normalised first (case, accents, punctuation, emoji, stretched letters, whitespace),
so "GUIDE!!", "guide 🙏" and "Guíde" all read as "guide".

`match_text` answers one trigger at a time. `TriggerIndex` compiles many triggers once and
answers a text against all of them in one pass (dict lookups for exact and contains, one
vectorised rapidfuzz call per group of like keywords for fuzzy, one embedding index from
`triggers.intent` for intent), with exactly the answers `match_text` gives per trigger, and
answers intent too, which `match_text` does not.
"""

import re
import threading
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from rapidfuzz import fuzz, process

# Letters (not digits: "1000" stays) repeated three times or more are a stretched word.
_STRETCHED = re.compile(r"([^\W\d_])\1{2,}")
_DOUBLED = re.compile(r"([^\W\d_])\1+")
_NOT_WORD = re.compile(r"[^\w]+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# Word endings folded before fuzzy comparison so "pricing" and "prices" meet "price".
_SUFFIXES = ("ings", "ing", "ies", "es", "ed", "s")
DEFAULT_FUZZY_THRESHOLD = 80.0


def _drop_mark(found: re.Match) -> str:
    return "".join(ch for ch in found.group() if not unicodedata.combining(ch))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    # No ASCII character is a combining mark: only runs of other characters are looked at.
    without_marks = _NON_ASCII.sub(_drop_mark, decomposed)
    return _NOT_WORD.sub(" ", without_marks.replace("_", " ")).strip()


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Case, accents, punctuation and emoji folded; stretched letters cut to two."""
    return _STRETCHED.sub(r"\1\1", _fold(text))


def tokens(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


def _squeeze(word: str) -> str:
    return _DOUBLED.sub(r"\1", word)


class _Word(NamedTuple):
    text: str  # normalised
    squeezed: str | None  # all doubled letters cut to one, only for a stretched word

    def matches(self, keyword_word: str) -> bool:
        # "guiiiide" finds "guide" and "freeeee" finds "free", yet an ordinary "good" does not
        # find "god": only a word the person stretched is compared with its letters squeezed.
        if self.text == keyword_word:
            return True
        return self.squeezed is not None and self.squeezed == _squeeze(keyword_word)


def _word(raw: str) -> _Word:
    if _STRETCHED.search(raw) is None:
        return _Word(raw, None)
    return _Word(_STRETCHED.sub(r"\1\1", raw), _squeeze(raw))


def _words_of(folded: str) -> tuple[_Word, ...]:
    if _STRETCHED.search(folded) is None:  # the common case: no stretched word at all
        return tuple([_Word(raw, None) for raw in folded.split()])
    return tuple([_word(raw) for raw in folded.split()])


@lru_cache(maxsize=4096)
def _words(text: str) -> tuple[_Word, ...]:
    return _words_of(_fold(text))


@lru_cache(maxsize=4096)
def _view(text: str) -> tuple[tuple[str, ...], tuple[_Word, ...] | None]:
    """The text's normalised words, and its _Words only when one of them is stretched (else
    every word matches by plain equality)."""
    folded = _fold(text)
    if _STRETCHED.search(folded) is None:
        return tuple(folded.split()), None
    words = _words_of(folded)
    return tuple(word.text for word in words), words


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


@lru_cache(maxsize=65536)
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
    """One trigger's answer. Never evaluates "intent" (None): that needs the embedding index
    TriggerIndex builds over all of an account's intent triggers at once."""
    if mode == "any":
        return Match("", 100.0)
    if mode == "exact":
        return match_exact(text, keywords)
    if mode == "contains":
        return match_contains(text, keywords)
    if mode == "fuzzy":
        return match_fuzzy(text, keywords, fuzzy_threshold or DEFAULT_FUZZY_THRESHOLD)
    # Intent needs an embedding index built over many phrases; one-off calls do not evaluate it
    # (TriggerIndex does). Unknown modes match nothing.
    return None


# --- compiled index -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One trigger as the index sees it."""

    key: Hashable  # e.g. the trigger id; unique within an index
    mode: str  # "exact" | "contains" | "fuzzy" | "intent" | "any"; anything else never matches
    keywords: tuple[str, ...]
    examples: tuple[str, ...] = ()  # intent only; keywords count as examples too
    fuzzy_threshold: float | None = None  # 0-100; None (or 0, as in match_text) = the default
    intent_threshold: float | None = None  # 0-100; None = triggers.intent.DEFAULT_INTENT_THRESHOLD

    def __post_init__(self) -> None:
        for name in ("keywords", "examples"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"Candidate.{name} must be a sequence of strings, not a string")
            object.__setattr__(self, name, tuple(value))


class _Entry(NamedTuple):
    """One keyword of one candidate."""

    slot: int  # the candidate's position in the index
    order: int  # the keyword's position among the candidate's keywords
    keyword: str  # as written: that is what a Match reports


_Needles = dict[tuple[str, ...], list[_Entry]]  # normalised keyword words -> entries


class _WordTable:
    """Exact or contains keywords, looked up by their normalised words.

    A text without stretched words matches a keyword only word for word, so a plain dict lookup
    answers. A stretched word ("guiiiide") also meets the keyword words whose doubled letters
    squeezed equal its own, so such texts are looked up by squeezed words and then checked
    with the _Word rule ("guiiiide" finds "guide", an ordinary "good" does not find "god").
    """

    def __init__(self, needles: _Needles) -> None:
        self.plain = needles
        self.squeezed: dict[tuple[str, ...], list[tuple[tuple[str, ...], list[_Entry]]]] = {}
        for needle, entries in needles.items():
            key = tuple(_squeeze(word) for word in needle)
            self.squeezed.setdefault(key, []).append((needle, entries))
        self.widths = sorted({len(needle) for needle in needles})

    def __bool__(self) -> bool:
        return bool(self.plain)

    def find(self, plain: tuple[str, ...], words: tuple[_Word, ...] | None, squeezed=None):
        """The entries whose keyword is exactly these words."""
        if words is None:
            return self.plain.get(plain, ())
        found: list[_Entry] = []
        for needle, entries in self.squeezed.get(squeezed, ()):
            if _run_matches(words, needle):
                found.extend(entries)
        return found


@lru_cache(maxsize=1)
def _numpy():
    """numpy, when installed (it comes with the intent extra): rapidfuzz's cdist needs it."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


# Below this many window x keyword pairs, one rapidfuzz.process.extract call per window costs
# less than a cdist call (which allocates a numpy matrix).
_CDIST_MIN_PAIRS = 256


class _FuzzyGroup:
    """Fuzzy keywords of one word count and one short-word signature.

    Words under four letters must be equal, so a window can only meet keywords whose short
    words are the same at the same places: the signature (the short words, None for a long
    one) is a dict key, and windows are only scored against their signature's group. All of a
    text's windows are scored against the group in one `rapidfuzz.process.cdist` call (a C++
    loop, ~10 ns a pair) when numpy is there, else with one `process.extract` call per window
    over the keyword lengths that can reach the lowest threshold in the group (fuzz.ratio is at
    most 100 * (1 - |la - lb| / (la + lb))), ~3x slower a pair.
    """

    __slots__ = ("choices", "cutoff", "entries", "hi_factor", "lengths", "lo_factor")

    def __init__(self, needles: dict[str, list[_Entry]], threshold: float) -> None:
        # A little below the lowest threshold: every pair rapidfuzz returns is scored again
        # exactly as match_fuzzy scores it, so rounding in the cutoff can never lose a match.
        self.cutoff = min(100.0, max(0.0, threshold - 0.5))
        slack = 1.0 - self.cutoff / 100.0
        self.lo_factor = (1.0 - slack) / (1.0 + slack)
        self.hi_factor = (1.0 + slack) / (1.0 - slack) if slack < 1.0 else float("inf")
        self.choices = sorted(needles, key=len)
        self.lengths = [len(choice) for choice in self.choices]
        self.entries = [needles[choice] for choice in self.choices]

    def hits(self, windows: list[str]) -> list[tuple[str, str, list[_Entry]]]:
        """(window, keyword, entries) for the pairs that may reach the lowest threshold."""
        np = _numpy()
        # cdist marks a pair below the cutoff with 0, so a cutoff of 0 needs extract.
        if (
            np is not None
            and self.cutoff > 0
            and len(windows) * len(self.choices) >= (_CDIST_MIN_PAIRS)
        ):
            scores = process.cdist(
                windows, self.choices, scorer=fuzz.ratio, processor=None, score_cutoff=self.cutoff
            )
            rows, cols = np.nonzero(scores)
            choices, entries = self.choices, self.entries
            return [
                (windows[row], choices[col], entries[col])
                for row, col in zip(rows.tolist(), cols.tolist(), strict=True)
            ]
        found = []
        for window in windows:
            width = len(window)
            lo = bisect_left(self.lengths, width * self.lo_factor - 1e-9)
            hi = bisect_right(self.lengths, width * self.hi_factor + 1e-9)
            if lo >= hi:
                continue
            for choice, _, index in process.extract(
                window,
                self.choices[lo:hi] if hi - lo < len(self.choices) else self.choices,
                scorer=fuzz.ratio,
                processor=None,
                score_cutoff=self.cutoff,
                limit=None,
            ):
                found.append((window, choice, self.entries[lo + index]))
        return found


class TriggerIndex:
    """Many triggers compiled once; `matches(text)` answers a text against all of them.

    The answer for each candidate is exactly `match_text(mode, text, keywords,
    fuzzy_threshold=...)` (intent aside: `match_text` never evaluates it, the index does,
    through `triggers.intent`). Build it once per account and trigger set and keep it: building
    costs about as much as matching tens of texts. An index does not change once built (the
    intent part is built on first use, under a lock), so threads may share it.
    """

    def __init__(self, candidates: Iterable[Candidate]) -> None:
        self._candidates: tuple[Candidate, ...] = tuple(candidates)
        seen: set[Hashable] = set()
        for candidate in self._candidates:
            if candidate.key in seen:
                raise ValueError(f"two candidates share the key {candidate.key!r}")
            seen.add(candidate.key)

        self._any = {c.key: Match("", 100.0) for c in self._candidates if c.mode == "any"}
        exact: _Needles = {}
        contains: _Needles = {}
        # signature -> joined stemmed keyword -> entries
        fuzzy: dict[tuple[str | None, ...], dict[str, list[_Entry]]] = {}
        self._fuzzy_thresholds: dict[int, float] = {}
        self._intent_phrases: dict[int, list[str]] = {}
        self._intent_thresholds: dict[int, float] = {}

        for slot, candidate in enumerate(self._candidates):
            mode = candidate.mode
            if mode in ("exact", "contains"):
                table = exact if mode == "exact" else contains
                for order, keyword in enumerate(candidate.keywords):
                    needle = tokens(keyword)
                    if needle:
                        table.setdefault(needle, []).append(_Entry(slot, order, keyword))
            elif mode == "fuzzy":
                # `or`, as match_text: a threshold of 0 means the default.
                threshold = float(candidate.fuzzy_threshold or DEFAULT_FUZZY_THRESHOLD)
                if threshold > 100.0:
                    continue  # no score reaches it
                self._fuzzy_thresholds[slot] = threshold
                for order, keyword in enumerate(candidate.keywords):
                    stems = tuple(_stem(word) for word in tokens(keyword))
                    if not stems:
                        continue
                    signature = tuple(word if len(word) < 4 else None for word in stems)
                    needles = fuzzy.setdefault(signature, {})
                    needles.setdefault(" ".join(stems), []).append(_Entry(slot, order, keyword))
            elif mode == "intent":
                phrases = [p for p in (*candidate.keywords, *candidate.examples) if p.strip()]
                if phrases:
                    self._intent_phrases[slot] = phrases
                    if candidate.intent_threshold is not None:
                        self._intent_thresholds[slot] = float(candidate.intent_threshold)

        self._exact = _WordTable(exact)
        self._contains = _WordTable(contains)
        self._fuzzy = {
            signature: _FuzzyGroup(
                needles,
                min(
                    self._fuzzy_thresholds[entry.slot]
                    for entries in needles.values()
                    for entry in entries
                ),
            )
            for signature, needles in fuzzy.items()
        }
        self._fuzzy_widths = sorted({len(signature) for signature in fuzzy})
        self._words_needed = bool(exact or contains or fuzzy)
        self._intent_lock = threading.Lock()
        self._intent_index = None
        self._intent_ready = False

    def __len__(self) -> int:
        return len(self._candidates)

    def matches(self, text: str) -> dict[Hashable, Match]:
        """Every candidate that matches the text, with its best Match."""
        found: dict[int, Match] = {}
        plain, words = _view(text) if self._words_needed else ((), None)
        if plain:
            squeezed = None if words is None else tuple(_squeeze(word) for word in plain)
            if self._exact:
                self._match_exact(plain, words, squeezed, found)
            if self._contains:
                self._match_contains(plain, words, squeezed, found)
            if self._fuzzy:
                self._match_fuzzy(plain, found)
        if self._intent_phrases:
            self._match_intent(text, found)
        candidates = self._candidates
        out = dict(self._any)
        for slot, match in found.items():
            out[candidates[slot].key] = match
        return out

    # --- per mode ---------------------------------------------------------------------------
    def _match_exact(self, plain, words, squeezed, found: dict[int, Match]) -> None:
        # match_exact answers with the first of the candidate's keywords that matches.
        first: dict[int, _Entry] = {}
        for entry in self._exact.find(plain, words, squeezed):
            held = first.get(entry.slot)
            if held is None or entry.order < held.order:
                first[entry.slot] = entry
        for slot, entry in first.items():
            found[slot] = Match(entry.keyword, 100.0)

    def _match_contains(self, plain, words, squeezed, found: dict[int, Match]) -> None:
        # match_contains keeps the longest keyword as written; the first of equal lengths.
        best: dict[int, _Entry] = {}
        count = len(plain)
        table = self._contains
        for width in table.widths:
            if width > count:
                break
            for start in range(count - width + 1):
                end = start + width
                entries = table.find(
                    plain[start:end],
                    None if words is None else words[start:end],
                    None if squeezed is None else squeezed[start:end],
                )
                for entry in entries:
                    held = best.get(entry.slot)
                    if held is None or (
                        (size := len(entry.keyword)) > (held_size := len(held.keyword))
                        or (size == held_size and entry.order < held.order)
                    ):
                        best[entry.slot] = entry
        for slot, entry in best.items():
            found[slot] = Match(entry.keyword, 100.0)

    def _match_fuzzy(self, plain, found: dict[int, Match]) -> None:
        stems = [_stem(word) for word in plain]
        shorts = [stem if len(stem) < 4 else None for stem in stems]
        count = len(stems)
        # The text's distinct word windows, by the group (signature) they can meet.
        windows: dict[tuple[str | None, ...], dict[str, None]] = {}
        for width in self._fuzzy_widths:
            if width > count:
                break
            for start in range(count - width + 1):
                signature = tuple(shorts[start : start + width])
                if signature in self._fuzzy:
                    windows.setdefault(signature, {})[" ".join(stems[start : start + width])] = None
        thresholds = self._fuzzy_thresholds
        best: dict[int, tuple[float, int, str]] = {}  # slot -> (score, order, keyword)
        for signature, distinct in windows.items():
            for window, needle, entries in self._fuzzy[signature].hits(list(distinct)):
                score = fuzz.ratio(window, needle)  # exactly what match_fuzzy computes
                for entry in entries:
                    if score < thresholds[entry.slot]:
                        continue
                    held = best.get(entry.slot)
                    if (
                        held is None
                        or score > held[0]
                        or (score == held[0] and entry.order < held[1])
                    ):
                        best[entry.slot] = (score, entry.order, entry.keyword)
        for slot, (score, _, keyword) in best.items():
            found[slot] = Match(keyword, score)

    def _match_intent(self, text: str, found: dict[int, Match]) -> None:
        index = self._intent()
        if index is None:
            return
        from triggers import intent

        for slot, score, phrase in index.best(
            text,
            thresholds=self._intent_thresholds,
            default_threshold=intent.DEFAULT_INTENT_THRESHOLD,
        ):
            if slot not in found:  # best first: the first row of a candidate is its best
                found[slot] = Match(phrase, float(score))

    def _intent(self):
        """The IntentIndex over every intent candidate, built on first use; None when intent
        matching is not available (then intent candidates never match)."""
        if self._intent_ready:
            return self._intent_index
        with self._intent_lock:
            if not self._intent_ready:
                from triggers import intent

                if intent.intent_available():
                    self._intent_index = intent.IntentIndex(self._intent_phrases)
                self._intent_ready = True
        return self._intent_index
