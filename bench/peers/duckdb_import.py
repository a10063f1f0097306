#!/usr/bin/env python3
"""DuckDB peer for `ember bench import --compare duckdb`.

Reads the CSV file ember generated into DuckDB's own format and scans it back, one command per
line on stdin, each answered with one JSON line:

  import  a fresh database file: CREATE TABLE t AS SELECT * FROM read_csv(FILE, header = true)
          and CHECKPOINT (DuckDB's format on disk, synced). Timed from connect to the end of the
          checkpoint (ember's import is timed from reading the CSV to its synced commit).
  narrow  reopens the file read-only and runs SELECT count(*), sum(amount), count(country).
  full    reopens the file read-only and runs an aggregate that touches every column.
          Scans are timed from connect to the fetched answer (ember's from reading the manifest
          to its answer); "query_seconds" is the query alone.
  quit    ends.

Types are inferred by DuckDB's sniffer, as ember's reader infers them; the answer to `import`
lists them so the caller can check they match. Integer sums are returned exactly (Python ints
from HUGEINT), sum(amount) as a float.
"""
import argparse
import os
import sys
import time

import line_peer

NARROW = "SELECT count(*), sum(amount), count(country) FROM t"
FULL = ("SELECT count(*), sum(id), sum(\"user\"), sum(amount), count(country), "
        "epoch_ms(max(ts)), sum(strlen(device)) FROM t")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    db = os.path.join(args.dir, "duckdb_import.duckdb")
    duckdb = None

    def start():
        nonlocal duckdb
        import duckdb
        return {"peer": "duckdb", "version": duckdb.__version__, "threads": args.threads,
                "database": db}

    def connect(read_only):
        con = duckdb.connect(db, read_only=read_only)
        con.execute(f"SET threads = {args.threads}")
        return con

    def load(_):
        for path in (db, db + ".wal"):
            if os.path.exists(path):
                os.remove(path)
        t0 = time.perf_counter()
        con = connect(False)
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?, header = true)", [args.csv])
        con.execute("CHECKPOINT")
        seconds = time.perf_counter() - t0
        rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
        types = {r[0]: r[1] for r in con.execute("DESCRIBE t").fetchall()}
        con.close()
        return {"seconds": seconds, "rows": rows, "types": types,
                "file_bytes": os.path.getsize(db)}

    def scan(narrow):
        t0 = time.perf_counter()
        con = connect(True)
        t1 = time.perf_counter()
        row = con.execute(NARROW if narrow else FULL).fetchone()
        t2 = time.perf_counter()
        con.close()
        if narrow:
            result = {"rows": row[0], "sum_amount": row[1], "count_country": row[2]}
        else:
            result = {"rows": row[0], "sum_id": int(row[1]), "sum_user": int(row[2]),
                      "sum_amount": row[3], "count_country": row[4],
                      "max_ts_ms": int(row[5]), "device_bytes": int(row[6])}
        return {"seconds": t2 - t0, "query_seconds": t2 - t1, "result": result}

    return line_peer.serve(start, {"import": load, "narrow": lambda _: scan(True),
                                   "full": lambda _: scan(False)})

if __name__ == "__main__":
    sys.exit(main())
