#!/usr/bin/python3
"""The paper's tables from the outputs of experiments/spade/run.sh.

usage: tables.py OUTDIR MODEL   (reads OUTDIR/*/exit.{layers,sweep,runs}.csv; Markdown on stdout)

Table 1, Iso-Compute: SPADE at layer l costs n*l + 2(L-l) token-layers; the linear read-outs
(logit lens, tuned lens) are read at the first whole layer with at least that compute,
ceil(l + 2(L-l)/n) per prompt. The gain is SPADE's accuracy minus the read-out's at equal
compute, in accuracy points, averaged over l = 1..L-1.
Table 2, SPADE-EXIT: the two operating points of the tau sweep (best accuracy; largest
token-layer speedup within 1 point of the full model), with the measured wall-clock speedup
of the real early-exit loop at those thresholds."""
import csv
import glob
import math
import os
import sys


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def fmt(x, pts=False):
    if x != x:
        return "-"
    return ("%+.2f" % x) if pts else ("%.3f" % x)


def main():
    out, model = sys.argv[1], sys.argv[2]
    settings = sorted(d for d in glob.glob(os.path.join(out, "*")) if os.path.exists(os.path.join(d, "exit.layers.csv")))
    print("# SPADE / L-SPADE / SPADE-EXIT on %s\n" % model)
    if not settings:
        print("no results under %s" % out)
        return
    switches = rows(os.path.join(settings[0], "exit.layers.csv"))[0]["switches"]
    print("Switches of the first setting (every CSV row records its own): `%s`\n" % switches)
    print("## Iso-Compute accuracy: SPADE against the linear read-outs\n")
    print("| setting | full model | best SPADE layer (acc) | SPADE - logit lens @ iso (mean, points) | "
          "SPADE - tuned lens @ iso (mean, points) | L-SPADE alone, best layer |")
    print("|---|---|---|---|---|---|")
    gains = []
    for d in settings:
        lay = rows(os.path.join(d, "exit.layers.csv"))
        L = max(int(r["layer"]) for r in lay)
        mid = [r for r in lay if 1 <= int(r["layer"]) < L]
        full = num(lay[0]["full"])
        gl = [100 * (num(r["spade"]) - num(r["logit_iso"])) for r in mid]
        gt = [100 * (num(r["spade"]) - num(r["tuned_iso"])) for r in mid if num(r["tuned_iso"]) == num(r["tuned_iso"])]
        bs = max(mid, key=lambda r: num(r["spade"]))
        bl = max(mid, key=lambda r: num(r["lspade"]) if num(r["lspade"]) == num(r["lspade"]) else -1)
        g = sum(gl) / len(gl) if gl else float("nan")
        gains.append(g)
        print("| %s | %s | %s (l=%s) | %s | %s | %s (l=%s) |" % (
            os.path.basename(d), fmt(full), fmt(num(bs["spade"])), bs["layer"], fmt(g, True),
            fmt(sum(gt) / len(gt), True) if gt else "-", fmt(num(bl["lspade"])), bl["layer"]))
    ok = [g for g in gains if g == g]
    if ok:
        print("\nMean Iso-Compute gain over the logit lens: %+.2f points (%d of %d settings positive)." % (
            sum(ok) / len(ok), sum(1 for g in ok if g > 0), len(ok)))
    print("\n## SPADE-EXIT operating points\n")
    print("| setting | full model | point | tau | accuracy | token-layer speedup (aggregate / mean) | "
          "L-SPADE checks (token-layers per prompt) | measured wall-clock speedup |")
    print("|---|---|---|---|---|---|---|---|")
    agg = {"best_accuracy": [], "within_1pt": []}
    for d in settings:
        sw = rows(os.path.join(d, "exit.sweep.csv"))
        runs = rows(os.path.join(d, "exit.runs.csv"))
        full = num(sw[0]["full_accuracy"]) if sw else float("nan")
        for point in ("best_accuracy", "within_1pt"):
            r = next((r for r in sw if point in r["operating_point"].split("+")), None)
            if r is None:
                print("| %s | %s | %s | - | - | none within 1 point | - | - |" % (os.path.basename(d), fmt(full), point))
                continue
            tau = num(r["tau"])
            run = next((x for x in runs if abs(num(x["tau"]) - tau) <= 1e-9 * max(1, abs(tau))), None)
            wall = num(run["wall_speedup"]) if run else float("nan")
            agg[point].append(num(r["speedup_aggregate"]))
            print("| %s | %s | %s | %.4g | %s | %.3fx / %.3fx | %.3g | %s |" % (
                os.path.basename(d), fmt(full), point, tau, fmt(num(r["accuracy"])), num(r["speedup_aggregate"]),
                num(r["speedup_mean"]), num(r["map_token_layers"]), ("%.3fx" % wall) if wall == wall else "-"))
    for point, v in agg.items():
        if v:
            print("\nMean token-layer speedup at %s: %.3fx over %d settings." % (point, sum(v) / len(v), len(v)))
    print("\nPaper (LLaMA-7B / Vicuna-7B; ARC, BoolQ, HeadQA): SPADE +0.43 Iso-Compute on average, SPADE-EXIT 1.15x "
          "at the best-accuracy points and 1.40x within 1 point. Figures here are for the model above and are not "
          "comparable unless the model and data are the paper's.")


if __name__ == "__main__":
    main()
