#!/usr/bin/env python3
"""`ember run enrich` beside the same pipeline in DuckDB, on the same input, end to end.

1. ember generates the input once as datasets (events, events-items) under WORK/store
   (`ember run enrich --input-dataset`), then exports both as CSV; DuckDB loads the CSV files
   into its own database file WORK/duck.db (not timed: each side starts from its own format).
2. Rounds alternate ember, DuckDB, ember, DuckDB, ... after one warm-up of each. One round:
   ember:  `ember run enrich --input-dataset STORE/events --write-dataset STORE/enriched`
           (embedded cluster, 2 CPU workers of 1 thread): read events, broadcast-join items,
           computed columns, write the enriched dataset (committed, fsynced), then the daily
           revenue summary read back from it. Timed: the process's wall time.
   DuckDB: open duck.db, SET threads = 2, CREATE OR REPLACE TABLE enriched AS (the same join and
           columns), CHECKPOINT (so the table is on disk like ember's), the same summary from
           enriched, close. Timed: all of it, in this process.
3. The summaries (category, day, orders, revenue) must agree: orders exactly, revenue within
   1e-9 relative; the row counts of both enriched tables too. Then the medians, min and max and
   the ratio of medians (ember / DuckDB: below 1 means ember is faster) are printed and, with
   --json, written.

With --peer it is instead the line-protocol peer of `ember bench enrich --compare duckdb`: it loads
--events-csv (a file or a glob) and --items-csv into a fresh database file --db (not timed), prints
one JSON line {"ready": true, ...}, then answers one JSON line per command on stdin:
  run   the DuckDB round above (open, SET threads, CREATE OR REPLACE TABLE enriched AS, CHECKPOINT,
        the summary, close), timed in this process; returns seconds, the summary rows
        [category, "YYYY-MM-DD", orders, revenue], the enriched rows and the file's bytes.
  quit  ends.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import line_peer


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def ember_round(args, store, summary_csv):
    if os.path.exists(os.path.join(store, "enriched")):
        run([args.ember, "data", "rm", "enriched", "--root", store])
    cmd = [args.ember, "run", "enrich", "--workers", "2", "--backend", "cpu", "--quiet",
           "--input-dataset", os.path.join(store, "events"),
           "--write-dataset", os.path.join(store, "enriched"), "--output", summary_csv]
    started = time.perf_counter()
    out = run(cmd).stdout
    seconds = time.perf_counter() - started
    return seconds, out


ENRICH_SQL = """
CREATE OR REPLACE TABLE enriched AS
SELECT e.user_id, e.item_id, e.ts, e.amount, e.country, e.device,
       i.category, i.brand, i.price,
       e.amount * i.price AS revenue,
       date_trunc('day', e.ts) AS day,
       CAST(hash(e.user_id) % 64 AS INTEGER) AS bucket,
       e.device = 'mobile' AS is_mobile,
       e.amount > 100.0 AS is_big_order
FROM events e JOIN items i ON e.item_id = i.item_id
"""
SUMMARY_SQL = """
SELECT category, day, count(*) AS orders, sum(revenue) AS revenue
FROM enriched GROUP BY category, day ORDER BY category, day
"""


def duckdb_round(duckdb, db, threads):
    started = time.perf_counter()
    con = duckdb.connect(db)
    con.execute(f"SET threads = {threads}")
    con.execute(ENRICH_SQL)
    con.execute("CHECKPOINT")
    summary = con.execute(SUMMARY_SQL).fetchall()
    rows = con.execute("SELECT count(*) FROM enriched").fetchone()[0]
    con.close()
    return time.perf_counter() - started, summary, rows


def load(duckdb, db, events_csv, items_csv, threads):
    """The input, from CSV into DuckDB's own file (what each side starts from)."""
    con = duckdb.connect(db)
    con.execute(f"SET threads = {threads}")
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_csv(?, header = true, columns = "
        "{'user_id': 'BIGINT', 'item_id': 'BIGINT', 'ts': 'TIMESTAMP', 'amount': 'DOUBLE', "
        "'country': 'VARCHAR', 'device': 'VARCHAR'})", [events_csv])
    con.execute(
        "CREATE TABLE items AS SELECT * FROM read_csv(?, header = true, columns = "
        "{'item_id': 'BIGINT', 'category': 'VARCHAR', 'brand': 'VARCHAR', 'price': 'DOUBLE'})",
        [items_csv])
    con.execute("CHECKPOINT")
    con.close()


def peer(args):
    """`ember bench enrich --compare duckdb`'s peer: commands on stdin, JSON lines out."""
    state = {}

    def start():
        import duckdb
        for path in (args.db, args.db + ".wal"):
            if os.path.exists(path):
                os.remove(path)
        t = time.perf_counter()
        load(duckdb, args.db, args.events_csv, args.items_csv, args.threads)
        state["duckdb"] = duckdb
        return {"peer": "duckdb", "version": duckdb.__version__, "threads": args.threads,
                "load_seconds": time.perf_counter() - t, "database": args.db}

    def run(_):
        seconds, summary, rows = duckdb_round(state["duckdb"], args.db, args.threads)
        return {"seconds": seconds, "enriched_rows": rows,
                "summary": [[c, d.strftime("%Y-%m-%d"), n, r] for c, d, n, r in summary],
                "file_bytes": os.path.getsize(args.db)}

    return line_peer.serve(start, {"run": run})


def ember_summary(path):
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            day = datetime.datetime.strptime(r["day"][:10], "%Y-%m-%d")
            out.append((r["category"], day, int(r["orders"]), float(r["revenue"])))
    return out


def compare(ember_rows, duck_rows):
    if len(ember_rows) != len(duck_rows):
        return f"{len(ember_rows)} summary rows from ember, {len(duck_rows)} from DuckDB"
    for a, b in zip(ember_rows, duck_rows):
        day_b = datetime.datetime(b[1].year, b[1].month, b[1].day)
        if a[0] != b[0] or a[1] != day_b or a[2] != b[2]:
            return f"ember has {a[:3]}, DuckDB {(b[0], day_b, b[2])}"
        if abs(a[3] - b[3]) > 1e-9 * max(1.0, abs(b[3])):
            return f"revenue of {a[:2]}: ember {a[3]!r}, DuckDB {b[3]!r}"
    return None


def parse_report(out):
    """Input rows and bytes, and the enriched table's, from `ember run enrich`'s report."""
    info = {}
    for line in out.splitlines():
        if line.startswith("ember run enrich"):
            info["input_rows"] = int(line.split(": ")[1].split()[0])
            info["ember_reported_seconds"] = float(line.rsplit(" in ", 1)[1].split()[0])
        if line.startswith("dataset enriched version"):
            info["enriched_rows"] = int(line.split(": ")[1].split()[0])
            info["enriched_file_bytes"] = line.split("(")[1].rstrip(")")
        if "enrich: enriched table" in line:
            info["enriched_stage_line"] = " ".join(line.split())
    return info


def describe(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ember", help="the ember executable (driver mode)")
    ap.add_argument("--work", help="a folder for the input and outputs (replaced; driver mode)")
    ap.add_argument("--peer", action="store_true", help="be `ember bench enrich`'s peer")
    ap.add_argument("--events-csv", help="--peer: the events as CSV (a file or a glob)")
    ap.add_argument("--items-csv", help="--peer: the items as CSV")
    ap.add_argument("--db", help="--peer: DuckDB's database file (replaced)")
    ap.add_argument("--scale", default="200MB", help="input bytes, as `ember run --scale`")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--keep", action="store_true", help="reuse WORK's input when it is there")
    args = ap.parse_args()
    if args.peer:
        if not (args.events_csv and args.items_csv and args.db):
            ap.error("--peer needs --events-csv, --items-csv and --db")
        sys.exit(peer(args))
    if not (args.ember and args.work):
        ap.error("--ember and --work are required (or --peer)")
    import duckdb

    store = os.path.join(args.work, "store")
    db = os.path.join(args.work, "duck.db")
    ember_csv = os.path.join(args.work, "ember-summary.csv")
    if not (args.keep and os.path.exists(db)):
        shutil.rmtree(args.work, ignore_errors=True)
        os.makedirs(args.work)
        t = time.perf_counter()
        # Generates and commits events and events-items, then runs enrich once (ember's warm-up).
        out = run([args.ember, "run", "enrich", "--scale", args.scale, "--workers", "2",
                   "--backend", "cpu", "--quiet", "--input-dataset", os.path.join(store, "events"),
                   "--write-dataset", os.path.join(store, "enriched")]).stdout
        print(f"# input generated as datasets in {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        for name in ["events", "events-items"]:
            run([args.ember, "data", "export", name, "--root", store, "--output",
                 os.path.join(args.work, name + ".csv")])
        print(f"# exported as CSV in {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        load(duckdb, db, os.path.join(args.work, "events.csv"),
             os.path.join(args.work, "events-items.csv"), args.threads)
        for name in ["events", "events-items"]:
            os.remove(os.path.join(args.work, name + ".csv"))
        print(f"# loaded into DuckDB in {time.perf_counter() - t:.1f} s", flush=True)

    # Warm-up of each, then alternating rounds.
    ember_round(args, store, ember_csv)
    duckdb_round(duckdb, db, args.threads)
    ember_s, duck_s = [], []
    last_ember, duck_summary, duck_rows = None, None, None
    for r in range(args.rounds):
        s, last_ember = ember_round(args, store, ember_csv)
        ember_s.append(s)
        s, duck_summary, duck_rows = duckdb_round(duckdb, db, args.threads)
        duck_s.append(s)
        print(f"# round {r + 1}: ember {ember_s[-1]:.3f} s, DuckDB {duck_s[-1]:.3f} s", flush=True)

    info = parse_report(last_ember)
    problem = compare(ember_summary(ember_csv), duck_summary)
    if problem is None and info.get("enriched_rows") != duck_rows:
        problem = f"enriched rows: ember {info.get('enriched_rows')}, DuckDB {duck_rows}"
    if problem:
        print("the answers differ: " + problem, file=sys.stderr)
        sys.exit(1)

    rows = info["input_rows"]
    e, d = describe(ember_s), describe(duck_s)
    git = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse",
                          "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(": ", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    report = {
        "workload": "enrich end to end (read input, join, computed columns, write, summary)",
        "scale": args.scale, "input_rows": rows, "threads": args.threads,
        "rounds": args.rounds, "ember_seconds": e, "duckdb_seconds": d,
        "ember_rows_per_s": rows / e["median"], "duckdb_rows_per_s": rows / d["median"],
        "ratio_ember_over_duckdb": e["median"] / d["median"],
        "summary_rows": len(duck_summary), "enriched_rows": duck_rows,
        "duckdb_file_bytes": os.path.getsize(db),
        "ember_report": info, "duckdb_version": duckdb.__version__, "git": git, "cpu": cpu,
        "cpus": os.cpu_count(),
    }
    print(f"enrich at {args.scale} ({rows} input rows, {duck_rows} enriched rows), "
          f"{args.threads} threads, median of {args.rounds} (min-max):")
    print(f"  ember   {e['median']:.3f} s ({e['min']:.3f}-{e['max']:.3f})  "
          f"{rows / e['median'] / 1e6:.2f} M rows/s")
    print(f"  DuckDB  {d['median']:.3f} s ({d['min']:.3f}-{d['max']:.3f})  "
          f"{rows / d['median'] / 1e6:.2f} M rows/s  (duckdb {duckdb.__version__})")
    print(f"  DuckDB's database file (input and enriched): {os.path.getsize(db) / 1e9:.2f} GB")
    print(f"  ember / DuckDB = {report['ratio_ember_over_duckdb']:.2f}; summaries agree "
          f"({len(duck_summary)} rows)")
    print(f"  ember's own report: {info}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)


if __name__ == "__main__":
    main()
