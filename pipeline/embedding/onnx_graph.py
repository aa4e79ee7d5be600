"""Build the all-MiniLM-L6-v2 encoder as an ONNX graph from the packaged weights.

The graph is written with the ``onnx`` package's helper API from the tensors of
``model.safetensors`` (read with the ``safetensors`` library), so no torch is needed
anywhere. It takes padded batches and returns sentence-transformers' sentence vector:

    inputs   input_ids       int64 (batch, seq)   word-piece ids, 0-padded on the right
             attention_mask  int64 (batch, seq)   1 for real tokens, 0 for padding
    output   pooled          float32 (batch, 384) mean of the last hidden states over the
                                                  real tokens (not normalized)

Only what this BERT needs: absolute positions, token type 0, post-LayerNorm layers, exact
(erf) GELU. Weights are laid out once the way the matmuls want them (fused QKV, the
1/sqrt(head_dim) attention scale folded into the query weights, (in, out) matrices).

Self-attention is ONNX Runtime's fused ``com.microsoft.Attention`` kernel (so the graph
runs on ONNX Runtime only, which is the point). ``weight_nodes`` names the nodes int8
quantization targets: the ``*_matmul`` weight matmuls and the ``*_attention`` nodes (their
QKV projection; the score and context products inside stay float32).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Bump when the graph this module writes changes: the cache key includes it, so a graph
# built by an older version is never reused.
BUILDER_VERSION = 2  # 2: fused Attention kernel
OPSET = 17  # LayerNormalization is an ONNX op from opset 17 on


@dataclass(frozen=True, slots=True)
class BertConfig:
    """The config.json fields the graph depends on; ``ValueError`` for an architecture
    this builder does not implement."""

    hidden_size: int
    num_heads: int
    num_layers: int
    intermediate_size: int
    layer_norm_eps: float
    max_position_embeddings: int

    @classmethod
    def from_json(cls, cfg: dict[str, Any]) -> BertConfig:
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


class _Graph:
    """Accumulates nodes and initializers; every helper returns its output's name."""

    def __init__(self, input_absmax: Mapping[str, np.ndarray] | None, alpha: float) -> None:
        # Written straight into the model's own graph: make_graph / make_model would copy
        # every weight once more (90 MB each time), and the build must stay small.
        self.model = onnx.ModelProto()
        self.graph = self.model.graph
        self.nodes: list[onnx.NodeProto] = []
        self.input_absmax = input_absmax or {}
        self.alpha = alpha

    def const(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.add().CopyFrom(
            numpy_helper.from_array(np.ascontiguousarray(value), name)
        )
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def linear(self, x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
        """x @ w + b with w stored (in, out); the MatMul is what int8 quantization targets.

        With a measured per-channel |x| maximum for ``x`` (``input_absmax``), the product is
        rewritten as (x / s) @ (s * w), s_j = amax_j^alpha / wmax_j^(1 - alpha)
        (SmoothQuant): the same numbers in float, but a few huge channels of x (BERT's
        outlier dimensions, 15x the median) no longer eat the int8 range of every token.
        """
        x, w = self.smooth(x, w, name)
        wn = self.const(f"{name}.weight", w.astype(np.float32))
        bn = self.const(f"{name}.bias", b.astype(np.float32))
        return self.op("Add", [self.op("MatMul", [x, wn], f"{name}_matmul"), bn], f"{name}_add")

    def smooth(self, x: str, w: np.ndarray, name: str) -> tuple[str, np.ndarray]:
        """(x / s, s * w) when ``x`` has a measured range (see ``linear``), else (x, w)."""
        amax = self.input_absmax.get(x)
        if amax is None:
            return x, w
        wmax = np.abs(w).max(axis=1)
        s = np.maximum(amax, 1e-5) ** self.alpha / np.maximum(wmax, 1e-5) ** (1 - self.alpha)
        s = s.astype(np.float32)
        inv = self.const(f"{name}.smooth", (1.0 / s).astype(np.float32))
        return self.op("Mul", [x, inv], f"{name}_smooth"), w * s[:, None]

    def layer_norm(self, x: str, g: np.ndarray, b: np.ndarray, eps: float, name: str) -> str:
        gn = self.const(f"{name}.weight", g.astype(np.float32))
        bn = self.const(f"{name}.bias", b.astype(np.float32))
        return self.op("LayerNormalization", [x, gn, bn], name, axis=-1, epsilon=eps)


def build_bert_graph(
    config: BertConfig,
    tensors: Mapping[str, np.ndarray],
    *,
    input_absmax: Mapping[str, np.ndarray] | None = None,
    alpha: float = 0.5,
) -> onnx.ModelProto:
    """The float32 encoder + mean pooling as an ONNX model (see the module docstring).

    ``tensors``: the safetensors contents by name (with or without a ``bert.`` prefix); each
    is read once, so a lazy mapping keeps only the graph itself in memory.
    ``input_absmax``: per-channel max |activation| of the input of each weight matmul, by
    input tensor name (``matmul_inputs``), from ``calibrate``; given, the weight matmuls are
    smoothed for int8 (see ``_Graph.linear``). Raises ``KeyError`` naming a missing tensor.
    """

    def t(name: str) -> np.ndarray:
        for prefix in ("", "bert.", "0.auto_model."):
            if prefix + name in tensors:
                return np.asarray(tensors[prefix + name], dtype=np.float32)
        raise KeyError(f"tensor {name} missing from model weights")

    h, heads = config.hidden_size, config.num_heads
    hd = h // heads
    scale = np.float32(1.0 / math.sqrt(hd))
    g = _Graph(input_absmax, alpha)

    # Embeddings. Token type is always 0 for single sentences: fold it into positions.
    word = g.const("word_embeddings", t("embeddings.word_embeddings.weight"))
    pos_table = (
        t("embeddings.position_embeddings.weight") + t("embeddings.token_type_embeddings.weight")[0]
    )
    pos = g.const("position_embeddings", pos_table)
    g.const("axis0", np.array([0], dtype=np.int64))
    g.const("axis1", np.array([1], dtype=np.int64))
    # Positions 0..seq-1 are the first seq rows of the table: a Slice, not Range + Gather
    # (onnxruntime 1.32 rewrites the latter into a Slice with scalar bounds that then fails).
    seq = g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)  # 1-D, one element
    x = g.op(
        "Add",
        [
            g.op("Gather", [word, "input_ids"], "word_emb", axis=0),
            g.op("Slice", [pos, "axis0", seq, "axis0"], "pos_emb"),
        ],
        "emb_sum",
    )
    x = g.layer_norm(
        x,
        t("embeddings.LayerNorm.weight"),
        t("embeddings.LayerNorm.bias"),
        config.layer_norm_eps,
        "emb_ln",
    )

    # The mask as the attention kernel takes it (int32, 1 = token) and as pooling does.
    mask_i32 = g.op("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    mask_f = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    g.const("f_one", np.array(1.0, dtype=np.float32))
    g.const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    g.const("f_half", np.array(0.5, dtype=np.float32))

    for i in range(config.num_layers):
        p = f"encoder.layer.{i}."
        n = f"l{i}"
        w_qkv = np.concatenate(
            [
                t(p + "attention.self.query.weight") * scale,
                t(p + "attention.self.key.weight"),
                t(p + "attention.self.value.weight"),
            ]
        ).T
        b_qkv = np.concatenate(
            [
                t(p + "attention.self.query.bias") * scale,
                t(p + "attention.self.key.bias"),
                t(p + "attention.self.value.bias"),
            ]
        )
        # Self-attention as ONNX Runtime's fused kernel (QKV projection, softmax over the
        # unmasked keys, context): int8 quantization turns it into QAttention. The query
        # weights already carry 1/sqrt(head_dim), hence scale=1.
        xin, w_qkv = g.smooth(x, w_qkv, f"{n}_qkv")
        ctx = g.op(
            "Attention",
            [
                xin,
                g.const(f"{n}_qkv.weight", w_qkv.astype(np.float32)),
                g.const(f"{n}_qkv.bias", b_qkv.astype(np.float32)),
                mask_i32,
            ],
            f"{n}_attention",
            domain="com.microsoft",
            num_heads=heads,
            scale=1.0,
        )
        attn = g.linear(
            ctx,
            t(p + "attention.output.dense.weight").T,
            t(p + "attention.output.dense.bias"),
            f"{n}_attn_out",
        )
        x = g.layer_norm(
            g.op("Add", [attn, x], f"{n}_attn_res"),
            t(p + "attention.output.LayerNorm.weight"),
            t(p + "attention.output.LayerNorm.bias"),
            config.layer_norm_eps,
            f"{n}_ln1",
        )
        inter = g.linear(
            x, t(p + "intermediate.dense.weight").T, t(p + "intermediate.dense.bias"), f"{n}_ffn_in"
        )
        # Exact GELU, (x * (1 + erf(x / sqrt 2))) * 0.5, written in the very form PyTorch
        # exports so that ONNX Runtime fuses it (with the bias Add before it) into one kernel.
        erf = g.op("Erf", [g.op("Div", [inter, "sqrt2"], f"{n}_gelu_scaled")], f"{n}_erf")
        gelu = g.op(
            "Mul",
            [
                g.op("Mul", [inter, g.op("Add", [erf, "f_one"], f"{n}_erf_plus1")], f"{n}_gelu_x"),
                "f_half",
            ],
            f"{n}_gelu",
        )
        out = g.linear(
            gelu, t(p + "output.dense.weight").T, t(p + "output.dense.bias"), f"{n}_ffn_out"
        )
        x = g.layer_norm(
            g.op("Add", [out, x], f"{n}_ffn_res"),
            t(p + "output.LayerNorm.weight"),
            t(p + "output.LayerNorm.bias"),
            config.layer_norm_eps,
            f"{n}_ln2",
        )

    # Mean pooling over real tokens, as sentence-transformers' Pooling(mean) does.
    mask3 = g.op("Unsqueeze", [mask_f, "axis_last"], "mask_3d")
    g.const("axis_last", np.array([-1], dtype=np.int64))
    summed = g.op(
        "ReduceSum", [g.op("Mul", [x, mask3], "masked_hidden"), "axis1"], "summed", keepdims=0
    )
    counts = g.op("ReduceSum", [mask3, "axis1"], "token_counts", keepdims=0)
    g.nodes.append(helper.make_node("Div", [summed, counts], ["pooled"], name="mean_pool"))

    graph = g.graph
    graph.name = "all-MiniLM-L6-v2"
    graph.node.extend(g.nodes)
    graph.input.extend(
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ]
    )
    graph.output.append(helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", h]))
    model = g.model
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))  # Attention
    model.producer_name = "soulprint-import"
    model.ir_version = 8  # what every onnxruntime since 1.14 loads
    return model


def weight_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that multiply by weights: what int8 quantization targets."""
    return [
        n.name
        for n in model.graph.node
        if (n.op_type == "MatMul" and n.name.endswith("_matmul")) or n.op_type == "Attention"
    ]
