"""Peer of `qblind run --empty-tasks`: mpi4py.futures dispatching N empty
tasks, one at a time (chunksize 1, as qblind hands out one task per message).
usage: mpirun -n 2 /usr/bin/python3 -m mpi4py.futures bench/peer_mpi4py_dispatch.py N
Prints: mpi4py.futures N tasks in S s = R tasks/s (workers W)"""
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor


def empty(i):
    return i


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    with MPIPoolExecutor() as ex:
        ex.bootup(wait=True)
        t0 = time.perf_counter()
        done = 0
        for _ in ex.map(empty, range(n), chunksize=1):
            done += 1
        dt = time.perf_counter() - t0
    assert done == n
    print(f"mpi4py.futures {n} tasks in {dt:.2f} s = {n / dt:.0f} tasks/s (world size {MPI.COMM_WORLD.Get_size()})")


if __name__ == "__main__":
    main()
