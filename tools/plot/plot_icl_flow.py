#!/usr/bin/env python3
"""Plots for layerlab icl e4 | e5 | e6 | e7 (docs/icl-analysis.md).

usage: plot_icl_flow.py EXP CSV PNG

Reads the CSV the command wrote (first column `task`, then numeric columns) and draws:
  e4  accuracy drop (and the random-position control) per layer window, one line per task
  e5  attention mass per layer: in_label, label_query, S_ww; with saliency columns a second
      panel with Wang's saliency S_wp / S_pq / S_ww (log scale)
  e6  cosine per layer: local-local and local-global, one colour per task
  e7  variance fraction per layer: PC1-3 and each dPCA factor
Needs matplotlib (Debian python3-matplotlib; tools/deps.sh plot); exits 3 without it.
"""
import csv
import math
import sys


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    data = [{h: (r[i] if i == 0 else float(r[i])) for i, h in enumerate(head)} for r in body]
    return head, data


def by_task(data):
    out = {}
    for r in data:
        out.setdefault(r["task"], []).append(r)
    return out


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    exp, path, png = argv[1], argv[2], argv[3]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_icl_flow.py: matplotlib is not installed (Debian python3-matplotlib; tools/deps.sh plot)",
              file=sys.stderr)
        sys.exit(3)
    head, data = read(path)
    sal = exp == "e5" and any(not math.isnan(r.get("sal_label_query", math.nan)) for r in data)
    if sal:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    else:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    tasks = by_task(data)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if exp == "e4":
        for i, (t, rows) in enumerate(tasks.items()):
            rows = [r for r in rows if r["layer_lo"] >= 0]
            x = [(r["layer_lo"] + r["layer_hi"]) / 2 for r in rows]
            c = colours[i % len(colours)]
            ax.plot(x, [r["acc_drop"] for r in rows], "o-", color=c, label=f"{t}")
            ctrl = [r["control_drop"] for r in rows]
            if any(not math.isnan(v) for v in ctrl):
                ax.plot(x, ctrl, "x--", color=c, label=f"{t} (random positions)")
        ax.set_xlabel("layer window (centre)")
        ax.set_ylabel("accuracy drop")
        ax.axhline(0, color="grey", lw=0.5)
    elif exp == "e5":
        for i, (t, rows) in enumerate(tasks.items()):
            c = colours[i % len(colours)]
            x = [r["layer"] for r in rows]
            ax.plot(x, [r["in_label"] for r in rows], "o-", color=c, label=f"{t}: input -> label")
            ax.plot(x, [r["label_query"] for r in rows], "s-", color=c, alpha=0.6, label=f"{t}: labels -> query")
            ax.plot(x, [r["wang_ww"] for r in rows], ":", color=c, alpha=0.6, label=f"{t}: other (S_ww)")
        ax.set_xlabel("layer")
        ax.set_ylabel("attention mass (mean over heads, prompts)")
        if sal:
            for i, (t, rows) in enumerate(tasks.items()):
                c = colours[i % len(colours)]
                x = [r["layer"] for r in rows]
                ax2.plot(x, [r["sal_wp"] for r in rows], "o-", color=c, label=f"{t}: S_wp")
                ax2.plot(x, [r["sal_pq"] for r in rows], "s-", color=c, alpha=0.6, label=f"{t}: S_pq")
                ax2.plot(x, [r["sal_ww"] for r in rows], ":", color=c, alpha=0.6, label=f"{t}: S_ww")
            ax2.set_yscale("log")
            ax2.set_xlabel("layer")
            ax2.set_ylabel("saliency |sum_h A dL/dA| (mean over pairs)")
            ax2.legend(fontsize=7)
    elif exp == "e6":
        for i, (t, rows) in enumerate(tasks.items()):
            c = colours[i % len(colours)]
            x = [r["layer"] for r in rows]
            ax.plot(x, [r["local_local"] for r in rows], "o-", color=c, label=f"{t}: local-local")
            ax.plot(x, [r["local_global"] for r in rows], "s--", color=c, label=f"{t}: local-global")
        ax.set_xlabel("layer")
        ax.set_ylabel("cosine similarity")
    elif exp == "e7":
        x = [r["layer"] for r in data]
        for h in head[1:]:
            if h.startswith("pc") or h.startswith("var_") or h == "rest":
                style = "o-" if h.startswith("var_") else ("s:" if h.startswith("pc") else "x--")
                ax.plot(x, [r[h] for r in data], style, label=h)
        ax.set_xlabel("layer")
        ax.set_ylabel("fraction of variance")
    else:
        sys.exit(f"plot_icl_flow.py: unknown experiment {exp}")
    ax.set_title(f"layerlab icl {exp}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main(sys.argv)
