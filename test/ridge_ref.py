#!/usr/bin/python3
"""Independent reference for test/test_ridge.c: ridge with an unpenalised bias solved as an
augmented least-squares problem with numpy.linalg.lstsq (no normal equations), plus the
held-out MSE of each fit.

usage: ridge_ref.py X.f64 Y.f64 n d q n_train LAMBDA,... OUT.f64
X [n][d] and Y [n][q] float64; rows [0, n_train) fit, rows [n_train, n) score.
OUT: for each lambda, W [(d+1)][q] (bias last) then the validation MSE (one float64)."""
import sys
import numpy as np

xf, yf, n, d, q, nt, lams, out = sys.argv[1:9]
n, d, q, nt = int(n), int(d), int(q), int(nt)
X = np.fromfile(xf, dtype=np.float64).reshape(n, d)
Y = np.fromfile(yf, dtype=np.float64).reshape(n, q)
Xa = np.hstack([X, np.ones((n, 1))])
res = []
for lam in (float(v) for v in lams.split(",")):
    # ||Xa W - Y||^2 + lam ||W[:d]||^2 == || [Xa; sqrt(lam) [I 0]] W - [Y; 0] ||^2
    P = np.zeros((d, d + 1))
    P[:, :d] = np.sqrt(lam) * np.eye(d)
    A = np.vstack([Xa[:nt], P]) if lam > 0 else Xa[:nt]
    B = np.vstack([Y[:nt], np.zeros((d, q))]) if lam > 0 else Y[:nt]
    W = np.linalg.lstsq(A, B, rcond=None)[0]
    mse = float(np.mean((Xa[nt:] @ W - Y[nt:]) ** 2)) if nt < n else 0.0
    res.append(W.ravel())
    res.append(np.array([mse]))
np.concatenate(res).astype(np.float64).tofile(out)
