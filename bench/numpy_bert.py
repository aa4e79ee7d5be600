"""The numpy forward pass the minilm embedder used before ONNX Runtime, kept only as the
baseline of bench/embed.py (not part of the product).

A BERT encoder forward pass in plain numpy (float32, CPU, no torch).

Only what sentence-transformers' all-MiniLM-L6-v2 needs: absolute position
embeddings, post-LayerNorm encoder layers, exact (erf) GELU, and mean pooling
over each sequence's tokens. Weights are prepared once into the layout the matmuls
want (fused QKV, attention scale folded in, (in, out) matrices).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# Rows of hidden states processed together in the feed-forward block: small enough that the
# (rows, intermediate) GELU scratch stays in cache and peak memory stays flat, large enough
# that the matmuls keep BLAS busy.
_FFN_ROWS = 512

# Abramowitz & Stegun 7.1.26: erfc(z) ~ poly(t) * exp(-z^2), t = 1 / (1 + p z), z >= 0,
# |error| < 1.5e-7, below float32 resolution of GELU's output. Constants are pre-folded for
# z = |x| / sqrt(2) and for the 0.5 in Phi(x) = 0.5 * erfc(-x / sqrt(2)).
_GELU_P = np.float32(0.3275911 / math.sqrt(2.0))
_GELU_A = tuple(
    np.float32(0.5 * a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)


@dataclass(frozen=True, slots=True)
class BertConfig:
    """The few config.json fields the forward pass depends on."""

    hidden_size: int
    num_heads: int
    num_layers: int
    intermediate_size: int
    layer_norm_eps: float
    max_position_embeddings: int

    @classmethod
    def from_json(cls, cfg: dict) -> BertConfig:
        act = cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise ValueError(f"unsupported hidden_act {act!r}: only exact gelu is implemented")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are implemented")
        return cls(
            hidden_size=int(cfg["hidden_size"]),
            num_heads=int(cfg["num_attention_heads"]),
            num_layers=int(cfg["num_hidden_layers"]),
            intermediate_size=int(cfg["intermediate_size"]),
            layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
            max_position_embeddings=int(cfg["max_position_embeddings"]),
        )


@dataclass(frozen=True, slots=True)
class _Layer:
    w_qkv: np.ndarray  # (hidden, 3*hidden), query part pre-scaled by 1/sqrt(head_dim)
    b_qkv: np.ndarray
    w_attn_out: np.ndarray  # (hidden, hidden)
    b_attn_out: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    w_in: np.ndarray  # (hidden, intermediate)
    b_in: np.ndarray
    w_out: np.ndarray  # (intermediate, hidden)
    b_out: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


def _f32(a: np.ndarray) -> np.ndarray:
    # Row-major float32 is what the matmuls below are fastest on; copies only if needed.
    return np.ascontiguousarray(a, dtype=np.float32)


class BertEncoder:
    """Immutable prepared weights plus a pure forward pass (safe to share between threads)."""

    def __init__(self, config: BertConfig, tensors: Mapping[str, np.ndarray]) -> None:
        self.config = config
        h = config.hidden_size
        head_dim = h // config.num_heads
        scale = np.float32(1.0 / math.sqrt(head_dim))

        def t(name: str) -> np.ndarray:
            for prefix in ("", "bert.", "0.auto_model."):
                if prefix + name in tensors:
                    return tensors[prefix + name]
            raise KeyError(f"tensor {name} missing from model weights")

        self.word = _f32(t("embeddings.word_embeddings.weight"))
        self.pos = _f32(t("embeddings.position_embeddings.weight"))
        # Token type is always 0 for single sentences: fold it into the position table.
        self.pos += t("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln_g = _f32(t("embeddings.LayerNorm.weight"))
        self.emb_ln_b = _f32(t("embeddings.LayerNorm.bias"))
        layers = []
        for i in range(config.num_layers):
            p = f"encoder.layer.{i}."
            q_w = t(p + "attention.self.query.weight") * scale
            q_b = t(p + "attention.self.query.bias") * scale
            w_qkv = np.concatenate(
                [q_w, t(p + "attention.self.key.weight"), t(p + "attention.self.value.weight")]
            ).T
            b_qkv = np.concatenate(
                [q_b, t(p + "attention.self.key.bias"), t(p + "attention.self.value.bias")]
            )
            layers.append(
                _Layer(
                    w_qkv=_f32(w_qkv),
                    b_qkv=_f32(b_qkv),
                    w_attn_out=_f32(t(p + "attention.output.dense.weight").T),
                    b_attn_out=_f32(t(p + "attention.output.dense.bias")),
                    ln1_g=_f32(t(p + "attention.output.LayerNorm.weight")),
                    ln1_b=_f32(t(p + "attention.output.LayerNorm.bias")),
                    w_in=_f32(t(p + "intermediate.dense.weight").T),
                    b_in=_f32(t(p + "intermediate.dense.bias")),
                    w_out=_f32(t(p + "output.dense.weight").T),
                    b_out=_f32(t(p + "output.dense.bias")),
                    ln2_g=_f32(t(p + "output.LayerNorm.weight")),
                    ln2_b=_f32(t(p + "output.LayerNorm.bias")),
                )
            )
        self.layers = tuple(layers)
        self._local = threading.local()
        # Shared by every worker thread: make accidental in-place writes fail loudly.
        for arr in (self.word, self.pos, self.emb_ln_g, self.emb_ln_b):
            arr.flags.writeable = False
        for layer in self.layers:
            for arr in (getattr(layer, f) for f in layer.__slots__):
                arr.flags.writeable = False

    def mean_pooled(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Encode token-id ``sequences`` and mean-pool each; returns (len, hidden) float32,
        not normalized.

        The sequences are packed end to end into one block of rows, with no padding: the
        dense layers see every real token once in a single matmul, and attention runs per
        sequence on its own slice, so no mask is needed and no work is wasted on pads.
        """
        cfg = self.config
        lengths = [len(s) for s in sequences]
        longest = max(lengths)
        if longest > cfg.max_position_embeddings:
            raise ValueError(f"a sequence exceeds {cfg.max_position_embeddings} tokens")
        offsets = np.cumsum([0, *lengths])
        ws = self._workspace(int(offsets[-1]), longest)
        x = ws.x
        np.take(self.word, np.concatenate(sequences), axis=0, out=x)
        x += self.pos[np.concatenate([np.arange(n) for n in lengths])]
        _layer_norm(x, self.emb_ln_g, self.emb_ln_b, cfg.layer_norm_eps)
        for layer in self.layers:
            self._layer(ws, layer, offsets)
        pooled = np.add.reduceat(x, offsets[:-1], axis=0)
        pooled /= np.asarray(lengths, dtype=np.float32)[:, None]
        return pooled

    def _workspace(self, rows: int, longest: int) -> _Workspace:
        """This thread's scratch buffers, grown when needed and reused across batches.

        Fresh multi-megabyte temporaries for every operation cost a page fault per 4 KiB
        (about a quarter of all CPU time, mostly in the kernel); reusing them does not.
        """
        ws: _Workspace | None = getattr(self._local, "ws", None)
        if ws is None or ws.capacity < rows or ws.longest < longest:
            cfg = self.config
            ws = _Workspace(
                max(rows, ws.capacity if ws else 0, _FFN_ROWS),
                max(longest, ws.longest if ws else 0),
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg.num_heads,
            )
            self._local.ws = ws
        return ws.view(rows)

    def _layer(self, ws: _Workspace, w: _Layer, offsets: np.ndarray) -> None:
        """One encoder layer, from ``ws.x`` back into ``ws.x``."""
        cfg = self.config
        h = cfg.hidden_size
        heads = cfg.num_heads
        hd = h // heads
        x, qkv, ctx, attn = ws.x, ws.qkv, ws.ctx, ws.attn
        np.matmul(x, w.w_qkv, out=qkv)
        qkv += w.b_qkv
        for start, end in itertools.pairwise(offsets):
            n = int(end - start)
            rows = qkv[start:end]
            q = rows[:, :h].reshape(n, heads, hd).transpose(1, 0, 2)  # (heads, n, hd)
            k = rows[:, h : 2 * h].reshape(n, heads, hd).transpose(1, 2, 0)  # (heads, hd, n)
            v = rows[:, 2 * h :].reshape(n, heads, hd).transpose(1, 0, 2)
            scores = ws.scores[: heads * n * n].reshape(heads, n, n)
            np.matmul(q, k, out=scores)  # query already carries the 1/sqrt(head_dim) scale
            _softmax_inplace(scores)
            heads_out = ws.heads_out[: heads * n * hd].reshape(heads, n, hd)
            np.matmul(scores, v, out=heads_out)
            ctx[start:end].reshape(n, heads, hd)[...] = heads_out.transpose(1, 0, 2)
        np.matmul(ctx, w.w_attn_out, out=attn)
        attn += w.b_attn_out
        attn += x
        _layer_norm(attn, w.ln1_g, w.ln1_b, cfg.layer_norm_eps)
        # x is free again (its residual is inside attn): the feed-forward output goes there.
        for start in range(0, attn.shape[0], _FFN_ROWS):
            rows = attn[start : start + _FFN_ROWS]
            m = rows.shape[0]
            inter = ws.inter[:m]
            np.matmul(rows, w.w_in, out=inter)
            inter += w.b_in
            _gelu_inplace(inter, ws.scratch1[:m], ws.scratch2[:m], ws.scratch3[:m])
            o = x[start : start + _FFN_ROWS]
            np.matmul(inter, w.w_out, out=o)
            o += w.b_out
            o += rows
        _layer_norm(x, w.ln2_g, w.ln2_b, cfg.layer_norm_eps)


class _Workspace:
    """Preallocated activations for up to ``capacity`` packed tokens (one per thread)."""

    def __init__(self, capacity: int, longest: int, hidden: int, inter: int, heads: int):
        self.capacity, self.longest = capacity, longest
        f32 = np.float32
        self._x = np.empty((capacity, hidden), f32)
        self._qkv = np.empty((capacity, 3 * hidden), f32)
        self._ctx = np.empty((capacity, hidden), f32)
        self._attn = np.empty((capacity, hidden), f32)
        self.inter = np.empty((_FFN_ROWS, inter), f32)
        self.scratch1 = np.empty((_FFN_ROWS, inter), f32)
        self.scratch2 = np.empty((_FFN_ROWS, inter), f32)
        self.scratch3 = np.empty((_FFN_ROWS, inter), f32)
        self.scores = np.empty(heads * longest * longest, f32)
        self.heads_out = np.empty(longest * hidden, f32)

    def view(self, rows: int) -> _Workspace:
        """Same buffers, with the per-token ones cut to ``rows`` rows."""
        v = object.__new__(_Workspace)
        v.__dict__.update(self.__dict__)
        v.x, v.qkv, v.ctx, v.attn = (a[:rows] for a in (self._x, self._qkv, self._ctx, self._attn))
        return v


def _layer_norm(x: np.ndarray, g: np.ndarray, bias: np.ndarray, eps: float) -> None:
    """LayerNorm over the last axis, in place."""
    mean = x.mean(axis=-1, keepdims=True)
    x -= mean
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var /= np.float32(x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= g
    x += bias


def _softmax_inplace(s: np.ndarray) -> None:
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)


def _gelu_inplace(x: np.ndarray, a: np.ndarray, t: np.ndarray, tail: np.ndarray) -> None:
    """Exact GELU, x * Phi(x), in place (``a``, ``t``, ``tail``: scratch of x's shape);
    numpy has no erf, so A&S 7.1.26 stands in.

    With tail = 0.5 * erfc(|x| / sqrt2): x * Phi(x) = 0.5 * x + |x| * (0.5 - tail) for either
    sign of x, which avoids branches and masked ufuncs (``where=`` is ~50x slower here).
    """
    np.abs(x, out=a)
    np.multiply(a, _GELU_P, out=t)
    t += np.float32(1.0)
    np.divide(np.float32(1.0), t, out=t)  # faster than np.reciprocal for float32
    a1, a2, a3, a4, a5 = _GELU_A
    np.multiply(t, a5, out=tail)
    tail += a4
    tail *= t
    tail += a3
    tail *= t
    tail += a2
    tail *= t
    tail += a1
    tail *= t
    np.multiply(a, a, out=t)  # t is free again: reuse it for exp(-x^2 / 2)
    t *= np.float32(-0.5)
    np.exp(t, out=t)
    tail *= t
    np.subtract(np.float32(0.5), tail, out=tail)
    tail *= a
    x *= np.float32(0.5)
    x += tail


class NumpyMiniLM:
    """The former embedder, slimmed: texts packed into batches of <= 64 texts / 512 tokens
    without padding, run on ``threads`` workers with numpy's BLAS held to one thread each
    (threadpoolctl). Same vectors as sentence-transformers in float32."""

    model = "sentence-transformers/all-MiniLM-L6-v2 (numpy)"
    dimensions = 384

    def __init__(
        self, model_dir, threads: int = 2, batch_size: int = 64, batch_tokens: int = 512
    ) -> None:
        import json
        from concurrent.futures import ThreadPoolExecutor

        from safetensors.numpy import load_file
        from threadpoolctl import threadpool_limits
        from tokenizers import Tokenizer

        config = BertConfig.from_json(json.loads((model_dir / "config.json").read_text()))
        self.encoder = BertEncoder(config, load_file(model_dir / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=256)
        self.tokenizer.no_padding()
        self.batch_size, self.batch_tokens = batch_size, batch_tokens
        self._limits = threadpool_limits(1, user_api="blas")  # held for the process
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def embed(self, texts: list[str]) -> np.ndarray:
        ids = [
            np.asarray(e.ids, dtype=np.int64)
            for e in self.tokenizer.encode_batch([t.strip() for t in texts])
        ]
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i, seq in enumerate(ids):
            if current and (
                len(current) >= self.batch_size or tokens + len(seq) > self.batch_tokens
            ):
                batches.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += len(seq)
        if current:
            batches.append(current)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)

        def run(batch: list[int]) -> None:
            out[batch] = self.encoder.mean_pooled([ids[i] for i in batch])

        if self.pool is None:
            for b in batches:
                run(b)
        else:
            list(self.pool.map(run, batches))
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out
