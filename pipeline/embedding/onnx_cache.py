"""Build the MiniLM ONNX graph once per weights/builder/precision and keep it on disk.

    path = cached_model(model_dir, cache_dir, "int8", tokenizer)   # builds on first use

The file is ``<cache_dir>/all-MiniLM-L6-v2-<sha256 of model.safetensors, 16 hex>-b<builder
version>-<precision>.onnx``: new weights, a new builder or another precision each get their
own file, and a stale one is never reused. The build takes a few seconds and about 300 MB
of memory above the interpreter (~440 MB for the whole child process), once per data
directory, in a short-lived child process (see ``build_in_child``) that dies with its
parent and is stopped after ``BUILD_TIMEOUT_SECONDS``; it is written to a ``.build-*``
directory and renamed into place, so two processes building at once both end up with a
whole file. ``.build-*`` directories a killed build left behind are removed by the next
build once they are ``DEBRIS_AGE_SECONDS`` old. Its sha256 is kept
beside it (``<name>.onnx.sha256``) and checked on every load: a graph damaged in place,
even without changing size, is built again rather than loaded into wrong vectors.

``int8``: SmoothQuant-style smoothing measured on ``calibration.CALIBRATION_TEXTS``, then
``onnxruntime.quantization.quantize_dynamic`` on the weight matmuls (int8 weights per output
channel, activations quantized per batch at run time). ``float32``: the graph as built.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import onnx

from pipeline.errors import SoulprintError

from .calibration import CALIBRATION_TEXTS
from .onnx_graph import BUILDER_VERSION, BertConfig, build_bert_graph, weight_nodes

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "float32")
# Migration strength of SmoothQuant: 0.65 gave the best worst-case cosine against
# sentence-transformers (0.995; 0.977 without smoothing, 0.988-0.993 at 0.6-0.8).
SMOOTH_ALPHA = 0.65
# Weight matmuls left in float32. The first layer's feed-forward output reads GELU values
# with the widest range of the model; alone in float32 it lifted the worst cosine from
# 0.989 to 0.99+ (a two-token text) for 1/24 of the matmul work.
KEEP_FLOAT32 = frozenset({"l0_ffn_out_matmul"})
# A build takes 3-40 s on two busy cores; one still running after this has hung (or is
# starved) and holds the embedder's load lock, so it is stopped and reported.
BUILD_TIMEOUT_SECONDS = 600.0
# A ``.build-*`` directory untouched this long is a killed build's leftover (a live build
# writes into its directory within seconds), so the next build removes it.
DEBRIS_AGE_SECONDS = 600.0
# The child's exit status for an OSError (disk full, quota, read-only); its last stderr
# line is then ``errno=<n>``. Another for a MemoryError (a memory limit without the OOM
# killer, e.g. ``ulimit -v``).
_EXIT_OSERROR = 3
_EXIT_MEMORY = 4
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class CacheDirError(SoulprintError, OSError):
    """The cache directory cannot be created or written (the message names it)."""


def weights_digest(weights: Path) -> str:
    """sha256 of the weights file, hex (about 0.2 s for MiniLM's 90 MB)."""
    return file_digest(weights)


def graph_path(model_dir: Path, cache_dir: Path, precision: str) -> Path:
    """Where the ``precision`` graph of the weights in ``model_dir`` is cached (it may not
    exist yet). Hashes the weights (~0.2 s)."""
    digest = weights_digest(model_dir / "model.safetensors")[:16]
    return cache_dir / f"all-MiniLM-L6-v2-{digest}-b{BUILDER_VERSION}-{precision}.onnx"


def is_prebuilt(path: Path) -> bool:
    """True when the graph at ``path`` exists and matches the sha256 beside it."""
    return path.is_file() and _intact(path)


def cached_model(model_dir: Path, cache_dir: Path, precision: str, tokenizer: Tokenizer) -> Path:
    """Path of the ready ONNX file for ``precision``, building it first if needed.

    ``tokenizer``: the model's tokenizer, truncating as the embedder does (calibration).
    Raises ``ValueError`` for an unknown precision, ``CacheDirError`` if ``cache_dir`` cannot
    be written, and whatever the weights loader raises for damaged weights.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    path = graph_path(model_dir, cache_dir, precision)
    if path.is_file():
        if _intact(path):
            return path
        why = "does not match its sha256" if _sidecar(path).is_file() else "has no sha256 beside it"
        log.warning("the cached %s ONNX graph %s %s; building it again", precision, path, why)
    log.info("building the %s ONNX graph of all-MiniLM-L6-v2 (once per data directory)", precision)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        remove_debris(cache_dir)
        tmp = tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-")
    except OSError as exc:
        # The path goes to the log only: the error message reaches the person's job row.
        log.error("cannot write the model cache %s: %s", cache_dir, exc)
        raise CacheDirError(exc.errno, exc.strerror or str(exc)) from exc
    with tmp:
        out = Path(tmp.name) / "model.onnx"
        build_in_child(model_dir, precision, _max_length(tokenizer), out)
        # The sidecar first, then the graph: a reader never sees a graph newer than its
        # digest. Each rename is atomic, so concurrent builders leave a matching pair as
        # long as their builds are byte-identical (they are: same weights, same builder).
        digest_tmp = Path(tmp.name) / "model.onnx.sha256"
        try:
            digest_tmp.write_text(file_digest(out) + "\n")
            os.replace(digest_tmp, _sidecar(path))
            os.replace(out, path)  # atomic: a concurrent builder's whole file, or ours
        except OSError as exc:
            log.error("cannot store the built graph in %s: %s", cache_dir, exc)
            reason = "no_space" if exc.errno in _NO_SPACE else "os_error"
            raise GraphBuildError("the built graph could not be stored", reason, exc.errno) from exc
    return path


class GraphBuildError(SoulprintError, RuntimeError):
    """The graph could not be built (the child's stderr went to the log).

    ``reason``: ``"no_space"`` (the cache's disk or quota is full; ``errno`` says which),
    ``"killed"`` (the child died of a signal: the OOM killer, most likely),
    ``"out_of_memory"`` (a MemoryError in the child), ``"timeout"``
    (stopped after ``BUILD_TIMEOUT_SECONDS``), ``"os_error"`` (another OSError, ``errno``
    set) or ``"failed"`` (the builder raised: damaged weights, a bug).
    """

    def __init__(self, message: str, reason: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.errno = errno_


def build_in_child(model_dir: Path, precision: str, max_length: int, out: Path) -> None:
    """Run ``build`` in a fresh Python process and wait for it (a few seconds).

    Why a child: the build holds ~300 MB above the interpreter at its peak (the weights
    read, the float graph serialized, the quantizer's copies), and glibc keeps ~140 MB of
    it mapped after it is freed. Built inside a worker that then imports, that was the
    import's peak RSS (513 MB on a 10 MB export, 545 MB on 100 MB, against 250 MB with a
    prebuilt graph) and 100 MB more held through the whole embedding stage. In a child,
    all of it goes back to the system when the child exits, before any embedding starts.
    The child dies with its parent (Linux), so a killed worker leaves no ~450 MB orphan.
    ``max_length``: the token limit calibration truncates at (the embedder's). Raises
    ``GraphBuildError`` when the child fails, is killed or runs past
    ``BUILD_TIMEOUT_SECONDS``.
    """
    # The checkout this module is in comes first, so the child builds with this very
    # builder even when the parent found the package through its working directory.
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    child = f"import sys; from {__name__} import _main; _main(sys.argv[1:])"
    cmd = [sys.executable, "-c", child, str(model_dir), precision, str(max_length), str(out)]
    try:
        done = subprocess.run(
            cmd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=BUILD_TIMEOUT_SECONDS,
            preexec_fn=_child_setup,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the child
        log.error("building the %s ONNX graph took over %.0f s; stopped", precision, exc.timeout)
        raise GraphBuildError(f"the {precision} graph build timed out", "timeout") from exc
    if done.returncode != 0:
        # Paths and the loader's words go to the log; the caller words the person's message.
        log.error(
            "building the %s ONNX graph failed (exit %s): %s",
            precision,
            done.returncode,
            done.stderr[-4000:],
        )
        raise _build_error(precision, done.returncode, done.stderr)


def _build_error(precision: str, returncode: int, stderr: str) -> GraphBuildError:
    """The ``GraphBuildError`` for a child that exited with ``returncode``."""
    message = f"the {precision} graph build exited with {returncode}"
    if returncode < 0:
        return GraphBuildError(message, "killed")
    if returncode == _EXIT_MEMORY:
        return GraphBuildError(message, "out_of_memory")
    if returncode == _EXIT_OSERROR:
        last = stderr.strip().rsplit("\n", 1)[-1]
        code = int(last.removeprefix("errno=")) if last.startswith("errno=") else None
        return GraphBuildError(message, "no_space" if code in _NO_SPACE else "os_error", code)
    return GraphBuildError(message, "failed")


def _child_setup() -> None:
    """Runs in the child between fork and exec: ask Linux to SIGKILL it when the parent
    dies (PR_SET_PDEATHSIG), so an OOM-killed worker does not leave a build running on."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def remove_debris(cache_dir: Path, min_age: float = DEBRIS_AGE_SECONDS) -> list[Path]:
    """Delete the ``.build-*`` directories in ``cache_dir`` that nothing wrote to for
    ``min_age`` seconds (a killed build's leftovers: up to 60 MB each); returns them.
    A build in progress writes into its directory within seconds, so it is never taken."""
    removed: list[Path] = []
    now = time.time()
    for entry in cache_dir.glob(".build-*"):
        try:
            newest = max([entry.stat().st_mtime] + [p.stat().st_mtime for p in entry.rglob("*")])
        except OSError:  # removed meanwhile by another builder
            continue
        if entry.is_dir() and now - newest >= min_age:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d leftover graph build(s) from %s", len(removed), cache_dir)
    return removed


def _max_length(tokenizer: Tokenizer) -> int:
    """The truncation length ``tokenizer`` was set up with (512, BERT's limit, if none)."""
    truncation = tokenizer.truncation
    return int(truncation["max_length"]) if truncation else 512


def file_digest(path: Path) -> str:
    """sha256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    """Where the sha256 of cached graph ``path`` is kept: ``<name>.onnx.sha256``."""
    return path.with_name(path.name + ".sha256")


def _intact(path: Path) -> bool:
    """True when ``path`` hashes to the digest written beside it at build time.

    A graph damaged without changing its size still loads and gives wrong vectors; a
    missing or unreadable sidecar (a cache from before sidecars) counts as damaged, so the
    graph is built once more. Hashing costs a fraction of a second per load.
    """
    try:
        expected = _sidecar(path).read_text().strip()
    except OSError:
        return False
    return expected == file_digest(path)


def build(model_dir: Path, precision: str, tokenizer: Tokenizer, out: Path) -> None:
    """Write the ``precision`` graph of the weights in ``model_dir`` to ``out``.

    Peak memory is about three copies of the weights (~300 MB for MiniLM): tensors are read
    lazily, and each graph goes to disk and out of memory before the next step loads it.
    """
    config = BertConfig.from_json(json.loads((model_dir / "config.json").read_text()))
    weights = model_dir / "model.safetensors"
    if precision == "float32":
        with _tensors(weights) as tensors:
            onnx.save(build_bert_graph(config, tensors), out)
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path = out.with_suffix(".float32.onnx")
    with _tensors(weights) as tensors:
        plain = build_bert_graph(config, tensors)
    names = weight_nodes(plain)
    onnx.save(plain, float_path)
    del plain
    absmax = _calibrate(float_path, names, tokenizer)
    with _tensors(weights) as tensors:
        smoothed = build_bert_graph(config, tensors, input_absmax=absmax, alpha=SMOOTH_ALPHA)
    onnx.save(smoothed, float_path)
    del smoothed
    with _quiet_preprocessing_advice():
        quantize_dynamic(
            float_path,
            out,
            # Weight products only (the score and context products multiply two
            # activations), less the one whose int8 error hurt short texts most (see
            # KEEP_FLOAT32).
            nodes_to_quantize=[n for n in names if n not in KEEP_FLOAT32],
            per_channel=True,
            weight_type=QuantType.QInt8,
            # Shape inference stops at the com.microsoft Attention node; its outputs are
            # float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    float_path.unlink()


class _DropPreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


@contextmanager
def _quiet_preprocessing_advice() -> Iterator[None]:
    """Drop onnxruntime's "Please consider to run pre-processing before quantization"
    warning (logged on the root logger): it is advice for image models, and
    ``models build`` would print it to every operator as if something were wrong."""
    root = logging.getLogger()
    quiet = _DropPreprocessingAdvice()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


class _LazyTensors(Mapping[str, np.ndarray]):
    """The tensors of an open safetensors file, each read when asked for."""

    def __init__(self, handle: Any) -> None:  # a safetensors safe_open (untyped)
        self._handle = handle
        self._names = list(handle.keys())

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return cast(np.ndarray, self._handle.get_tensor(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@contextmanager
def _tensors(weights: Path) -> Iterator[_LazyTensors]:
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as handle:
        yield _LazyTensors(handle)


def _calibrate(float_path: Path, names: list[str], tokenizer: Tokenizer) -> dict[str, np.ndarray]:
    """Per-channel max |value| of the input of each matmul in ``names`` (by input tensor
    name) over the calibration texts, run through the float32 graph at ``float_path``."""
    import onnxruntime as ort

    probe = onnx.load(float_path, load_external_data=False)
    inputs = sorted({n.input[0] for n in probe.graph.node if n.name in names})
    for name in inputs:
        probe.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    onnx.save(probe, float_path)
    del probe
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(float_path), options, providers=["CPUExecutionProvider"])
    absmax: dict[str, np.ndarray] = {}
    for text in CALIBRATION_TEXTS:
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        for name, value in zip(inputs, session.run(inputs, feeds), strict=True):
            m = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            absmax[name] = np.maximum(absmax[name], m) if name in absmax else m
    return absmax


def _main(argv: list[str]) -> None:
    """The child ``build_in_child`` starts (argv: MODEL_DIR PRECISION MAX_LENGTH OUT).
    Builds the tokenizer as the embedder does (truncated at MAX_LENGTH, unpadded) for
    calibration, then writes the graph to OUT."""
    from tokenizers import Tokenizer

    model_dir, precision, max_length, out = argv
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=int(max_length))
    tokenizer.no_padding()
    try:
        build(Path(model_dir), precision, tokenizer, Path(out))
    except OSError as exc:
        # The parent words the person's message from the errno (a full disk is not a
        # damaged install); the traceback stays in the log.
        import traceback

        traceback.print_exc()
        print(f"errno={exc.errno}", file=sys.stderr)
        sys.exit(_EXIT_OSERROR)
    except MemoryError:
        sys.exit(_EXIT_MEMORY)
