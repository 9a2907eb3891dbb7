#!/usr/bin/python3
"""Row checks of tests/fault_runner.sh (Debian's python3-h5py); the
comparisons themselves are tests/compare_results.py's.

fault_rows.py failed F.h5          print "task_id model_id message" of every
                                   row recorded failed (none when the file
                                   cannot be read: the caller checks that)
fault_rows.py same-except A.h5 B.h5 LIST
                                   A and B hold the same tasks; all but those
                                   listed (first word of each line of LIST)
                                   have the same status, bit-identical metrics
                                   and the same /details arrays"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_results as cr  # noqa: E402

FAILED = 3


def failed(path):
    for tid, r in cr.load(path).items():
        if r["status"] == FAILED:
            msg = r["message"].decode("utf-8", "replace")
            print(tid, int(r["model_id"]), msg)
    return 0


def same_except(path_a, path_b, path_list):
    skip = {int(line.split()[0]) for line in open(path_list) if line.strip()}
    a, b = cr.load(path_a), cr.load(path_b)
    if a.keys() != b.keys():
        print("different task sets")
        return 1
    hexskip = {format(t, "016x") for t in skip}
    da = {k: v for k, v in cr.load_details(path_a).items() if k[1] not in hexskip}
    db = {k: v for k, v in cr.load_details(path_b).items() if k[1] not in hexskip}
    return cr.report_differences(a, b, [t for t in a if t not in skip], da, db)


def main():
    if sys.argv[1] == "failed":
        return failed(sys.argv[2])
    if sys.argv[1] == "same-except":
        return same_except(sys.argv[2], sys.argv[3], sys.argv[4])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
