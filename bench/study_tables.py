#!/usr/bin/python3
"""Tables of a defense or mitigation study from its results file (Debian's
python3-h5py), for bench/RESULTS.md and the issue notes until `qblind
report` exists.

  bench/study_tables.py defenses RESULTS.h5    detection per defense x precision
                                               x trigger, raw-score summaries,
                                               seconds per defense run
  bench/study_tables.py mitigation RESULTS.h5  CA/ASR before and after per
                                               trigger x precision x mitigation
"""
import sys

import h5py
import numpy as np


def load(path):
    with h5py.File(path, "r") as f:
        t = f["tasks"][...]
        det = {}
        if "details" in f:
            for name, g in f["details"].items():
                det[name] = {k: g[k][...] for k in g}
    rows = []
    for r in t:
        d = {k: r[k] for k in t.dtype.names}
        for k, v in d.items():
            if isinstance(v, bytes):
                d[k] = v.decode()
        d["tid"] = format(int(r["task_id"]), "016x")
        rows.append(d)
    return rows, det


def detail(det, name, tid):
    g = det.get(name)
    return None if g is None or tid not in g else g[tid]


def fmt_rate(k, n):
    return f"{k}/{n}" if n else "-"


def grid(first, names, cols, cell):
    """A markdown table: a row per name, a column per col, cell(name, col) the text."""
    print(f"| {first} | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name in names:
        print(f"| {name} | " + " | ".join(cell(name, c) for c in cols) + " |")


def defenses(path):
    rows, det = load(path)
    precs = sorted({r["precision"] for r in rows}, key=lambda p: ["fp32", "int8", "int8-linear", "int4"].index(p) if p in ["fp32", "int8", "int8-linear", "int4"] else 9)
    defs = ["nc", "ac", "ss", "strip", "fp", "forensics"]
    print("Detection: backdoored (square) yes/n | clean yes/n (false positives); error = could not run\n")
    def detection(dname, p):
        parts = []
        for trig in ["square", "clean"]:
            sel = [r for r in rows if r["defense"] == dname and r["precision"] == p and r["trigger"] == trig]
            yes = sum(r["detected"] == 1 for r in sel)
            na = sum(r["detected"] == -1 for r in sel)
            err = sum(r["detected"] == 2 for r in sel)
            n = len(sel) - na - err
            s = fmt_rate(yes, n) if n else "n/a"
            if err:
                s += f" ({err} error)"
            parts.append(s)
        return " \\| ".join(parts)
    grid("defense", defs, precs, detection)

    print("\nRaw scores, mean over seeds (square / clean)\n")
    print("| precision | NC target flagged | NC idx(target) | AC small-cluster poisoned share | SS TPR target / max FPR | STRIP TPR / FRR / AUROC | FP ASR before->after, CA drop | forensics min p |")
    print("|---|---|---|---|---|---|---|---|")
    for p in precs:
        def sel(dn, trig):
            return [r for r in rows if r["defense"] == dn and r["precision"] == p and r["trigger"] == trig and r["status"] in (1, 2)]
        nc = sel("nc", "square")
        tf = [detail(det, "nc.target_flagged", r["tid"]) for r in nc]
        tf = [float(v[0]) for v in tf if v is not None]
        idx = [float(detail(det, "nc.anomaly_index", r["tid"])[0]) for r in nc if detail(det, "nc.anomaly_index", r["tid"]) is not None]
        ac = sel("ac", "square")
        acs = []
        for r in ac:
            sp = detail(det, "ac.small_poisoned", r["tid"])
            if sp is not None:
                acs.append(float(sp[0]) / 6000.0)
        ss = sel("ss", "square")
        sst = [float(detail(det, "ss.tpr", r["tid"])[0]) for r in ss if detail(det, "ss.tpr", r["tid"]) is not None]
        ssf = [float(np.max(detail(det, "ss.fpr", r["tid"]))) for r in ss if detail(det, "ss.fpr", r["tid"]) is not None]
        st = sel("strip", "square")
        stv = [[float(detail(det, f"strip.{k}", r["tid"])[0]) for k in ("tpr", "frr", "auroc")] for r in st if detail(det, "strip.tpr", r["tid"]) is not None]
        fp = sel("fp", "square")
        fpv = [[float(detail(det, f"fp.{k}", r["tid"])[0]) for k in ("asr_before", "asr_tuned", "ca_before", "ca_tuned")] for r in fp if detail(det, "fp.asr_before", r["tid"]) is not None]
        fo = sel("forensics", "square")
        fop = [float(detail(det, "forensics.p_cell", r["tid"])[0]) for r in fo if detail(det, "forensics.p_cell", r["tid"]) is not None]
        m = lambda v: f"{np.mean(v):.3f}" if v else "-"
        stvs = " / ".join(m([x[i] for x in stv]) for i in range(3)) if stv else "-"
        fpvs = (f"{100*np.mean([x[0] for x in fpv]):.1f}% -> {100*np.mean([x[1] for x in fpv]):.1f}%, "
                f"{100*np.mean([x[2]-x[3] for x in fpv]):.2f} pt") if fpv else "-"
        print(f"| {p} | {int(sum(tf))}/{len(tf)} | {m(idx)} | {m(acs)} | {m(sst)} / {m(ssf)} | {stvs} | {fpvs} | {min(fop) if fop else '-':.3g} |" if fop else
              f"| {p} | {int(sum(tf))}/{len(tf)} | {m(idx)} | {m(acs)} | {m(sst)} / {m(ssf)} | {stvs} | {fpvs} | - |")

    print("\nSeconds per defense run (median of t_defense over the tasks; one rank per core)\n")
    def seconds(dname, p):
        t = [r["t_defense"] for r in rows if r["defense"] == dname and r["precision"] == p and r["status"] in (1, 2, 3)]
        return f"{np.median(t):.1f}" if t else "-"
    grid("defense", defs, precs, seconds)
    bad = [r for r in rows if r["status"] in (0, 3)]
    print(f"\n{len(rows)} tasks; {sum(r['status'] == 1 for r in rows)} ok, {sum(r['status'] == 2 for r in rows)} invalid, {sum(r['status'] == 3 for r in rows)} failed, {sum(r['status'] == 0 for r in rows)} pending")
    for r in bad[:10]:
        print("  ", r["trigger"], r["precision"], r["defense"], r["seed"], r["message"])


def mitigation(path):
    rows, det = load(path)
    mits = ["none", "finetune", "requant-pc", "requant-round", "requant-bits", "requant-noise", "fineprune"]
    print("CA / ASR after mitigation, mean over seeds (ASR before in the `none` row); [min, max] ASR\n")
    for trig in sorted({r["trigger"] for r in rows}):
        for p in sorted({r["precision"] for r in rows}):
            print(f"\n{trig} at {p}\n")
            print("| mitigation | n | CA after | ASR after | ASR min..max | eval-half ASR before -> after | codes changed | seconds |")
            print("|---|---|---|---|---|---|---|---|")
            for mname in mits:
                sel = [r for r in rows if r["trigger"] == trig and r["precision"] == p and r["mitigation"] == mname and r["status"] in (1, 2)]
                if not sel:
                    continue
                ca = [r["ca_mitig"] for r in sel]
                asr = [r["asr_mitig"] for r in sel]
                ev = [detail(det, "mitigation.asr_eval", r["tid"]) for r in sel]
                ev = [e for e in ev if e is not None]
                cc = [detail(det, "mitigation.codes_changed", r["tid"]) for r in sel]
                cc = [float(c[0]) for c in cc if c is not None]
                evs = f"{100*np.mean([e[0] for e in ev]):.1f}% -> {100*np.mean([e[1] for e in ev]):.1f}%" if ev else "-"
                ccs = f"{100*np.nanmean(cc):.1f}%" if cc and not all(np.isnan(cc)) else "-"
                t = np.median([r["t_mitig"] for r in sel])
                print(f"| {mname} | {len(sel)} | {100*np.mean(ca):.2f}% | {100*np.mean(asr):.2f}% | {100*min(asr):.1f}..{100*max(asr):.1f}% | {evs} | {ccs} | {t:.1f} |")
    bad = [r for r in rows if r["status"] in (0, 3)]
    print(f"\n{len(rows)} tasks; {sum(r['status'] == 1 for r in rows)} ok, {sum(r['status'] == 2 for r in rows)} invalid, {len(bad)} failed or pending")
    for r in bad[:10]:
        print("  ", r["trigger"], r["precision"], r["mitigation"], r["seed"], r["message"])


if __name__ == "__main__":
    {"defenses": defenses, "mitigation": mitigation}[sys.argv[1]](sys.argv[2])
