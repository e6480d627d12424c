#!/usr/bin/python3
"""Plots of a `layerlab exit` run: accuracy against token-layer speedup over the tau sweep
(operating points marked), the exit-layer histogram at the operating points, and the
per-layer accuracy curves with the Iso-Compute lens comparison.

usage: plot_exit.py PREFIX   (reads PREFIX.sweep.csv and PREFIX.layers.csv, writes PREFIX.png)
Exits with status 2 when matplotlib is missing (the caller warns and carries on)."""
import csv
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.stderr.write("plot_exit.py: matplotlib is missing (Debian: python3-matplotlib)\n")
    sys.exit(2)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def main():
    prefix = sys.argv[1]
    sweep = rows(prefix + ".sweep.csv")
    layers = rows(prefix + ".layers.csv")
    exit_cols = sorted((k for k in sweep[0] if k.startswith("exits_")), key=lambda k: int(k[6:]))
    L = len(exit_cols) - 1
    full = num(sweep[0]["full_accuracy"])
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.6))
    # accuracy vs speedup
    sp = [num(r["speedup_aggregate"]) for r in sweep]
    acc = [100 * num(r["accuracy"]) for r in sweep]
    ax[0].plot(sp, acc, ".-", color="C0", label="SPADE-EXIT (tau sweep)")
    ax[0].axhline(100 * full, color="k", lw=0.8, ls="--", label="full model")
    for r in sweep:
        if r["operating_point"]:
            ax[0].plot(num(r["speedup_aggregate"]), 100 * num(r["accuracy"]), "o", ms=9, mfc="none",
                       label="%s (tau %.3g)" % (r["operating_point"], num(r["tau"])))
    ax[0].set_xlabel("token-layer speedup (aggregate)")
    ax[0].set_ylabel("accuracy (%)")
    ax[0].set_title("accuracy vs speedup")
    ax[0].legend(fontsize=7)
    # exit histogram at the operating points (or the single tau)
    marked = [r for r in sweep if r["operating_point"]] or sweep
    w = 0.8 / len(marked)
    for i, r in enumerate(marked):
        h = [num(r[c]) for c in exit_cols][1:]
        ax[1].bar([l + 1 + (i - (len(marked) - 1) / 2) * w for l in range(L)], h, width=w,
                  label="%s tau %.3g" % (r["operating_point"] or "tau", num(r["tau"])))
    ax[1].set_xlabel("exit layer (L = no exit, full model)")
    ax[1].set_ylabel("prompts")
    ax[1].set_title("exit-layer histogram")
    ax[1].legend(fontsize=7)
    # per-layer curves
    ls = [int(r["layer"]) for r in layers]
    for key, style in (("logit", "-"), ("tuned", "-"), ("spade", "-"), ("lspade", "-"), ("logit_iso", ":"),
                       ("tuned_iso", ":")):
        ys = [100 * num(r[key]) for r in layers]
        if all(y != y for y in ys):
            continue
        ax[2].plot(ls, ys, style, marker=".", label=key.replace("_iso", " @ Iso-Compute"))
    ax[2].axhline(100 * full, color="k", lw=0.8, ls="--", label="full model")
    ax[2].set_xlabel("layer l (residual after l blocks)")
    ax[2].set_ylabel("accuracy (%)")
    ax[2].set_title("per-layer read-outs")
    ax[2].legend(fontsize=7)
    sw = sweep[0].get("switches", "")
    fig.suptitle(sw if len(sw) < 200 else sw[:197] + "...", fontsize=7)
    fig.tight_layout()
    fig.savefig(prefix + ".png", dpi=110)


if __name__ == "__main__":
    main()
