#!/usr/bin/python3
"""Independent numpy reference for SPADE and the logit lens on the tiny fixture models.

Reads test/fixtures/<name>/{config.json, model.safetensors} directly (no transformers, no
layerlab code), implements the Llama / Qwen2 / GPT-2 forward pass in float64, checks it
against the transformers outputs already committed in expected.safetensors (hidden states
and logits), then writes test/fixtures/spade/<name>.safetensors with, for a few prompts:

  tokens, seq_offsets                     the prompts (ragged, int32 / int64)
  logit_lens      [L+1][P][V]             final norm + LM head of h^l at the answer row
  spade_orig      [L+1][P][V]             SPADE logits, positions 0 and n-1
  spade_reindex   [L+1][P][V]             SPADE logits, positions 0 and 1
  full            [P][V]                  the full model at the answer row

Layer l is the residual after l blocks (0 = embeddings). SPADE at l runs blocks l..L-1
(0-based) on the two rows [h^l_0, h^l_{n-1}] with a causal 2x2 mask.

Usage: /usr/bin/python3 tools/spade_ref.py   (rewrites the committed fixtures)
"""
import json
import math
import os
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "test", "fixtures")
NAMES = ["llama_gqa", "gpt2", "qwen2"]
# Prompts: the first starts with BOS-like id 1, one of length 1, one not starting with 1.
PROMPTS = [[1, 45, 300, 7, 99, 12, 480], [1, 5], [1], [17, 200, 3, 3, 64, 128, 9, 250, 11], [1, 2, 3, 4]]

DT = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        if v["dtype"] == "BF16":
            raw = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.uint16).astype(np.uint32) << 16
            a = raw.view(np.float32)
        else:
            a = np.frombuffer(b[8 + n + s:8 + n + e], dtype=DT[v["dtype"]])
        out[k] = a.reshape(v["shape"]).astype(np.float64 if a.dtype.kind == "f" else a.dtype)
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64"}[a.dtype]
        raw = a.tobytes()
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for r in blobs:
            f.write(r)
    os.replace(tmp, path)


class Model:
    def __init__(self, name):
        d = os.path.join(FIX, name)
        self.c = json.load(open(os.path.join(d, "config.json")))
        self.w = read_st(os.path.join(d, "model.safetensors"))
        self.gpt2 = self.c["model_type"] == "gpt2"
        c = self.c
        if self.gpt2:
            self.L, self.D, self.H = c["n_layer"], c["n_embd"], c["n_head"]
            self.Hkv, self.eps = self.H, c["layer_norm_epsilon"]
        else:
            self.L, self.D, self.H = c["num_hidden_layers"], c["hidden_size"], c["num_attention_heads"]
            self.Hkv, self.eps = c["num_key_value_heads"], c["rms_norm_eps"]
        self.hd = c.get("head_dim") or self.D // self.H
        if not self.gpt2:
            theta = c.get("rope_theta", 10000.0)
            self.inv = 1.0 / theta ** (np.arange(0, self.hd, 2) / self.hd)

    def W(self, k):
        return self.w[k]

    def norm(self, x, pre):
        if self.gpt2:
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            return (x - mu) / np.sqrt(var + self.eps) * self.W(pre + ".weight") + self.W(pre + ".bias")
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * self.W(pre + ".weight")

    def rope(self, x, pos):  # x [T][h][hd], rotate-half pairs (i, i + hd/2)
        ang = np.outer(pos, self.inv)  # [T][hd/2]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        h = self.hd // 2
        a, b = x[..., :h], x[..., h:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)

    def embed(self, toks, pos):
        if self.gpt2:
            return self.W("transformer.wte.weight")[toks] + self.W("transformer.wpe.weight")[pos]
        return self.W("model.embed_tokens.weight")[toks].copy()

    def block(self, l, x, pos):
        """One block over a single causal sequence x [T][D] at positions pos."""
        T = x.shape[0]
        H, Hkv, hd = self.H, self.Hkv, self.hd
        if self.gpt2:
            p = f"transformer.h.{l}."
            xn = self.norm(x, p + "ln_1")
            qkv = xn @ self.W(p + "attn.c_attn.weight") + self.W(p + "attn.c_attn.bias")
            q, k, v = np.split(qkv, 3, -1)
        else:
            p = f"model.layers.{l}."
            xn = self.norm(x, p + "input_layernorm")

            def lin(name, inp):
                y = inp @ self.W(p + name + ".weight").T
                bk = p + name + ".bias"
                return y + self.w[bk] if bk in self.w else y

            q, k, v = lin("self_attn.q_proj", xn), lin("self_attn.k_proj", xn), lin("self_attn.v_proj", xn)
        q, k, v = q.reshape(T, H, hd), k.reshape(T, Hkv, hd), v.reshape(T, Hkv, hd)
        if not self.gpt2:
            q, k = self.rope(q, pos), self.rope(k, pos)
        rep = H // Hkv
        k, v = np.repeat(k, rep, 1), np.repeat(v, rep, 1)
        s = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        s = s + np.triu(np.full((T, T), -np.inf), 1)[None]
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        z = np.einsum("hts,shd->thd", s, v).reshape(T, H * hd)
        if self.gpt2:
            x = x + z @ self.W(p + "attn.c_proj.weight") + self.W(p + "attn.c_proj.bias")
            xn = self.norm(x, p + "ln_2")
            h = xn @ self.W(p + "mlp.c_fc.weight") + self.W(p + "mlp.c_fc.bias")
            h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
            return x + h @ self.W(p + "mlp.c_proj.weight") + self.W(p + "mlp.c_proj.bias")
        x = x + z @ self.W(p + "self_attn.o_proj.weight").T
        xn = self.norm(x, p + "post_attention_layernorm")
        g = xn @ self.W(p + "mlp.gate_proj.weight").T
        u = xn @ self.W(p + "mlp.up_proj.weight").T
        return x + (g / (1 + np.exp(-g)) * u) @ self.W(p + "mlp.down_proj.weight").T

    def head(self, x):
        if self.gpt2:
            return self.norm(x, "transformer.ln_f") @ self.W("transformer.wte.weight").T
        hw = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        return self.norm(x, "model.norm") @ hw.T

    def states(self, toks, pos):
        hs = [self.embed(np.array(toks), np.array(pos))]
        for l in range(self.L):
            hs.append(self.block(l, hs[-1], np.array(pos)))
        return hs  # L+1 arrays [T][D]


def check_against_hf(m, name):
    e = read_st(os.path.join(FIX, name, "expected.safetensors"))
    off, toks, pos = e["seq_offsets"], e["tokens"], e["position_ids"]
    worst = 0.0
    for s in range(len(off) - 1):
        a, b = off[s], off[s + 1]
        hs = m.states(toks[a:b], pos[a:b])
        for l in range(m.L):
            ref = e["hidden_states"][l, a:b]
            worst = max(worst, np.abs(hs[l] - ref).max() / np.abs(ref).max())
        lg = m.head(hs[-1])
        worst = max(worst, np.abs(lg - e["logits"][a:b]).max() / np.abs(e["logits"][a:b]).max())
    if worst > 1e-4:
        sys.exit(f"{name}: numpy reference disagrees with transformers (rel err {worst:.2e})")
    return worst


def spade(m, hs, l, n, reindex):
    """SPADE from layer l: rows 0 and n-1 of h^l through blocks l..L-1."""
    if n == 1:
        x, pos = hs[l][:1], np.array([0])
    else:
        x, pos = hs[l][[0, n - 1]], np.array([0, 1 if reindex else n - 1])
    for j in range(l, m.L):
        x = m.block(j, x, pos)
    return m.head(x)[-1]


def main():
    os.makedirs(os.path.join(FIX, "spade"), exist_ok=True)
    for name in NAMES:
        m = Model(name)
        err = check_against_hf(m, name)
        P, L = len(PROMPTS), m.L
        V = m.W("transformer.wte.weight" if m.gpt2 else "model.embed_tokens.weight").shape[0]
        lens = np.zeros((L + 1, P, V))
        so = np.zeros((L + 1, P, V))
        sr = np.zeros((L + 1, P, V))
        full = np.zeros((P, V))
        for i, t in enumerate(PROMPTS):
            n = len(t)
            hs = m.states(t, list(range(n)))
            full[i] = m.head(hs[-1])[-1]
            for l in range(L + 1):
                lens[l, i] = m.head(hs[l][-1:])[0]
                so[l, i] = spade(m, hs, l, n, False)
                sr[l, i] = spade(m, hs, l, n, True)
        # SPADE from the last layer runs no block: it is the full model's output.
        assert np.allclose(so[L], full) and np.allclose(lens[L], full)
        off = np.cumsum([0] + [len(t) for t in PROMPTS]).astype(np.int64)
        write_st(os.path.join(FIX, "spade", name + ".safetensors"), {
            "tokens": np.array(sum(PROMPTS, []), dtype=np.int32), "seq_offsets": off,
            "logit_lens": lens.astype(np.float32), "spade_orig": so.astype(np.float32),
            "spade_reindex": sr.astype(np.float32), "full": full.astype(np.float32)})
        print(f"{name}: numpy forward vs transformers rel err {err:.1e}; wrote test/fixtures/spade/{name}.safetensors")


if __name__ == "__main__":
    main()
