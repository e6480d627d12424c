#!/usr/bin/env python3
"""Write demo-out/report.md from the files tools/demo.sh left there.

Every number comes from a command's CSV (lens.csv, exit.*.csv, icl eN.csv), table (the
tuned lens's held-out KL, printed as TSV) or HDF5 output (the activation dump, read with
h5py); nothing is copied from a terminal. A stage that did not run is named with the reason.
"""
import argparse
import csv
import json
import math
import os
import re
import sys


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def fmt(x, d=3):
    v = num(x)
    return "n/a" if v is None else f"{v:.{d}f}"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def img(rel, alt):
    return f"![{alt}]({rel})" if os.path.exists(os.path.join(OUT, rel)) else f"({rel}: no plot, python3-matplotlib missing?)"


def read(rel):
    p = os.path.join(OUT, rel)
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def section_card(r, a):
    r.append("## Model card")
    r.append("")
    info = read("info.txt").strip().splitlines()
    r.append("`layerlab info`:")
    r.append("")
    r.append("```")
    r.extend(info[:30])
    r.append("```")
    card = os.path.join(a.model, "README.md") if os.path.isdir(a.model) else ""
    if card and os.path.exists(card):
        lines = open(card, errors="replace").read().splitlines()
        title = next((l.lstrip("# ").strip() for l in lines if l.startswith("#")), "")
        para, started = [], False
        for l in lines:
            if l.startswith("#"):
                if started:
                    break
                continue
            if l.strip():
                para.append(l.strip())
                started = True
            elif started:
                break
        r.append("")
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(para))   # its links are relative to the card
        r.append(f"From its card ({card}): **{title}**. " + text)
        acc = [l.strip() for l in lines if l.strip().startswith("- ") and ("met" in l)]
        if acc:
            r.append("")
            r.append("Acceptance levels on the card:")
            r.append("")
            r.extend(acc)
    r.append("")


def section_generate(r):
    r.append("## Generation sample")
    r.append("")
    txt = read("generate.txt")
    if not txt:
        r.append("Not run (see the stage table).")
    else:
        prompt = read("generate.prompt")
        cont = txt[len(prompt):] if txt.startswith(prompt) else txt
        r.append("Greedy (`--temperature 0`); the prompt, then what the model wrote after it:")
        r.append("")
        r.append("```")
        r.append(prompt)
        r.append("```")
        r.append("")
        r.append("```")
        r.append(cont.strip("\n"))
        r.append("```")
        timing = [l for l in read("generate.log").splitlines() if "tok/s" in l]
        if timing:
            r.append("")
            r.append("`" + timing[0].strip() + "`")
        mp, mt = read("generate-map.prompt"), read("generate-map.txt")
        if mp and mt:
            cont = mt[len(mp):] if mt.startswith(mp) else mt
            r.append("")
            r.append("A fact-table episode built from the evaluation questions' answers (four `entity -> value` "
                     f"demonstrations of one table, then a query); expected: **{read('generate-map.expected')}**:")
            r.append("")
            r.append("```")
            r.append(mp)
            r.append("```")
            r.append("")
            r.append("```")
            r.append(cont.strip("\n"))
            r.append("```")
    r.append("")


def section_dump(r):
    r.append("## Activation dump (`layerlab dump`, read back with h5py)")
    r.append("")
    path = os.path.join(OUT, "acts.h5")
    if not os.path.exists(path):
        r.append("Not run.")
        r.append("")
        return
    try:
        import h5py
        import numpy as np
    except ImportError:
        r.append("h5py or numpy is missing: the file acts.h5 was written but not read back.")
        r.append("")
        return
    with h5py.File(path, "r") as f:
        a = f["acts/hook_resid_post"]
        off = f["sequences/offsets"][...]
        roff = f["sequences/row_offsets"][...]
        layers = list(a.attrs["layers"]) if "layers" in a.attrs else list(range(a.shape[0]))
        r.append(f"`acts.h5`: complete = {bool(f.attrs['complete'])}, {len(off) - 1} sequences, "
                 f"{int(off[-1])} tokens, `acts/hook_resid_post` {tuple(a.shape)} ({a.dtype}) = "
                 f"[layer][row][d_model]; layers {layers[0]}..{layers[-1]}.")
        r.append("")
        last = roff[1:] - 1   # the last row of each sequence (the answer position of a task prompt)
        rows = []
        prev = None
        for i, l in enumerate(layers):
            x = a[i].astype(np.float64)
            n_all = np.linalg.norm(x, axis=1).mean()
            xl = x[last]
            n_last = np.linalg.norm(xl, axis=1).mean()
            if prev is None:
                cos = "-"
            else:
                c = (xl * prev).sum(1) / (np.linalg.norm(xl, axis=1) * np.linalg.norm(prev, axis=1) + 1e-30)
                cos = f"{c.mean():.3f}"
            prev = xl
            rows.append([int(l), f"{n_all:.3f}", f"{n_last:.3f}", cos])
        r.append(md_table(["block l (resid_post)", "mean L2 norm, all rows", "mean L2 norm, last row",
                           "cosine to block l-1, last row"], rows))
    r.append("")


def section_lenses(r, status):
    r.append("## Per-layer accuracy: logit lens, tuned lens, SPADE, L-SPADE")
    r.append("")
    lp = os.path.join(OUT, "lens.csv")
    if not os.path.exists(lp):
        r.append("Not run: " + status.get("per-layer lenses (logit / tuned / SPADE)", ("", "", ""))[2])
        r.append("")
        return
    lens = read_csv(lp)
    by = {}
    full = None
    for row in lens:
        if row["method"] == "full":
            full = row["accuracy"]
            n_scored = row["n_scored"]
            continue
        by.setdefault(int(row["layer"]), {})[row["method"]] = row["accuracy"]
    ls = {}
    ep = os.path.join(OUT, "exit.layers.csv")
    if os.path.exists(ep):
        for row in read_csv(ep):
            ls[int(row["layer"])] = (row["lspade"], row["lspade_spade_agree"])
    rows = []
    for l in sorted(by):
        m = by[l]
        la, ag = ls.get(l, ("nan", "nan"))
        rows.append([l, fmt(m.get("logit")), fmt(m.get("tuned")), fmt(m.get("spade")), fmt(la), fmt(ag), fmt(full)])
    r.append(f"Layer l = the residual after l blocks; {n_scored} evaluation items (the first of the task's stream; "
             "the tuned lens and L-SPADE were trained on the items after them); accuracy = the argmax among the item's options. Logit / tuned / SPADE "
             "from `layerlab lens` (lens.csv), L-SPADE and its agreement with SPADE from `layerlab exit --sweep` "
             "(exit.layers.csv, the same items).")
    r.append("")
    r.append(md_table(["layer", "logit lens", "tuned lens", "SPADE", "L-SPADE", "L-SPADE = SPADE", "full model"], rows))
    r.append("")
    kl = [l.split("\t") for l in read("tuned.txt").splitlines()]
    if kl and kl[0][:1] == ["layer"]:
        hdr = kl[0]
        rows = [[c if j == 0 else fmt(c, 4) for j, c in enumerate(x)] for x in kl[1:] if len(x) == len(hdr)]
        r.append("Tuned lens, KL(final || lens) in nats per layer (`tuned-lens train`; `val_` = held-out prompts):")
        r.append("")
        r.append(md_table(hdr, rows))
        r.append("")
    r.append(img("lens.png", "per-layer accuracy"))
    r.append("")


def section_exit(r):
    r.append("## SPADE-EXIT (`layerlab exit --sweep`)")
    r.append("")
    sp = os.path.join(OUT, "exit.sweep.csv")
    if not os.path.exists(sp):
        r.append("Not run (see the stage table).")
        r.append("")
        return
    sweep = read_csv(sp)
    runs = read_csv(os.path.join(OUT, "exit.runs.csv")) if os.path.exists(os.path.join(OUT, "exit.runs.csv")) else []
    exits = sorted((k for k in sweep[0] if k.startswith("exits_")), key=lambda k: int(k[6:]))
    full = sweep[0]["full_accuracy"]
    r.append(f"Exit after block l when L-SPADE's normalised option entropy is below tau, answering with SPADE "
             f"from that layer. Full model accuracy {fmt(full)}. Speedup = token-layers of the full model over "
             "those spent (aggregate), and measured wall-clock of the exit loop against the full model.")
    r.append("")
    rows = []
    for row in sweep:
        op = row.get("operating_point", "")
        if not op:
            continue
        t = num(row["tau"])
        wall = next((x for x in runs if num(x["tau"]) is not None and t is not None
                     and abs(num(x["tau"]) - t) <= 1e-6 * max(1.0, abs(t))), None)
        rows.append([op_name(op), fmt(row["tau"], 4), fmt(row["accuracy"]), fmt(full),
                     fmt(row["speedup_aggregate"], 2) + "x",
                     (fmt(wall["wall_speedup"], 2) + "x") if wall else "n/a",
                     " / ".join(row[k] for k in exits)])
    r.append("Operating points:")
    r.append("")
    r.append(md_table(["operating point", "tau", "accuracy", "full model", "token-layer speedup",
                       "wall-clock speedup", "exits per layer " + "/".join(k[6:] for k in exits)], rows))
    r.append("")
    # The sweep, thinned to at most 12 rows (always the first, the last and the operating points).
    keep = set(range(0, len(sweep), max(1, len(sweep) // 10))) | {len(sweep) - 1}
    keep |= {j for j, row in enumerate(sweep) if row.get("operating_point")}
    rows = [[fmt(sweep[j]["tau"], 4), fmt(sweep[j]["accuracy"]), fmt(sweep[j]["speedup_aggregate"], 2) + "x",
             " / ".join(sweep[j][k] for k in exits), sweep[j].get("operating_point", "")] for j in sorted(keep)]
    r.append(f"The tau sweep ({len(sweep)} thresholds; every {max(1, len(sweep) // 10)}th shown, exit.sweep.csv has all):")
    r.append("")
    r.append(md_table(["tau", "accuracy", "token-layer speedup", "exits per layer", "operating point"], rows))
    r.append("")
    r.append(img("exit.png", "SPADE-EXIT"))
    r.append("")


def changed(x):
    """False for a layer whose patches all changed nothing (flagged by the command)."""
    return int(x.get("n_noop") or 0) < int(x.get("n") or 1)


def op_name(op):
    names = {"best_accuracy": "best accuracy", "within_1pt": "largest speedup within 1 point of the full model"}
    return " = ".join(names.get(o, o) for o in op.split("+"))


def best(rows, col):
    """The first layer of highest `col`, among layers whose patches changed something."""
    cand = [x for x in rows if num(x.get(col)) is not None and changed(x)]
    if not cand:
        return None
    return max(cand, key=lambda x: (num(x[col]), -int(x["layer"])))


def section_icl(r, tasks):
    r.append("## In-context learning (`layerlab icl`)")
    r.append("")
    if not tasks:
        r.append("No ICL task applies to this model (see the stage table).")
        r.append("")
        return
    r.append("### E1: accuracy against the number of demonstrations")
    r.append("")
    curves = {}
    for t in tasks:
        p = os.path.join(OUT, f"icl-{t.replace(':', '_').replace('/', '_')}", "e1", "e1.csv")
        if os.path.exists(p):
            curves[t] = {int(x["k"]): x["accuracy"] for x in read_csv(p)}
    ks = sorted({k for c in curves.values() for k in c})
    r.append(md_table(["task"] + [f"k = {k}" for k in ks],
                      [[f"`{t}`"] + [fmt(c.get(k)) for k in ks] for t, c in curves.items()]))
    r.append("")
    for t in curves:
        d = f"icl-{t.replace(':', '_').replace('/', '_')}"
        r.append(img(f"{d}/e1/e1.png", f"E1 {t}"))
    r.append("")
    r.append("### E2 (global task vector at the query) and E3 (local vectors at the label positions)")
    r.append("")
    rows = []
    for t in tasks:
        d = f"icl-{t.replace(':', '_').replace('/', '_')}"
        for e, what in (("e2", "E2 global"), ("e3", "E3 local")):
            p = os.path.join(OUT, d, e, f"{e}.csv")
            if not os.path.exists(p):
                rows.append([f"`{t}`", what, "not run", "", "", "", ""])
                continue
            x = read_csv(p)
            bd = best(x, "accuracy_dev")
            bt = best(x, "accuracy")
            base = "zero-shot query" if e == "e2" else "dummy demonstrations"
            rows.append([f"`{t}`", what,
                         f"{bd['layer']}: {fmt(bd['accuracy'])} (dev {fmt(bd['accuracy_dev'])})" if bd else "n/a",
                         f"{bt['layer']}: {fmt(bt['accuracy'])}" if bt else "n/a",
                         f"{fmt(x[0]['accuracy_base'])} ({base})", fmt(x[0]["accuracy_icl"]), x[0]["n"]])
    r.append(md_table(["task", "experiment", "layer chosen on dev prompts: test accuracy",
                       "best layer on the test prompts", "unpatched", "clean ICL", "test prompts"], rows))
    r.append("")
    r.append("(Layers whose patches all changed nothing are left out; layer l = the input of block l, "
             "`hook_resid_pre`. The per-layer curves are in each eN.csv.)")
    r.append("")
    for t in tasks:
        d = f"icl-{t.replace(':', '_').replace('/', '_')}"
        r.append(img(f"{d}/e2/e2.png", f"E2 {t}") + " " + img(f"{d}/e3/e3.png", f"E3 {t}"))
    r.append("")
    r.append("### E6: convergence of the label-position (local) vectors")
    r.append("")
    p = os.path.join(OUT, "icl-e6", "e6.csv")
    if os.path.exists(p):
        x = read_csv(p)
        r.append("Mean cosine between local vectors of one prompt (local-local), of the local vectors to the "
                 "query's (global) vector, and of the first / last local vector to it:")
        r.append("")
        r.append(md_table(["task", "layer", "local-local", "local-global", "first-global", "last-global"],
                          [[f"`{y['task']}`", y["layer"], fmt(y["local_local"]), fmt(y["local_global"]),
                            fmt(y["first_global"]), fmt(y["last_global"])] for y in x]))
        r.append("")
        r.append(img("icl-e6/e6.png", "E6"))
    else:
        r.append("Not run.")
    r.append("")


def key_numbers(tasks):
    """A few headline figures, from the same CSV files as the sections below."""
    key = []
    p = os.path.join(OUT, "lens.csv")
    if os.path.exists(p):
        rows = read_csv(p)
        full = next((x for x in rows if x["method"] == "full"), None)
        if full:
            line = f"full model accuracy on the {full['n_scored']} evaluation items: {fmt(full['accuracy'])}"
            for m, name in (("logit", "logit lens"), ("tuned", "tuned lens"), ("spade", "SPADE")):
                ms = [x for x in rows if x["method"] == m and num(x["accuracy"]) is not None]
                if ms:
                    b = max(ms, key=lambda x: (num(x["accuracy"]), -int(x["layer"])))
                    first = min((int(x["layer"]) for x in ms if num(x["accuracy"]) >= num(full["accuracy"])), default=None)
                    line += (f"; {name} best {fmt(b['accuracy'])} (layer {b['layer']})"
                             + (f", first reaches the full model at layer {first}" if first is not None else ""))
            key.append(line)
    p = os.path.join(OUT, "exit.sweep.csv")
    if os.path.exists(p):
        for x in read_csv(p):
            if x.get("operating_point"):
                key.append(f"SPADE-EXIT, {op_name(x['operating_point'])}: tau {fmt(x['tau'], 4)}, accuracy {fmt(x['accuracy'])} "
                           f"(full {fmt(x['full_accuracy'])}) at {fmt(x['speedup_aggregate'], 2)}x fewer token-layers")
    for t in tasks:
        p = os.path.join(OUT, f"icl-{t.replace(':', '_').replace('/', '_')}", "e1", "e1.csv")
        if os.path.exists(p):
            rows = read_csv(p)
            key.append(f"ICL E1 `{t}`: " + ", ".join(f"k={x['k']} {fmt(x['accuracy'])}" for x in rows))
    return key


def main():
    global OUT
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", default="")
    ap.add_argument("--task-kind", default="")
    ap.add_argument("--threads", default="")
    ap.add_argument("--seconds", default="")
    ap.add_argument("--tasks", default="")
    a = ap.parse_args()
    OUT = a.out
    status = {}
    order = []
    for line in read("status.tsv").splitlines():
        p = line.split("\t")
        if len(p) >= 4:
            status[p[0]] = (p[1], p[2], p[3])
            order.append(p[0])
    r = [f"# layerlab demo: {a.model}", ""]
    thr = "all cores" if a.threads in ("", "0") else f"{a.threads} thread(s)"
    r.append(f"Model `{a.model}`" + (f" (tokenizer `{a.tokenizer}`)" if a.tokenizer else "") +
             f"; decision task: {a.task_kind}; ICL tasks: {a.tasks or 'none'}; {thr}; "
             f"{a.seconds} s up to this report (`make demo`, tools/demo.sh).")
    r.append("")
    r.append(md_table(["stage", "state", "seconds", "note / output"],
                      [[s, status[s][0], status[s][1], status[s][2] if status[s][0] != "ok" or " " in status[s][2]
                        else f"`{status[s][2]}.txt`, `{status[s][2]}.log`"] for s in order]))
    skipped = [s for s in order if status[s][0] == "skipped"]
    if skipped:
        r.append("")
        r.append("Skipped, and why: " + "; ".join(f"**{s}**: {status[s][2]}" for s in skipped) + ".")
    r.append("")
    key = key_numbers([t for t in a.tasks.split() if t])
    if key:
        r.append("## Key numbers")
        r.append("")
        r.extend("- " + k for k in key)
        r.append("")
    section_card(r, a)
    section_generate(r)
    section_dump(r)
    section_lenses(r, status)
    section_exit(r)
    section_icl(r, [t for t in a.tasks.split() if t])
    with open(os.path.join(OUT, "report.md.tmp"), "w") as f:
        f.write("\n".join(r) + "\n")
    os.replace(os.path.join(OUT, "report.md.tmp"), os.path.join(OUT, "report.md"))
    print(os.path.join(OUT, "report.md"))


if __name__ == "__main__":
    sys.exit(main())
