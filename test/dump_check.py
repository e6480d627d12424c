"""Read a layerlab dump back with h5py (Debian's python3-h5py) and check it against
Hugging Face's numbers and against the values layerlab held in memory.

usage: dump_check.py DUMP_F32 DUMP_BF16 EXPECTED_SAFETENSORS INMEM_F32 N_SEQ
  DUMP_F32    dump of hook_resid_pre (all layers) + ln_final.hook_normalized, f32
  DUMP_BF16   the same dump in bf16
  EXPECTED    the fixture's expected.safetensors (hidden_states [L+1][T][d] from transformers)
  INMEM_F32   raw float32 [L][rows][d]: hook_resid_pre as recorded in memory by the C test
  N_SEQ       how many leading sequences of the fixture were dumped
Prints one line per check; exits 1 on the first failure."""
import json
import struct
import sys

import h5py
import numpy as np


def safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        dt = {"F32": np.float32, "I32": np.int32, "I64": np.int64}[v["dtype"]]
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(v["shape"])
    return out


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


def main():
    dump, dump_bf16, expected, inmem, n_seq = sys.argv[1:6]
    n_seq = int(n_seq)
    exp = safetensors(expected)
    f = h5py.File(dump, "r")
    if f.attrs["format"] != "layerlab-activations" or not bool(f.attrs["complete"]):
        fail("root attributes: format %r complete %r" % (f.attrs["format"], f.attrs["complete"]))
    L = int(f.attrs["n_layers"])
    off = f["sequences/offsets"][...]
    if len(off) != n_seq + 1 or off[-1] != exp["seq_offsets"][n_seq]:
        fail("offsets %s vs fixture %s" % (off, exp["seq_offsets"]))
    T = int(off[-1])
    if not np.array_equal(f["sequences/tokens"][...], exp["tokens"][:T]):
        fail("tokens differ from the fixture's")
    pre = f["acts/hook_resid_pre"]
    fin = f["acts/ln_final.hook_normalized"]
    if pre.shape != (L, T, exp["hidden_states"].shape[2]) or fin.shape[0] != 1:
        fail("shapes %s %s" % (pre.shape, fin.shape))
    if list(pre.attrs["layers"]) != list(range(L)) or list(fin.attrs["layers"]) != [L]:
        fail("layers attributes")
    hs = exp["hidden_states"][:, :T, :]
    got = np.concatenate([pre[...], fin[...]], axis=0)
    rel = np.abs(got - hs).max() / np.abs(hs).max()
    print("h5py: hook_resid_pre + ln_final vs transformers hidden_states: max relative error %.3g" % rel)
    if not rel < 1e-4:
        fail("relative error %.3g vs Hugging Face" % rel)
    mem = np.fromfile(inmem, dtype=np.float32).reshape(L, T, -1)
    if not np.array_equal(pre[...], mem):
        fail("the dump differs from the values held in memory (max abs %.3g)" % np.abs(pre[...] - mem).max())
    print("h5py: hook_resid_pre equals the in-memory values bit for bit")
    ids = [x.decode() if isinstance(x, bytes) else x for x in f["sequences/ids"][...]]
    meta = [json.loads(x) for x in f["sequences/metadata"][...]]
    if ids[0] != "seq-0" or meta[0].get("source") != "fixture":
        fail("ids %s metadata %s" % (ids, meta))
    rows = f["rows/sequence"][...]
    if not np.array_equal(np.bincount(rows, minlength=n_seq), np.diff(f["sequences/row_offsets"][...])):
        fail("rows/sequence disagrees with row_offsets")
    b = h5py.File(dump_bf16, "r")["acts/hook_resid_pre"]
    if b.dtype != np.uint16 or "bfloat16" not in b.attrs["storage"]:
        fail("bf16 storage: dtype %s" % b.dtype)
    widened = (b[...].astype(np.uint32) << 16).view(np.float32)
    rel16 = np.abs(widened - pre[...]).max() / np.abs(pre[...]).max()
    print("h5py: bf16 dump widened as documented: max relative difference to f32 %.3g" % rel16)
    if not rel16 < 2 ** -7:
        fail("bf16 relative difference %.3g" % rel16)
    print("OK")


if __name__ == "__main__":
    main()
