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
import json
import sys
import time

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
    try:
        import duckdb
        con = duckdb.connect()
        con.execute(f"SET threads = {args.threads}")
        print(json.dumps({"ready": True, "peer": "duckdb", "version": duckdb.__version__,
                          "threads": args.threads}), flush=True)
    except Exception as e:  # the caller reports it; never hang it
        print(json.dumps({"error": repr(e)}), flush=True)
        return 1

    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        try:
            if cmd[0] == "run":
                t0 = time.perf_counter()
                con.execute(QUERY, [args.files])
                seconds = time.perf_counter() - t0
                distinct, total = con.execute("SELECT count(*), sum(count) FROM counts").fetchone()
                top = con.execute(
                    "SELECT word, count FROM counts ORDER BY count DESC, word LIMIT 20").fetchall()
                print(json.dumps({"seconds": seconds, "distinct": distinct, "total": int(total),
                                  "top": [[w, n] for w, n in top]}), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {cmd[0]!r}"}), flush=True)
        except Exception as e:
            print(json.dumps({"error": repr(e)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
