"""Text matching: normalisation and every match mode, table-driven."""

import pytest

from triggers.matching import (
    DEFAULT_FUZZY_THRESHOLD,
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
