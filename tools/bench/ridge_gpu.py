#!/usr/bin/python3
"""GPU ridge benchmark (for a GPU machine; NOT run by make test): layerlab's cuBLAS/cuSOLVER
path (`layerlab lspade ridge --ridge-device cuda`) against torch.linalg.solve on the same
data, and the CPU path (LAPACK) for reference. Reports seconds and the agreement of W.

usage: tools/bench/ridge_gpu.py [--n 20000] [--d 4096] [--q 4] [--lam 1.0] [--layerlab build/layerlab]
The shapes default to one layer of a 7B model with the option-logits target (d 4096, K 4)."""
import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=20000)
ap.add_argument("--d", type=int, default=4096)
ap.add_argument("--q", type=int, default=4)
ap.add_argument("--lam", type=float, default=1.0)
ap.add_argument("--layerlab", default="build/layerlab")
ap.add_argument("--skip-cpu", action="store_true")
a = ap.parse_args()
rng = np.random.default_rng(0)
X = (rng.standard_normal((a.n, a.d)) + 3.0).astype(np.float32)
Y = (X[:, : a.q] * 0.5 + rng.standard_normal((a.n, a.q))).astype(np.float32)
tmp = tempfile.mkdtemp()
xf, yf = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32")
X.tofile(xf)
Y.tofile(yf)

# torch: the same problem (bias column, bias not penalised), fp64 on the GPU
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.cuda.synchronize() if dev == "cuda" else None
t0 = time.perf_counter()
Xt = torch.from_numpy(X).to(dev, torch.float64)
Yt = torch.from_numpy(Y).to(dev, torch.float64)
Xa = torch.cat([Xt, torch.ones(a.n, 1, device=dev, dtype=torch.float64)], 1)
A = Xa.T @ Xa
B = Xa.T @ Yt
if dev == "cuda":
    torch.cuda.synchronize()
t1 = time.perf_counter()
A[range(a.d), range(a.d)] += a.lam
W_t = torch.linalg.solve(A, B)
if dev == "cuda":
    torch.cuda.synchronize()
t2 = time.perf_counter()
W_t = W_t.cpu().numpy()
print("torch (%s, fp64): gram %.3f s, solve %.3f s" % (dev, t1 - t0, t2 - t1))

for device in ["cuda"] + ([] if a.skip_cpu else ["cpu"]):
    of = os.path.join(tmp, "w_%s.f64" % device)
    cmd = [a.layerlab, "lspade", "ridge", "--x", xf, "--y", yf, "--n", str(a.n), "--d", str(a.d), "--q", str(a.q),
           "--lambda", str(a.lam), "--out", of, "--ridge-device", device]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print("layerlab (%s): failed: %s" % (device, r.stderr.strip()))
        continue
    W = np.fromfile(of, dtype=np.float64).reshape(a.d + 1, a.q)
    rel = np.abs(W - W_t).max() / np.abs(W_t).max()
    print("layerlab (%s): %s (process %.3f s incl. reading the files); max rel |W - torch W| %.2e"
          % (device, r.stdout.strip(), wall, rel))
