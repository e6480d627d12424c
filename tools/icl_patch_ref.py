#!/usr/bin/python3
"""Reference outputs for layerlab's ICL patch sweeps (test/test_icl_patch.c).

An independent Llama forward in plain torch (RMSNorm, rotate-half RoPE, grouped-query
attention, SwiGLU), one nn.Module per block, run on the tiny random fixture model
test/fixtures/llama_gqa. Patches are applied the way hook-based Python tools do it: a
forward pre-hook on block l rewrites the rows of the residual stream entering it
(= layerlab's blocks.{l}.hook_resid_pre = Hugging Face hidden_states[l]), by replacement
or addition. The script first checks that its unpatched logits equal the transformers
logits stored in the fixture's expected.safetensors, then writes
test/fixtures/icl/patch_ref.safetensors:

  tokens [n] i32                  the prompt
  var_layer / var_op [V] i32      per variant: layer and op (0 replace, 1 add)
  var_pos [V][P] i32              positions patched (P per variant)
  var_src [V][P][d] f32           source vectors
  var_l2 [V] f32                  ||patched - unpatched|| at the patch site
  logits [V][vocab] f32           last-position logits of each patched run
  clean_logits [vocab] f32        unpatched last-position logits
  clean_resid [L][n][d] f32       unpatched residual entering every block

Needs only /usr/bin/python3 with torch and numpy (no transformers).
    /usr/bin/python3 tools/icl_patch_ref.py
"""
import json
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "test/fixtures/llama_gqa")
OUT = os.path.join(ROOT, "test/fixtures/icl/patch_ref.safetensors")

DT = {"F32": np.float32, "I32": np.int32, "I64": np.int64}


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(blob[a:b], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def write_st(path, tensors):
    head, blobs, off = {"__metadata__": {"generator": "tools/icl_patch_ref.py"}}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        code = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
        b = a.tobytes()
        head[k] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


class Block(torch.nn.Module):
    def __init__(self, w, l, cfg):
        super().__init__()
        p = f"model.layers.{l}."
        t = lambda k: torch.tensor(w[p + k])
        self.ln1, self.ln2 = t("input_layernorm.weight"), t("post_attention_layernorm.weight")
        self.wq, self.wk, self.wv, self.wo = (t(f"self_attn.{x}_proj.weight") for x in "qkvo")
        self.wg, self.wu, self.wd = (t(f"mlp.{x}_proj.weight") for x in ("gate", "up", "down"))
        self.cfg = cfg

    def forward(self, x, cos, sin):
        c = self.cfg
        H, KV, hd, eps = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["rms_norm_eps"]
        n = x.shape[0]
        h = rms(x, self.ln1, eps)
        q = (h @ self.wq.T).view(n, H, hd).transpose(0, 1)
        k = (h @ self.wk.T).view(n, KV, hd).transpose(0, 1)
        v = (h @ self.wv.T).view(n, KV, hd).transpose(0, 1)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        s = q @ k.transpose(1, 2) / hd ** 0.5
        s = s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(n, H * hd)
        x = x + a @ self.wo.T
        h = rms(x, self.ln2, eps)
        return x + (torch.nn.functional.silu(h @ self.wg.T) * (h @ self.wu.T)) @ self.wd.T


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


class Llama(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        self.cfg = json.load(open(os.path.join(path, "config.json")))
        w = read_st(os.path.join(path, "model.safetensors"))
        self.emb = torch.tensor(w["model.embed_tokens.weight"])
        self.norm = torch.tensor(w["model.norm.weight"])
        self.head = torch.tensor(w["lm_head.weight"])
        self.blocks = torch.nn.ModuleList(Block(w, l, self.cfg) for l in range(self.cfg["num_hidden_layers"]))

    def forward(self, ids, resid=None):
        c = self.cfg
        hd = c["head_dim"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(len(ids), dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], -1)
        cos, sin = ang.cos().float(), ang.sin().float()
        x = self.emb[torch.tensor(ids, dtype=torch.long)]
        for b in self.blocks:
            if resid is not None:
                resid.append(x.clone())
            x = b(x, cos, sin)
        return rms(x, self.norm, c["rms_norm_eps"]) @ self.head.T


def main():
    torch.manual_seed(0)
    m = Llama(MODEL).eval()
    exp = read_st(os.path.join(MODEL, "expected.safetensors"))
    so, tok = exp["seq_offsets"], exp["tokens"]
    with torch.no_grad():
        for s in range(len(so) - 1):
            a, b = int(so[s]), int(so[s + 1])
            got = m(list(tok[a:b])).numpy()
            err = np.abs(got - exp["logits"][a:b]).max()
            if err > 1e-4:
                sys.exit(f"torch port disagrees with transformers on sequence {s}: max |diff| {err}")
        print(f"torch port matches transformers' logits (sequences: {len(so) - 1})")

        ids = [1, 37, 12, 255, 9, 400, 77, 3, 128, 64, 301, 13, 5, 222]
        n, d, L = len(ids), m.cfg["hidden_size"], m.cfg["num_hidden_layers"]
        clean_resid = []
        clean = m(ids, clean_resid)[-1].numpy()
        P = 2
        var = []
        for l in range(L):
            var.append((l, 0, [3, 9]))   # replace two inner rows
            var.append((l, 1, [5, 13]))  # add into an inner row and the last row
            var.append((l, 0, [13, 13]))  # the last row, listed twice (same vector)
        srcs, logits, l2s = [], [], []
        for (l, op, pos) in var:
            src = torch.randn(P, d) * 0.7
            if pos[0] == pos[1]:
                src[1] = src[0]
            change = {}

            def pre(mod, args, pos=pos, src=src, op=op):
                x, cos, sin = args
                before = x.clone()
                x = x.clone()
                for j, p in enumerate(pos):
                    if j and pos[j] == pos[j - 1]:
                        continue
                    x[p] = src[j] if op == 0 else x[p] + src[j]
                rows = sorted(set(pos))
                change["l2"] = float((x[rows] - before[rows]).pow(2).sum().sqrt())
                return (x, cos, sin)

            hnd = m.blocks[l].register_forward_pre_hook(pre)
            logits.append(m(ids)[-1].numpy())
            hnd.remove()
            srcs.append(src.numpy())
            l2s.append(change["l2"])
    write_st(OUT, {
        "tokens": np.array(ids, dtype=np.int32),
        "var_layer": np.array([v[0] for v in var], dtype=np.int32),
        "var_op": np.array([v[1] for v in var], dtype=np.int32),
        "var_pos": np.array([v[2] for v in var], dtype=np.int32),
        "var_src": np.stack(srcs).astype(np.float32),
        "var_l2": np.array(l2s, dtype=np.float32),
        "logits": np.stack(logits).astype(np.float32),
        "clean_logits": clean.astype(np.float32),
        "clean_resid": torch.stack(clean_resid).numpy().astype(np.float32),
    })
    print(f"wrote {OUT}: {len(var)} variants over {L} layers, prompt of {n} tokens")


if __name__ == "__main__":
    main()
