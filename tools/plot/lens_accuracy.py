#!/usr/bin/python3
"""Per-layer accuracy curves from `layerlab lens --out-csv` (method,layer,accuracy,n_scored,token_layers,switches).

Usage: lens_accuracy.py ACCURACY.csv OUT.png [TITLE]
One line per method over layers 0..L, the full model as a dashed horizontal line; the
switches the run used are printed under the title. Exits 1 (with a message) when
matplotlib is missing: layerlab then warns and goes on.
"""
import csv
import os
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("lens_accuracy.py: matplotlib is missing (Debian: python3-matplotlib, tools/deps.sh plot)")
    series, full, switches, n = {}, None, "", 0
    with open(sys.argv[1], newline="") as f:
        for row in csv.DictReader(f):
            switches, n = row["switches"], int(row["n_scored"])
            if row["method"] == "full":
                full = float(row["accuracy"])
            else:
                series.setdefault(row["method"], []).append((int(row["layer"]), float(row["accuracy"])))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if full is not None:
        ax.axhline(full, color="black", linestyle="--", linewidth=1, label="full model")
    ax.set_xlabel("layer l (residual after l blocks)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    title = sys.argv[3] if len(sys.argv) > 3 else os.path.basename(sys.argv[1])
    ax.set_title(f"{title}\n{switches}, n={n}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = sys.argv[2] + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, sys.argv[2])


if __name__ == "__main__":
    main()
