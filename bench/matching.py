"""Matching benchmark: one incoming text against an account's triggers, per match mode.

    .venv/bin/python bench/matching.py [--triggers 1000] [--texts 3000] [--intent-texts 300]
        [--seed 7] [--write-doc]

Builds, in memory (no database, no Django), an account with --triggers triggers per mode (the
same keyword sets in every mode: 1-4 keywords each, from a vocabulary of product words, a third
of them multi-word, some short ("pdf", "dm me"), some in other scripts; fuzzy triggers with a
few non-default thresholds), compiles it into `triggers.matching.TriggerIndex`, and times
`index.matches(text)` for each of --texts distinct comments: short ones (1-6 words) and long
ones (~40 words), half with a keyword in them (as written, shouted, stretched, accented, with a
typo or a word ending, with emoji) and half with nothing to find. Each text is matched once per
mode, with the normalisation caches cleared first, so every figure includes normalising a text
seen for the first time. Also times a mixed account (the triggers spread over the modes) and
the old way (`match_text` per trigger, on a sample of the texts) for comparison.

Intent: the index builds its embedding index on the first text that needs one; that first
call is reported as "first text (build)", then --intent-texts texts are timed warm. Skipped
with a note when `triggers.intent` says intent matching is unavailable.

Aims: under 1 ms per text for exact, contains and fuzzy with 1,000 triggers; under 20 ms for
intent. Figures are printed; with --write-doc they also replace this benchmark's section of
docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness
from _harness import (
    ROOT,
    command_line,
    machine_info,
    md_table,
    now_stamp,
    percentile,
    table,
    update_doc_section,
)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from triggers import matching
from triggers.matching import Candidate, TriggerIndex, match_text

DOC_NOTES = """
Aims: matching one text against an account's 1,000 triggers under 1 ms for each of exact,
contains and fuzzy, under 20 ms for intent. Times are `TriggerIndex.matches(text)` per text,
in microseconds, each text seen for the first time (normalisation caches cleared per mode);
"build" is `TriggerIndex(...)` (best of 3; `triggers/selectors.py` builds one per account and
event and reuses it until a trigger changes). The "old way" rows are the loop over triggers
calling `match_text` that selectors did before the index, on the first `--old-way-texts` texts.

- exact and contains are dict lookups on the text's normalised words (a text with a stretched
  word is looked up by squeezed words, then checked word by word); the time is mostly
  normalising the text.
- fuzzy groups keywords by word count and short-word signature (words under four letters must
  be equal, so they are part of the key) and scores all of a text's windows against a group in
  one `rapidfuzz.process.cdist` call; pairs it returns are scored again with `fuzz.ratio`, as
  `match_fuzzy` does. cdist needs numpy (a core dependency for this reason); without it,
  fuzzy would use one `process.extract` per window (row "fuzzy without numpy"), ~3x slower a
  pair, and long texts would miss the aim.
- intent is `triggers.intent.IntentIndex` (all-MiniLM-L6-v2 on CPU), built on the first text;
  nearly all of a text's time is encoding it with the model. A long text is scored on its
  first and last two sentences (batched), each cut to its first and last 12 words, which
  bounds the time. Two encoders of the same model (`INTENT_ENCODER`): `onnx` (the default,
  onnxruntime running the model exported to ONNX) and `torch` (sentence-transformers, the
  only one before issue 14); both are timed on the same texts, and "decisions" counts the texts
  whose set of matched triggers differs between them. Tried and not kept: torch's dynamic int8
  quantisation of the Linear layers (~2x faster than torch, but 30 of 300 texts changed
  their matched triggers: 609 matches became 570); two threads were ruled out before
  (triggers/intent.py: p99 spikes whenever another process wants the second core).
"""


def _wordlist(text: str) -> list[str]:
    return text.split()


AIM_US = {
    "exact": 1000.0,
    "contains": 1000.0,
    "fuzzy": 1000.0,
    "fuzzy without numpy": 1000.0,
    "intent (warm, onnx)": 20000.0,
    "intent (warm, torch)": 20000.0,
}

PRODUCT_WORDS = _wordlist(
    """
guide ebook course masterclass workshop webinar template checklist planner workbook preset
presets filter lightroom recipe recipes mealplan program coaching mentorship membership bundle
discount coupon code giveaway freebie sample catalog catalogue brochure pricing price prices
shipping delivery tracking order refund return exchange size sizes sizing colour color stock
restock preorder waitlist launch drop collection hoodie sweatshirt tshirt jacket sneakers
leggings dress skirt jeans necklace earrings bracelet ring candle serum cream lotion shampoo
conditioner moisturizer sunscreen skincare makeup lipstick mascara foundation palette brush
perfume fragrance supplement protein vitamins collagen smoothie blender kettle mug tumbler
bottle backpack wallet phonecase charger headphones speaker camera tripod lens microphone
ebooks podcast newsletter community discord telegram whatsapp link links bio website shop store
booking appointment consultation session call quote invoice tutorial tutorials video videos
reel reels playlist spreadsheet notion canva procreate brushes fonts mockup mockups wallpaper
stickers printable printables affiliate partnership collab sponsor ambassador wholesale retail
bulk starter premium deluxe ultimate beginner advanced bootcamp challenge
"""
)

SHORT_WORDS = ["pdf", "dm", "app", "kit", "bag", "tee", "hat", "box", "vip", "faq", "cv", "ig"]
OTHER_SCRIPTS = [
    "цена",
    "скидка",
    "гайд",
    "доставка",
    "τιμή",
    "δωρεάν",
    "οδηγός",
    "سعر",
    "دليل",
    "خصم",
    "価格",
    "ガイド",
    "無料",
    "precio",
    "guía",
    "café",
    "gratuit",
    "größe",
]
VERBS = ["send", "want", "need", "get", "share", "give", "show", "info", "more", "free"]
FILLER = _wordlist(
    """
love this so much omg amazing wow beautiful cute gorgeous stunning obsessed need want where
when what how who why can you me my your the a an is are was it this that these those and or
but with for from about just really very super totally honestly literally always never today
tonight tomorrow yesterday morning night weekend girl guys friend friends sister mom family
look looks looking great good nice best favorite favourite perfect thanks thank please pls yes
no maybe okay ok lol haha hahaha cant wait excited happy sad tired busy working home work again
still already also too much many more less little big small new old first last next time day
week year life world people everyone someone anyone nothing something everything posted post
picture photo pic colors vibes energy mood goals inspo queen king legend icon
"""
)
EMOJI = ["🔥", "😍", "🙏", "❤️", "✨", "👏", "😂", "💯", "🙌", "🥰"]


# --- the account ---------------------------------------------------------------------------------
def synthetic_words(rng: random.Random, count: int) -> list[str]:
    """Brand-like product words ("lumora", "kavix") to make the vocabulary as large as asked."""
    onsets = ["b", "br", "c", "d", "f", "g", "gl", "k", "l", "m", "n", "p", "pr", "r", "s", "st"]
    onsets += ["t", "tr", "v", "z", "sh", "ch"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    codas = ["", "", "n", "r", "x", "s", "l", "m", "ck"]
    out: set[str] = set()
    while len(out) < count:
        syllables = rng.randint(2, 3)
        word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
        out.add(word + rng.choice(codas))
    return sorted(out)


def vocabulary(rng: random.Random, size: int) -> list[str]:
    base = list(dict.fromkeys(PRODUCT_WORDS))
    return base + synthetic_words(rng, max(0, size - len(base)))


def keyword(rng: random.Random, vocab: list[str]) -> str:
    roll = rng.random()
    if roll < 0.55:
        return rng.choice(vocab)
    if roll < 0.62:
        return rng.choice(SHORT_WORDS)
    if roll < 0.67:
        return rng.choice(OTHER_SCRIPTS)
    if roll < 0.85:
        return f"{rng.choice(VERBS)} {rng.choice(vocab)}"
    if roll < 0.92:
        return f"{rng.choice(vocab)} {rng.choice(vocab)}"
    if roll < 0.96:
        return f"{rng.choice(['send me', 'how much', 'the', 'dm me'])} {rng.choice(vocab)}"
    return f"{rng.choice(VERBS)} the {rng.choice(vocab)}"


def keyword_sets(rng: random.Random, count: int, vocab: list[str]) -> list[tuple[str, ...]]:
    out = []
    for _ in range(count):
        words = list(dict.fromkeys(keyword(rng, vocab) for _ in range(rng.randint(1, 4))))
        out.append(tuple(words))
    return out


def fuzzy_threshold(rng: random.Random) -> float | None:
    roll = rng.random()
    return None if roll < 0.85 else rng.choice([70.0, 75.0, 85.0, 90.0])


def intent_examples(rng: random.Random, keywords: tuple[str, ...]) -> tuple[str, ...]:
    main = keywords[0]
    forms = [
        "how do I get the {k}",
        "can you send me the {k}",
        "is the {k} still available",
        "I would love the {k} please",
        "where can I find your {k}",
    ]
    return tuple(form.format(k=main) for form in rng.sample(forms, 2))


def candidates(
    mode: str, sets: list[tuple[str, ...]], rng: random.Random, intent: bool = False
) -> list[Candidate]:
    out = []
    for i, words in enumerate(sets):
        out.append(
            Candidate(
                key=i + 1,
                mode=mode,
                keywords=words,
                examples=intent_examples(rng, words) if intent else (),
                fuzzy_threshold=fuzzy_threshold(rng) if mode == "fuzzy" else None,
            )
        )
    return out


# --- texts ---------------------------------------------------------------------------------------
def typo(rng: random.Random, word: str) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(["swap", "drop", "double", "replace", "ending"])
    if kind == "swap":
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "replace":
        return word[:i] + rng.choice("aeiourstn") + word[i + 1 :]
    return word + rng.choice(["s", "es", "ing", "ed"])


def dress(rng: random.Random, phrase: str) -> str:
    """How people write a keyword: shouted, stretched, accented, with a typo or emoji."""
    roll = rng.random()
    if roll < 0.25:
        return phrase
    if roll < 0.4:
        return phrase.upper() + rng.choice(["!!", "!!!", "?", ""])
    if roll < 0.5:
        # stretch a letter: "guiiiide"
        for i, ch in enumerate(phrase):
            if ch in "aeiou":
                return phrase[:i] + ch * rng.randint(3, 6) + phrase[i + 1 :]
        return phrase
    if roll < 0.55:
        return phrase.replace("e", "é", 1).replace("a", "á", 1)
    if roll < 0.85:
        return " ".join(typo(rng, word) for word in phrase.split())
    return f"{rng.choice(EMOJI)}{phrase}{rng.choice(EMOJI)}"


def filler(rng: random.Random, count: int) -> list[str]:
    words = [rng.choice(FILLER) for _ in range(count)]
    if rng.random() < 0.5:
        words.append(rng.choice(EMOJI) * rng.randint(1, 3))
    return words


def texts(rng: random.Random, count: int, sets: list[tuple[str, ...]]) -> list[tuple[str, str]]:
    """(kind, text): kinds short/long x hit/miss ("hit" has a keyword in it, maybe typo'd)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < count:
        long = rng.random() < 0.4
        hit = rng.random() < 0.5
        words = filler(rng, rng.randint(34, 46) if long else rng.randint(0, 5))
        if hit:
            phrase = dress(rng, rng.choice(rng.choice(sets)))
            if not long and rng.random() < 0.4:
                words = []  # the keyword alone: what exact mode answers
            words.insert(rng.randint(0, len(words)), phrase)
        text = " ".join(words) or rng.choice(EMOJI)
        if rng.random() < 0.5:
            text = text[0].upper() + text[1:] + rng.choice(["", "!", "?", "!!", " 🙏"])
        if text in seen:
            continue
        seen.add(text)
        out.append((("long" if long else "short") + (" hit" if hit else " miss"), text))
    return out


# --- timing --------------------------------------------------------------------------------------
def clear_caches() -> None:
    """Forget every text (and word) seen: each mode starts from the same cold caches."""
    for cached in (matching.normalize, matching._words, matching._view, matching._stem):
        cached.cache_clear()


def time_each(
    texts_: list[tuple[str, str]], call: Callable[[str], dict]
) -> tuple[list[float], int, dict[str, list[float]]]:
    """Microseconds per text (each text once, caches cleared first), texts with a match."""
    clear_caches()
    for _, text in texts_[:50]:  # warm the code paths, not the caches
        call(text + " warmup")
    clear_caches()
    timings: list[float] = []
    by_kind: dict[str, list[float]] = {}
    matched = 0
    clock = time.perf_counter_ns
    for kind, text in texts_:
        t0 = clock()
        found = call(text)
        spent = (clock() - t0) / 1000
        timings.append(spent)
        by_kind.setdefault(kind, []).append(spent)
        matched += bool(found)
    return timings, matched, by_kind


def stats(values: list[float]) -> tuple[float, float, float, float]:
    ordered = sorted(values)
    return (
        statistics.median(ordered),
        percentile(ordered, 99),
        statistics.fmean(ordered),
        ordered[-1],
    )


def timed_build(cands: list[Candidate]) -> tuple[TriggerIndex, float]:
    best, index = float("inf"), None
    for _ in range(3):
        t0 = time.perf_counter()
        index = TriggerIndex(cands)
        best = min(best, time.perf_counter() - t0)
    return index, best * 1000


def old_way(cands: list[Candidate]) -> Callable[[str], dict]:
    def call(text: str) -> dict:
        out = {}
        for c in cands:
            found = match_text(c.mode, text, list(c.keywords), fuzzy_threshold=c.fuzzy_threshold)
            if found is not None:
                out[c.key] = found
        return out

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=1000, help="triggers per mode")
    parser.add_argument("--texts", type=int, default=3000, help="texts matched per mode")
    parser.add_argument(
        "--intent-texts", type=int, default=300, help="texts matched for intent (0 skips it)"
    )
    parser.add_argument("--vocab", type=int, default=600, help="distinct product words")
    parser.add_argument("--old-way-texts", type=int, default=100, help="0 skips the old way")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--encoders", default="onnx,torch", help="intent encoders timed (INTENT_ENCODER values)"
    )
    parser.add_argument(
        "--intent-only", action="store_true", help="time intent only (no doc update then)"
    )
    parser.add_argument("--write-doc", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    if args.intent_only and args.write_doc:
        parser.error("--write-doc needs every mode: drop --intent-only")

    rng = random.Random(args.seed)
    vocab = vocabulary(rng, args.vocab)
    sets = keyword_sets(rng, args.triggers, vocab)
    sample = texts(rng, args.texts, sets)
    keywords = sum(len(s) for s in sets)
    distinct = len({k for s in sets for k in s})
    multi = sum(1 for s in sets for k in s if " " in k)
    print(f"machine: {machine_info()}")
    print(
        f"account: {args.triggers} triggers per mode, {keywords} keywords ({distinct} distinct, "
        f"{multi} multi-word), vocabulary {len(vocab)} words; {len(sample)} distinct texts "
        f"({sum(k.startswith('long') for k, _ in sample)} long, "
        f"{sum(k.endswith('hit') for k, _ in sample)} with a keyword)"
    )

    headers = ["mode", "build ms", "median us", "p99 us", "mean us", "max us", "matched", "aim"]
    rows: list[list[object]] = []
    kind_rows: list[list[object]] = []
    notes: list[str] = []

    def report(mode: str, build_ms: float, timings, matched: int, by_kind, n: int) -> None:
        median, p99, mean, top = stats(timings)
        aim = AIM_US.get(mode)
        verdict = "-" if aim is None else ("met" if p99 < aim else f"p99 NOT < {aim:.0f}")
        if aim is not None and p99 >= aim and median < aim:
            verdict = f"median met, p99 NOT < {aim:.0f}"
        rows.append(
            [
                mode,
                "-" if build_ms is None else f"{build_ms:.1f}",
                f"{median:.0f}",
                f"{p99:.0f}",
                f"{mean:.0f}",
                f"{top:.0f}",
                f"{matched}/{n}",
                verdict,
            ]
        )
        for kind in sorted(by_kind):
            k_median, k_p99, k_mean, _ = stats(by_kind[kind])
            kind_rows.append(
                [mode, kind, len(by_kind[kind]), f"{k_median:.0f}", f"{k_p99:.0f}", f"{k_mean:.0f}"]
            )

    for mode in () if args.intent_only else ("exact", "contains", "fuzzy", "any"):
        cands = candidates(mode, sets, random.Random(args.seed + 1))
        index, build_ms = timed_build(cands)
        timings, matched, by_kind = time_each(sample, index.matches)
        report(mode, build_ms, timings, matched, by_kind, len(sample))

    # Without numpy (it comes with the intent extra), fuzzy falls back to process.extract.
    if args.intent_only:
        pass
    elif matching._numpy() is not None:
        real = matching._numpy
        matching._numpy = lambda: None
        try:
            cands = candidates("fuzzy", sets, random.Random(args.seed + 1))
            index, build_ms = timed_build(cands)
            timings, matched, by_kind = time_each(sample, index.matches)
            report("fuzzy without numpy", build_ms, timings, matched, by_kind, len(sample))
        finally:
            matching._numpy = real
    else:
        notes.append("numpy is not installed: fuzzy used process.extract (no cdist)")

    # A mixed account: the same triggers spread over exact, contains and fuzzy (+ a few any).
    mode_rng = random.Random(args.seed + 2)
    mixed = [
        Candidate(
            key=i + 1,
            mode=mode_rng.choice(["exact", "contains", "contains", "fuzzy", "fuzzy"])
            if i % 50
            else "any",
            keywords=s,
        )
        for i, s in enumerate(sets)
    ]
    if not args.intent_only:
        index, build_ms = timed_build(mixed)
        timings, matched, by_kind = time_each(sample, index.matches)
        report("mixed (no intent)", build_ms, timings, matched, by_kind, len(sample))

    if args.old_way_texts and not args.intent_only:
        subset = sample[: args.old_way_texts]
        for mode in ("contains", "fuzzy"):
            cands = candidates(mode, sets, random.Random(args.seed + 1))
            timings, matched, by_kind = time_each(subset, old_way(cands))
            report(f"{mode}: old way (match_text loop)", None, timings, matched, {}, len(subset))

    # --- intent ---
    try:
        from triggers import intent
    except ImportError as exc:
        intent = None
        notes.append(f"intent skipped: triggers.intent cannot be imported ({exc})")
    if intent is not None and not args.intent_texts:
        notes.append("intent skipped: --intent-texts 0")
    elif intent is not None and not intent.intent_available():
        notes.append(f"intent skipped: unavailable ({intent.intent_unavailable_reason()})")
    elif intent is not None:
        cands = candidates("intent", sets, random.Random(args.seed + 1), intent=True)
        subset = sample[: args.intent_texts]
        decisions: dict[str, list[list]] = {}
        for encoder in args.encoders.split(","):
            os.environ["INTENT_ENCODER"] = encoder
            intent._loader = intent._Loader()  # a process that has loaded nothing yet
            intent._cache.clear()
            if not intent.intent_available():
                notes.append(f"intent ({encoder}) skipped: {intent.intent_unavailable_reason()}")
                continue
            t0 = time.perf_counter()
            index = TriggerIndex(cands)
            init_ms = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            index.matches("is the guide still available?")
            first_ms = (time.perf_counter() - t0) * 1000
            timings, matched, by_kind = time_each(subset, index.matches)
            report(f"intent (warm, {encoder})", init_ms, timings, matched, by_kind, len(subset))
            decisions[encoder] = [sorted(index.matches(text)) for _, text in subset]
            notes.append(
                f"intent ({encoder}): TriggerIndex() {init_ms:.1f} ms; first text (builds the "
                f"embedding index over {sum(len(c.keywords) + len(c.examples) for c in cands)} "
                f"phrases, loads the model) {first_ms:.0f} ms"
            )
        if len(decisions) > 1:
            (first, base), *others = decisions.items()
            for encoder, found in others:
                changed = sum(a != b for a, b in zip(base, found, strict=True))
                notes.append(
                    f"intent decisions: {changed} of {len(subset)} texts match a different set "
                    f"of triggers with {encoder} than with {first}"
                )

    print()
    print(table(headers, rows))
    print()
    print(table(["mode", "texts", "n", "median us", "p99 us", "mean us"], kind_rows))
    for note in notes:
        print(note)

    if args.write_doc:
        body = "\n".join(
            [
                "## Matching (bench/matching.py)",
                "",
                f"- Date: {now_stamp()}",
                f"- Machine: {machine_info()}",
                f"- Command: `{command_line()}`",
                f"- Account: {args.triggers} triggers per mode, {keywords} keywords "
                f"({distinct} distinct, {multi} multi-word); {len(sample)} distinct texts "
                f"({sum(k.startswith('long') for k, _ in sample)} long, "
                f"{sum(k.endswith('hit') for k, _ in sample)} with a keyword)",
                "",
                DOC_NOTES.strip(),
                "",
                md_table(headers, rows),
                "",
                "By kind of text (short: 0-6 words, long: 35-47 words; hit: a keyword is in it):",
                "",
                md_table(["mode", "texts", "n", "median us", "p99 us", "mean us"], kind_rows),
                "",
                *[f"- {note}" for note in notes],
            ]
        )
        update_doc_section("matching", body)
        print("docs/performance.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
