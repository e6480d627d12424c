#!/usr/bin/python3
"""Plot a `layerlab icl` result CSV.

    plot_icl.py e1 e1.csv e1.png    accuracy vs number of demonstrations, one curve per task
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
    import os
    slots_csv = os.path.join(os.path.dirname(src), "e3_slots.csv") if exp == "e3" else None
    slots = list(csv.DictReader(open(slots_csv))) if slots_csv and os.path.exists(slots_csv) else []
    if slots:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        L = max(int(r["layer"]) for r in slots) + 1
        K = max(int(r["slot"]) for r in slots) + 1
        grid = [[0.0] * K for _ in range(L)]
        for r in slots:
            grid[int(r["layer"])][int(r["slot"])] = float(r["accuracy"])
        im = ax2.imshow(grid, vmin=0, vmax=1, aspect="auto", cmap="viridis", origin="lower")
        ax2.set_xticks(range(K))
        ax2.set_yticks(range(L))
        ax2.set_xlabel("demonstration patched alone")
        ax2.set_ylabel("layer")
        ax2.set_title("E3: one label position at a time")
        fig.colorbar(im, ax=ax2, label="accuracy")
    else:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    if exp == "e1":
        # one curve per task (the task column; older CSVs have none)
        tasks = list(dict.fromkeys(r.get("task", "") for r in rows))
        for t in tasks:
            sel = [r for r in rows if r.get("task", "") == t]
            ax.plot([int(r["k"]) for r in sel], [float(r["accuracy"]) for r in sel], "o-", label=t or None)
        if len(tasks) > 1:
            ax.legend(fontsize=8)
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
