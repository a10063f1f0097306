#!/usr/bin/env python3
"""DuckDB peer for `ember bench wordcount --compare duckdb`.

Counts the words of the text files ember generated, one command per line on stdin, each answered
with one JSON line:

  run   CREATE OR REPLACE TEMP TABLE counts AS SELECT word, count(*) FROM the lines of every file
        (read_csv, one VARCHAR column, no quoting), string_split(line, ' ') + unnest, GROUP BY
        word, ORDER BY count DESC, word; timed around that statement alone (ember's run is timed
        from submitting its plan to the sorted table in its client). Then, not timed: the distinct
        and total words and the first 20 (word, count) for the caller to check.
  quit  ends.

One in-memory connection with SET threads = --threads for the whole run.
"""
import argparse
import sys
import time

import line_peer

QUERY = """
CREATE OR REPLACE TEMP TABLE counts AS
SELECT word, count(*) AS count
FROM (SELECT unnest(string_split(line, ' ')) AS word
      FROM read_csv(?, header = false, columns = {'line': 'VARCHAR'}, delim = '\t',
                    quote = '', escape = '', auto_detect = false))
GROUP BY word
ORDER BY count DESC, word
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    state = {}

    def start():
        import duckdb
        state["con"] = duckdb.connect()
        state["con"].execute(f"SET threads = {args.threads}")
        return {"peer": "duckdb", "version": duckdb.__version__, "threads": args.threads}

    def run(_):
        con = state["con"]
        t0 = time.perf_counter()
        con.execute(QUERY, [args.files])
        seconds = time.perf_counter() - t0
        distinct, total = con.execute("SELECT count(*), sum(count) FROM counts").fetchone()
        top = con.execute(
            "SELECT word, count FROM counts ORDER BY count DESC, word LIMIT 20").fetchall()
        return {"seconds": seconds, "distinct": distinct, "total": int(total),
                "top": [[w, n] for w, n in top]}

    return line_peer.serve(start, {"run": run})

if __name__ == "__main__":
    sys.exit(main())
