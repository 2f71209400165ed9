"""Text matching: normalisation and every match mode, table-driven."""

import random

import pytest

from triggers import matching
from triggers.matching import (
    DEFAULT_FUZZY_THRESHOLD,
    Candidate,
    Match,
    TriggerIndex,
    match_contains,
    match_exact,
    match_fuzzy,
    match_text,
    normalize,
)


# --- normalize ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("guide", "guide"),
        ("GUIDE", "guide"),
        ("GUIDE!!", "guide"),
        ("guide 🙏", "guide"),
        ("🔥guide🔥", "guide"),
        ("Guíde", "guide"),
        ("ÉCOLE", "ecole"),
        ("Straße", "strasse"),
        ("guiiiide", "guiide"),
        ("GUIIIIIDE!!!", "guiide"),
        ("coffee", "coffee"),  # a double letter is spelling, not stretching
        ("  What's   the\tPRICE?? ", "what s the price"),
        ("send-guide", "send guide"),
        ("snake_case", "snake case"),
        ("line\nbreak", "line break"),
        ("🔥🔥🔥", ""),
        ("", ""),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_normalize_keeps_repeated_digits():
    assert normalize("1000 followers") == "1000 followers"


# --- exact --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("guide", ["guide"], "guide"),
        ("GUIDE!!", ["guide"], "guide"),
        ("Guíde 🙏", ["guide"], "guide"),
        ("guiiiide", ["guide"], "guide"),
        ("  send   guide ", ["send guide"], "send guide"),
        ("link", ["guide", "link"], "link"),
        ("GUIDE", ["Guide"], "Guide"),  # the keyword is reported as written
        ("the guide", ["guide"], None),
        ("guide please", ["guide"], None),
        ("guides", ["guide"], None),
        ("gude", ["guide"], None),
        ("!!!", ["guide"], None),
        ("", ["guide"], None),
        ("guide", [], None),
    ],
)
def test_match_exact(text, keywords, expected):
    match = match_exact(text, keywords)
    assert (match.keyword if match else None) == expected


def test_match_exact_text_of_only_emoji_never_matches_an_emoji_keyword():
    # Both sides normalise to the empty string, which must not count as equal.
    assert match_exact("🔥", ["🔥"]) is None


def test_match_exact_numbers_are_not_folded():
    assert match_exact("10", ["1000"]) is None


# --- contains -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("what's the price?", ["price"], "price"),
        ("PRICE please", ["price"], "price"),
        ("Príce?", ["price"], "price"),
        ("price🔥🔥", ["price"], "price"),
        ("guiiiide please!!", ["guide"], "guide"),
        ("price", ["price"], "price"),
        ("priceless", ["price"], None),
        ("the prices", ["price"], None),
        ("reprice it", ["price"], None),
        ("please send guide", ["send guide"], "send guide"),
        ("please SEND-GUIDE!", ["send guide"], "send guide"),
        ("send   guide", ["send guide"], "send guide"),
        ("send me the guide", ["send guide"], None),
        ("guide send", ["send guide"], None),
        ("so what's the price?", ["what's the price"], "what's the price"),
        ("no keyword here", ["price"], None),
        ("", ["price"], None),
        ("price", [], None),
    ],
)
def test_match_contains(text, keywords, expected):
    match = match_contains(text, keywords)
    assert (match.keyword if match else None) == expected


@pytest.mark.parametrize("keywords", [["guide", "send guide"], ["send guide", "guide"]])
def test_match_contains_prefers_the_longer_keyword_whatever_the_order(keywords):
    assert match_contains("please send guide", keywords).keyword == "send guide"


def test_match_contains_scores_a_hit_as_certain():
    assert match_contains("price?", ["price"]).score == 100.0


@pytest.mark.parametrize(
    ("text", "keyword"), [("freeeee guide pls", "free"), ("soooo goooood", "good")]
)
def test_match_contains_stretched_words_with_double_letters(text, keyword):
    assert match_contains(text, [keyword]) is not None


# --- fuzzy --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("price", ["price"], "price"),
        ("prcie", ["price"], "price"),  # transposed letters
        ("what's the prcie?", ["price"], "price"),  # a typo inside a longer comment
        ("gide", ["guide"], "guide"),  # a missing letter
        ("prices", ["price"], "price"),
        ("pricing", ["price"], "price"),
        ("priced", ["price"], "price"),
        ("PRICES!!", ["price"], "price"),
        ("sned guide", ["send guide"], "send guide"),
        ("send guides", ["send guide"], "send guide"),
        ("hello there", ["price"], None),
        ("link", ["lint"], None),
        ("", ["price"], None),
        ("price", [], None),
    ],
)
def test_match_fuzzy(text, keywords, expected):
    match = match_fuzzy(text, keywords)
    assert (match.keyword if match else None) == expected


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("pdf", "pdf"),
        ("PDF please", "pdf"),
        ("dm me", "dm"),
    ],
)
def test_match_fuzzy_short_words_match_when_spelled_exactly(text, keyword):
    assert match_fuzzy(text, [keyword]) is not None


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("pfd", "pdf"),
        ("dn me", "dm"),
        ("him", "hi"),
    ],
)
def test_match_fuzzy_short_words_tolerate_no_typo(text, keyword):
    assert match_fuzzy(text, [keyword]) is None


@pytest.mark.parametrize("text", ["chat with me", "my cart", "nice coat"])
def test_match_fuzzy_short_keyword_tolerates_no_typo(text):
    assert match_fuzzy(text, ["cat"]) is None


def test_match_fuzzy_reports_a_score_below_certain_for_a_typo():
    match = match_fuzzy("prcie", ["price"])
    assert DEFAULT_FUZZY_THRESHOLD <= match.score < 100.0


def test_match_fuzzy_accepts_a_score_equal_to_the_threshold():
    score = match_fuzzy("prcie", ["price"]).score
    assert match_fuzzy("prcie", ["price"], threshold=score) is not None


def test_match_fuzzy_rejects_a_score_below_the_threshold():
    score = match_fuzzy("prcie", ["price"]).score
    assert match_fuzzy("prcie", ["price"], threshold=score + 1) is None


def test_match_fuzzy_a_lower_threshold_admits_more():
    assert match_fuzzy("prxxe", ["price"]) is None
    assert match_fuzzy("prxxe", ["price"], threshold=50) is not None


def test_match_fuzzy_picks_the_best_scoring_keyword():
    assert match_fuzzy("guide", ["gide", "guide"]).keyword == "guide"
    assert match_fuzzy("guide", ["guide", "gide"]).keyword == "guide"


# --- match_text ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "text", "matches"),
    [
        ("exact", "guide", True),
        ("exact", "the guide", False),
        ("contains", "the guide please", True),
        ("contains", "the guid please", False),
        ("fuzzy", "the guid please", True),
        ("fuzzy", "nothing alike", False),
        ("any", "nothing alike", True),
        ("any", "", True),
    ],
)
def test_match_text_dispatches_on_mode(mode, text, matches):
    assert (match_text(mode, text, ["guide"]) is not None) is matches


def test_match_text_fuzzy_uses_the_given_threshold():
    assert match_text("fuzzy", "prcie", ["price"]) is not None
    assert match_text("fuzzy", "prcie", ["price"], fuzzy_threshold=95) is None


def test_match_text_intent_is_not_evaluated_by_this_version():
    # import_triggers warns that intent triggers are stored but not answered.
    assert match_text("intent", "how much is it", ["price"]) is None


def test_match_text_unknown_mode_matches_nothing():
    assert match_text("regex", "guide", ["guide"]) is None


# --- TriggerIndex -------------------------------------------------------------------------------
# The index must answer exactly what match_text answers per trigger; these tables pin what the
# answers are, the property tests below pin that the two agree on many generated texts.
def _index_match(mode, text, keywords, **extra):
    index = TriggerIndex([Candidate("t", mode, tuple(keywords), **extra)])
    match = index.matches(text).get("t")
    return match.keyword if match else None


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("guide", ["guide"], "guide"),
        ("GUIIIIDE!!", ["guide"], "guide"),
        ("Guíde 🙏", ["guide"], "guide"),
        ("🔥 send   GUIDE 🔥", ["send guide"], "send guide"),
        ("freeeee", ["free"], "free"),  # a stretched double letter
        ("good", ["god"], None),  # an ordinary double letter is spelling
        ("gooood", ["god"], "god"),  # ... but a stretched one is squeezed
        ("ЦЕНА!", ["цена"], "цена"),  # Cyrillic
        ("Τιμή;", ["τιμη"], "τιμη"),  # Greek, accent folded
        ("سعر", ["سعر"], "سعر"),  # Arabic
        ("価格", ["価格"], "価格"),  # Japanese
        ("価格です", ["価格"], None),
        ("link", ["guide", "link", "Link"], "link"),  # the first keyword that matches
        ("the guide", ["guide"], None),
        ("gude", ["guide"], None),
        ("🔥", ["🔥"], None),
        ("1000", ["10"], None),
        ("", ["guide"], None),
    ],
)
def test_index_exact(text, keywords, expected):
    assert _index_match("exact", text, keywords) == expected


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("what's the price?", ["price"], "price"),
        ("Príce?? 🔥", ["price"], "price"),
        ("guiiiide please!!", ["guide"], "guide"),
        ("soooo goooood", ["good"], "good"),
        ("please SEND-GUIDE!", ["send guide"], "send guide"),
        ("please send guide", ["guide", "send guide"], "send guide"),  # the longest keyword
        ("please send guide", ["send guide", "guide"], "send guide"),
        ("guide or price", ["price", "guide"], "price"),  # equal lengths: the first keyword
        ("какая цена?", ["цена"], "цена"),
        ("πόση είναι η τιμή", ["τιμη"], "τιμη"),
        ("كم سعر هذا", ["سعر"], "سعر"),
        ("価格 🙏", ["価格"], "価格"),
        ("価格はいくらですか", ["価格"], None),  # no spaces between Japanese words: one word
        ("priceless", ["price"], None),
        ("the prices", ["price"], None),
        ("send me the guide", ["send guide"], None),
        ("guide send", ["send guide"], None),
        ("", ["price"], None),
    ],
)
def test_index_contains(text, keywords, expected):
    assert _index_match("contains", text, keywords) == expected


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("prcie", ["price"], "price"),
        ("what's the prcie?", ["price"], "price"),
        ("PRICES!!", ["price"], "price"),
        ("pricing 🙏", ["price"], "price"),
        ("guiiiide", ["guide"], "guide"),
        ("sned guides", ["send guide"], "send guide"),
        ("ценаа", ["цена"], "цена"),  # Cyrillic, a doubled letter
        ("δωρεάν", ["δωρεαν"], "δωρεαν"),
        ("guide", ["gide", "guide"], "guide"),  # the best score wins
        ("guide", ["guide", "Guide"], "guide"),  # equal scores: the first keyword
        ("pfd", ["pdf"], None),  # short words tolerate no typo
        ("dm me", ["dm"], "dm"),
        ("dn me", ["dm"], None),
        ("my cart", ["cat"], None),
        ("hello there", ["price"], None),
        ("", ["price"], None),
    ],
)
def test_index_fuzzy(text, keywords, expected):
    assert _index_match("fuzzy", text, keywords) == expected


def test_index_fuzzy_thresholds_are_per_candidate():
    index = TriggerIndex(
        [
            Candidate("loose", "fuzzy", ("price",), fuzzy_threshold=70),
            Candidate("default", "fuzzy", ("price",)),
            Candidate("strict", "fuzzy", ("price",), fuzzy_threshold=95),
        ]
    )
    found = index.matches("prcie")
    assert set(found) == {"loose", "default"}
    assert found["loose"] == found["default"] == match_fuzzy("prcie", ["price"])
    assert set(index.matches("price")) == {"loose", "default", "strict"}


def test_index_fuzzy_threshold_zero_means_the_default_as_in_match_text():
    assert _index_match("fuzzy", "prxxe", ["price"], fuzzy_threshold=0) is None
    assert _index_match("fuzzy", "prxxe", ["price"], fuzzy_threshold=50) == "price"


def test_index_reports_every_matching_candidate_with_its_own_keyword():
    index = TriggerIndex(
        [
            Candidate(1, "exact", ("price",)),
            Candidate(2, "contains", ("the price", "price")),
            Candidate(3, "fuzzy", ("prise", "price")),
            Candidate(4, "any", ()),
            Candidate(5, "contains", ("guide",)),
            Candidate(6, "regex", ("price",)),  # unknown modes never match
        ]
    )
    assert index.matches("What's the PRICE?") == {
        2: Match("the price", 100.0),
        3: Match("price", 100.0),
        4: Match("", 100.0),
    }
    assert index.matches("price") == {
        1: Match("price", 100.0),
        2: Match("price", 100.0),
        3: Match("price", 100.0),
        4: Match("", 100.0),
    }
    assert index.matches("") == {4: Match("", 100.0)}


def test_index_empty():
    assert TriggerIndex([]).matches("guide") == {}


def test_index_rejects_two_candidates_with_one_key():
    with pytest.raises(ValueError, match="share the key"):
        TriggerIndex([Candidate(1, "exact", ("a",)), Candidate(1, "fuzzy", ("b",))])


def test_candidate_keywords_must_not_be_a_string():
    with pytest.raises(TypeError):
        Candidate(1, "exact", "guide")


def test_candidate_keeps_a_list_of_keywords_as_a_tuple():
    assert Candidate(1, "exact", ["guide"]).keywords == ("guide",)


# --- TriggerIndex == match_text, over generated texts ---------------------------------------------
_WORDS = [
    "guide",
    "price",
    "prices",
    "pricing",
    "prcie",
    "free",
    "good",
    "god",
    "coffee",
    "send",
    "sned",
    "link",
    "lint",
    "pdf",
    "pfd",
    "dm",
    "me",
    "the",
    "cat",
    "chat",
    "ebook",
    "ebooks",
    "course",
    "cuorse",
    "discount",
    "discounts",
    "priceless",
    "1000",
    "10",
    "a",
    "i",
    "Guíde",
    "ÉCOLE",
    "ecole",
    "Straße",
    "strasse",
    "naïve",
    "café",
    "цена",
    "ценаа",
    "скидка",
    "скидкі",
    "τιμή",
    "τιμη",
    "δωρεάν",
    "سعر",
    "سعرر",
    "価格",
    "ガイド",
]
_DECOR = ["", "!", "!!", "?", " 🙏", "🔥", " 🔥🔥", ".", ",", "...", "-", "_", "'s", "😍"]


def _stretch(rng, word):
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if not letters:
        return word
    i = rng.choice(letters)
    return word[:i] + word[i] * rng.randint(3, 6) + word[i + 1 :]


def _generated_word(rng):
    word = rng.choice(_WORDS)
    roll = rng.random()
    if roll < 0.15:
        word = _stretch(rng, word)
    elif roll < 0.25:
        word = word.upper()
    elif roll < 0.3:
        word = word.title()
    return word + (rng.choice(_DECOR) if rng.random() < 0.3 else "")


def _generated_text(rng):
    count = rng.choice([0, 1, 1, 1, 2, 2, 3, 4, 6, 12])
    return rng.choice(["", " ", "🔥 "]) + " ".join(_generated_word(rng) for _ in range(count))


def _generated_keyword(rng):
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(["🔥", "", "!!"])  # normalises to nothing
    words = [rng.choice(_WORDS) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
    if rng.random() < 0.1:
        words = [_stretch(rng, words[0]), *words[1:]]
    return " ".join(words)


def _generated_candidates(rng, count):
    candidates = []
    for key in range(count):
        mode = rng.choice(["exact", "contains", "fuzzy", "fuzzy", "any", "regex"])
        keywords = tuple(_generated_keyword(rng) for _ in range(rng.choice([0, 1, 1, 2, 3, 5])))
        threshold = rng.choice([None, None, None, 0, 40, 60, 70, 85, 90, 95.5, 100, 101])
        candidates.append(Candidate(key, mode, keywords, fuzzy_threshold=threshold))
    return candidates


def _per_candidate(candidates, text):
    out = {}
    for c in candidates:
        match = match_text(c.mode, text, list(c.keywords), fuzzy_threshold=c.fuzzy_threshold)
        if match is not None:
            out[c.key] = match
    return out


@pytest.fixture(params=["cdist", "extract"])
def fuzzy_path(request, monkeypatch):
    """The index scores fuzzy windows with cdist when numpy is there, else with extract."""
    if request.param == "cdist":
        if matching._numpy() is None:
            pytest.skip("numpy is not installed: the cdist path is never taken")
        monkeypatch.setattr(matching, "_CDIST_MIN_PAIRS", 0)  # even for tiny groups
    else:
        monkeypatch.setattr(matching, "_numpy", lambda: None)
    return request.param


@pytest.mark.parametrize("seed", range(6))
def test_index_answers_what_match_text_answers(seed, fuzzy_path):
    rng = random.Random(seed)
    candidates = _generated_candidates(rng, 80)
    index = TriggerIndex(candidates)
    texts = [_generated_text(rng) for _ in range(250)]
    # Texts made of the keywords themselves, dressed up, so every mode has hits to agree on.
    for c in candidates[:40]:
        for keyword in c.keywords:
            texts.append(_stretch(rng, keyword).upper() + " " + rng.choice(_DECOR))
            texts.append(f"{_generated_word(rng)} {keyword} {_generated_word(rng)}")
    hits = 0
    for text in texts:
        expected = _per_candidate(candidates, text)
        assert index.matches(text) == expected, text
        hits += len(expected)
    # The comparison is only worth something if matches of every kind happened.
    modes = {c.key: c.mode for c in candidates}
    matched_modes = {
        modes[key] for text in texts[:: max(1, len(texts) // 150)] for key in index.matches(text)
    }
    assert {"exact", "contains", "fuzzy", "any"} <= matched_modes
    assert hits > len(texts)


def test_index_answers_what_match_text_answers_for_a_large_account(fuzzy_path):
    rng = random.Random(99)
    candidates = _generated_candidates(rng, 400)
    index = TriggerIndex(candidates)
    for _ in range(150):
        text = _generated_text(rng)
        assert index.matches(text) == _per_candidate(candidates, text), text


# --- TriggerIndex: intent -------------------------------------------------------------------------
class _FakeIntentIndex:
    """Stands in for triggers.intent.IntentIndex: scores are given per (key, phrase)."""

    built: list = []

    def __init__(self, phrases_by_key):
        self.phrases_by_key = {key: list(phrases) for key, phrases in phrases_by_key.items()}
        self.calls = []
        _FakeIntentIndex.built.append(self)

    def best(self, text, thresholds=None, default_threshold=0.0):
        self.calls.append((text, dict(thresholds or {}), default_threshold))
        rows = []
        for key, phrases in self.phrases_by_key.items():
            for phrase in phrases:
                score = 90.0 if phrase.split()[0] in text else 30.0
                if score >= (thresholds or {}).get(key, default_threshold):
                    rows.append((key, score, phrase))
        return sorted(rows, key=lambda row: -row[1])


@pytest.fixture
def fake_intent(monkeypatch):
    from triggers import intent

    _FakeIntentIndex.built = []
    monkeypatch.setattr(intent, "IntentIndex", _FakeIntentIndex)
    monkeypatch.setattr(intent, "intent_available", lambda: True)
    return intent


def test_index_intent_is_built_once_on_first_use_over_keywords_and_examples(fake_intent):
    index = TriggerIndex(
        [
            Candidate("price", "intent", ("price",), examples=("how much is it",)),
            Candidate("guide", "intent", (), examples=("guide please", "  ")),
            Candidate("none", "intent", ()),  # nothing to listen for
            Candidate("exact", "exact", ("price",)),
        ]
    )
    assert _FakeIntentIndex.built == []
    assert index.matches("how much?") == {"price": Match("how much is it", 90.0)}
    assert index.matches("price") == {
        "price": Match("price", 90.0),
        "exact": Match("price", 100.0),
    }
    [built] = _FakeIntentIndex.built
    assert sorted(built.phrases_by_key.values()) == [["guide please"], ["price", "how much is it"]]


def test_index_intent_thresholds_default_and_per_candidate(fake_intent):
    index = TriggerIndex(
        [
            Candidate("loose", "intent", ("price",), intent_threshold=20),
            Candidate("default", "intent", ("price",)),
            Candidate("strict", "intent", ("price",), intent_threshold=95),
        ]
    )
    assert set(index.matches("nothing alike")) == {"loose"}  # 30 >= 20
    assert set(index.matches("price?")) == {"loose", "default"}  # 90 < 95
    [built] = _FakeIntentIndex.built
    _, thresholds, default = built.calls[-1]
    assert sorted(thresholds.values()) == [20.0, 95.0]
    assert default == fake_intent.DEFAULT_INTENT_THRESHOLD


def test_index_intent_never_matches_when_unavailable(fake_intent, monkeypatch):
    monkeypatch.setattr(fake_intent, "intent_available", lambda: False)
    index = TriggerIndex([Candidate("price", "intent", ("price",)), Candidate("any", "any", ())])
    assert index.matches("price") == {"any": Match("", 100.0)}
    assert _FakeIntentIndex.built == []


def test_index_without_intent_candidates_never_asks_about_intent(fake_intent, monkeypatch):
    def boom():
        raise AssertionError("intent consulted")

    monkeypatch.setattr(fake_intent, "intent_available", boom)
    assert TriggerIndex([Candidate(1, "contains", ("price",))]).matches("price?") == {
        1: Match("price", 100.0)
    }


def _intent_model_reason():
    from triggers import intent

    return intent.intent_unavailable_reason()


@pytest.mark.skipif(
    bool(_intent_model_reason()), reason=f"intent unavailable: {_intent_model_reason()}"
)
def test_index_intent_with_the_model():
    index = TriggerIndex(
        [
            Candidate("price", "intent", ("price",), examples=("how much is it",)),
            Candidate("guide", "intent", ("guide",), examples=("send me the guide",)),
            Candidate("strict", "intent", ("price",), intent_threshold=99.5),
            Candidate("anything", "intent", ("price",), intent_threshold=0),
            Candidate("fuzzy", "fuzzy", ("price",)),
        ]
    )
    found = index.matches("How much does this cost?")
    assert set(found) == {"price", "anything"}
    assert found["price"].keyword == "how much is it"
    assert 0 < found["price"].score <= 100
    assert set(index.matches("can I get the guide pls")) == {"guide", "anything"}
    assert set(index.matches("what's the prcie")) >= {"fuzzy", "anything"}
