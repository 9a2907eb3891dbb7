#!/usr/bin/python3
"""Helpers for tests/mpi_runner.sh (Debian's python3-h5py).

compare_results.py [--strict] [--subset] A.h5 B.h5
                                   every task of A and B has the same status and
                                   bit-identical metrics (matched by task_id;
                                   timings, rank, host, finished_at excluded),
                                   and the same /details arrays, bit for bit.
                                   --strict: every column but the timings, rank,
                                   host and finished_at, the rows in the same
                                   order, and the same spec_text and spec_hash
                                   (a merge of shards against a single job);
                                   --subset: B may hold more tasks than A (a
                                   superset spec): A's tasks are compared
compare_results.py --finished-ids F.h5
                                   print "task_id finished_at" of finished rows
compare_results.py --unchanged F.h5 LIST
                                   rows listed (finished before) still have the
                                   same finished_at: they did not run again"""
import sys

import h5py
import numpy as np

METRICS = ["status", "ca_quant", "asr_quant", "ca_mitig", "asr_mitig", "detected", "model_id",
           "message"]


EXCLUDED = {"t_model", "t_quant", "t_mitig", "t_defense", "t_total", "rank", "host",
            "finished_at"}


def strict_same(path_a, path_b, subset):
    """Row order, every deterministic column, the spec attributes."""
    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        ta, tb = fa["tasks"][...], fb["tasks"][...]
        for attr in ("spec_text", "spec_hash"):
            if not subset and fa.attrs[attr] != fb.attrs[attr]:
                print("root attribute differs:", attr)
                return False
    if subset:
        ids = set(int(i) for i in ta["task_id"])
        tb = tb[np.array([int(i) in ids for i in tb["task_id"]], dtype=bool)]
    if len(ta) != len(tb):
        print("different row counts:", len(ta), len(tb))
        return False
    for name in ta.dtype.names:
        if name in EXCLUDED:
            continue
        if ta[name].tobytes() != tb[name].tobytes():
            print("column differs (or rows are in another order):", name)
            return False
    return True


def load(path):
    with h5py.File(path, "r") as f:
        t = f["tasks"][...]
    return {int(r["task_id"]): r for r in t}


def same(a, b):
    for k in METRICS:
        x, y = a[k], b[k]
        if isinstance(x, np.floating):
            if np.isnan(x) and np.isnan(y):
                continue
            if np.asarray(x).tobytes() != np.asarray(y).tobytes():
                return False
        elif x != y:
            return False
    return True


def load_details(path):
    out = {}
    with h5py.File(path, "r") as f:
        if "details" not in f:
            return out
        for name, group in f["details"].items():
            for tid, ds in group.items():
                out[(name, tid)] = ds[...].tobytes()
    return out


def report_differences(a, b, tasks, da, db):
    """Compare the rows a[t], b[t] of the given tasks and the detail arrays
    da, db (load_details); print the first five of each kind of difference.
    Returns 1 if a row differs or is pending, or the detail arrays differ,
    else 0."""
    bad = [t for t in tasks if not same(a[t], b[t]) or a[t]["status"] == 0]
    for t in bad[:5]:
        print("differs or pending:", t, a[t][METRICS[:5]], b[t][METRICS[:5]])
    if da.keys() != db.keys():
        print("different detail arrays:", sorted(set(da) ^ set(db))[:5])
        return 1
    dbad = [k for k in da if da[k] != db[k]]
    for k in dbad[:5]:
        print("detail differs:", k)
    return 1 if bad or dbad else 0


def main():
    if sys.argv[1] == "--finished-ids":
        for tid, r in load(sys.argv[2]).items():
            if r["status"] in (1, 2, 3):
                print(tid, repr(float(r["finished_at"])))
        return 0
    if sys.argv[1] == "--unchanged":
        rows = load(sys.argv[2])
        for line in open(sys.argv[3]):
            tid, t = line.split()
            if float(rows[int(tid)]["finished_at"]) != float(t):
                print(f"task {tid} ran again")
                return 1
        return 0
    args = sys.argv[1:]
    strict = "--strict" in args
    subset = "--subset" in args
    args = [x for x in args if x not in ("--strict", "--subset")]
    a, b = load(args[0]), load(args[1])
    if subset:
        if not a.keys() <= b.keys():
            print("tasks of A missing in B:", len(a.keys() - b.keys()))
            return 1
        b = {t: b[t] for t in a}
    if a.keys() != b.keys():
        print("different task sets")
        return 1
    if strict and not strict_same(args[0], args[1], subset):
        return 1
    da, db = load_details(args[0]), load_details(args[1])
    if subset:
        hexids = {format(t, "016x") for t in a}
        db = {k: v for k, v in db.items() if k[1] in hexids}
    return report_differences(a, b, list(a), da, db)


if __name__ == "__main__":
    sys.exit(main())
