#!/usr/bin/python3
"""Plot a `layerlab icl` result CSV.

    plot_icl.py e1 e1.csv e1.png    accuracy vs number of demonstrations
    plot_icl.py e2 e2.csv e2.png    accuracy of the patched runs per layer, with the
    plot_icl.py e3 e3.csv e3.png    unpatched base and clean few-shot accuracies as lines

Only the standard library and matplotlib; exits 1 with a message when matplotlib is
missing (the CLI then warns and carries on).
"""
import csv
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    exp, src, dst = sys.argv[1:]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_icl.py: matplotlib is not installed (Debian: python3-matplotlib)")
    rows = list(csv.DictReader(open(src)))
    if not rows:
        sys.exit(f"plot_icl.py: {src} has no rows")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if exp == "e1":
        k = [int(r["k"]) for r in rows]
        ax.plot(k, [float(r["accuracy"]) for r in rows], "o-")
        ax.set_xlabel("demonstrations")
        ax.set_title("E1: ICL accuracy vs demonstrations")
    else:
        lay = [int(r["layer"]) for r in rows]
        ax.plot(lay, [float(r["accuracy"]) for r in rows], "o-", label="patched")
        if rows[0].get("accuracy_dev"):
            ax.plot(lay, [float(r["accuracy_dev"]) for r in rows], ".--", color="C1", label="patched, dev prompts")
        base = "zero-shot / dummy (unpatched)" if exp == "e2" else "dummy demos (unpatched)"
        ax.axhline(float(rows[0]["accuracy_base"]), color="gray", ls="--", label=base)
        ax.axhline(float(rows[0]["accuracy_icl"]), color="green", ls=":", label="clean few-shot")
        noop = [l for l, r in zip(lay, rows) if int(r["n_noop"]) > 0]
        if noop:
            ax.plot(noop, [float(rows[l]["accuracy"]) for l in noop], "rx", label="patch changed nothing")
        ax.set_xlabel("layer patched")
        ax.set_title("E2: global task vector" if exp == "e2" else "E3: local task vectors (label positions)")
        ax.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
