#!/usr/bin/env python3
"""DuckDB peer for `ember bench ops --compare duckdb`.

Loads the exact columns ember generated (raw little-endian int64 files written by ember), then
answers one command per line on stdin:  `run NAME` -> one JSON line with the query's wall time
and a checksum of its answer computed like ember's; `quit` ends. Only the query is timed (the
input is already in DuckDB's memory), as on ember's side. The checksum sums wrap at 2**64 like
ember's int64 arithmetic.
"""
import argparse
import glob
import os
import sys
import time

import line_peer


def wrap(v):
    v = int(v or 0) % (1 << 64)
    return v - (1 << 64) if v >= (1 << 63) else v


QUERIES = {
    "groupby_sum_1m": ("CREATE OR REPLACE TEMP TABLE r AS SELECT k, sum(v) AS s FROM groupby_sum_1m_t GROUP BY k",
                       "SELECT count(*), sum(k::HUGEINT), sum(s::HUGEINT) FROM r"),
    "groupby_sum_100": ("CREATE OR REPLACE TEMP TABLE r AS SELECT k, sum(v) AS s FROM groupby_sum_100_t GROUP BY k",
                        "SELECT count(*), sum(k::HUGEINT), sum(s::HUGEINT) FROM r"),
    "sort_int64": ("CREATE OR REPLACE TEMP TABLE r AS SELECT k FROM sort_int64_t ORDER BY k",
                   None),
    "join_inner": ("CREATE OR REPLACE TEMP TABLE r AS SELECT l.k, l.v, r2.p FROM join_inner_l l JOIN join_inner_r r2 ON l.k = r2.k",
                   "SELECT count(*), sum(k::HUGEINT), sum(v::HUGEINT), sum(p::HUGEINT) FROM r"),
}


def checksum(con, name):
    if name == "sort_int64":
        n, s = con.execute("SELECT count(*), sum(k::HUGEINT) FROM r").fetchone()
        # rowid follows insertion order, which for CREATE TABLE AS ... ORDER BY is the sort order.
        picks = [0, n // 2, n - 1] if n else [0, 0, 0]
        vals = []
        for p in picks:
            row = con.execute("SELECT k FROM r WHERE rowid = ?", [p]).fetchone()
            vals.append(row[0] if row else 0)
        return [n, wrap(s)] + vals
    row = con.execute(QUERIES[name][1]).fetchone()
    return [int(row[0])] + [wrap(v) for v in row[1:]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    state = {}

    def start():
        import duckdb
        import numpy as np
        import pandas as pd
        con = duckdb.connect()
        con.execute(f"SET threads = {args.threads}")
        tables = {}
        for path in sorted(glob.glob(os.path.join(args.data, "*.bin"))):
            workload, table, column, _ = os.path.basename(path).split(".")
            tables.setdefault(f"{workload}_{table}", {})[column] = np.fromfile(path, dtype="<i8")
        for name, cols in tables.items():
            df = pd.DataFrame(cols)
            con.register("df_in", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM df_in")
            con.unregister("df_in")
        state["con"] = con
        return {"peer": "duckdb", "version": duckdb.__version__, "threads": args.threads,
                "tables": sorted(tables)}

    def run(argv):
        con, name = state["con"], argv[0]
        t0 = time.perf_counter()
        con.execute(QUERIES[name][0])
        seconds = time.perf_counter() - t0
        answer = {"name": name, "seconds": seconds, "checksum": checksum(con, name)}
        con.execute("DROP TABLE IF EXISTS r")
        return answer

    return line_peer.serve(start, {"run": run})

if __name__ == "__main__":
    sys.exit(main())
