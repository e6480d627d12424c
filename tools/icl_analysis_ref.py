#!/usr/bin/env python3
"""numpy reference for host/icl/ll_icl_analysis.c (used by test/test_icl_analysis.c).

usage: icl_analysis_ref.py X.f32 N D LEVELS.i32 N_FAC L0,L1,.. K OUT.f64
X is N x D float32 (row-major), LEVELS N x N_FAC int32. Writes float64, in order:
  pca_var[K], pca_axes[K][D], pca_total,
  dpca_total, dpca_var[N_FAC], dpca_axes[N_FAC][K][D], dpca_axis_var[N_FAC][K],
  dpca_explained[N_FAC][K]
Axes carry the C code's sign convention (largest-magnitude coordinate positive).
Written independently of the C code: numpy.linalg.eigh on explicit covariance matrices.
"""
import sys

import numpy as np


def fix_sign(v):
    i = np.argmax(np.abs(v))
    return -v if v[i] < 0 else v


def top(C, k):
    w, V = np.linalg.eigh(C)
    order = np.argsort(w)[::-1][:k]
    return np.maximum(w[order], 0), [fix_sign(V[:, i]) for i in order]


def main(a):
    n, d = int(a[1]), int(a[2])
    X = np.fromfile(a[0], dtype=np.float32).astype(np.float64).reshape(n, d)
    nf = int(a[4])
    lev = np.fromfile(a[3], dtype=np.int32).reshape(n, nf)
    nlev = [int(x) for x in a[5].split(",")]
    k = int(a[6])
    out = []
    Xc = X - X.mean(0)
    C = Xc.T @ Xc / (n - 1)
    w, axes = top(C, k)
    out += list(w)
    for ax in axes:
        out += list(ax)
    out.append(np.trace(C))
    tot = (Xc ** 2).sum() / n
    out.append(tot)
    margs = []
    for f in range(nf):
        M = np.zeros_like(X)
        for lv in range(nlev[f]):
            sel = lev[:, f] == lv
            if sel.any():
                M[sel] = X[sel].mean(0) - X.mean(0)
        margs.append(M)
        out.append((M ** 2).sum() / n)
    avs, exps = [], []
    for f in range(nf):
        Cf = margs[f].T @ margs[f] / n
        w, axes = top(Cf, k)
        for ax in axes:
            out += list(ax)
        avs += list(w)
        exps += [((Xc @ ax) ** 2).sum() / n / tot for ax in axes]
    out += avs + exps
    np.array(out, dtype=np.float64).tofile(a[7])


if __name__ == "__main__":
    main(sys.argv[1:])
