"""The line protocol every benchmark peer speaks with `ember bench` (cli/src/peer_process.hpp).

Once started, a peer prints one JSON line: {"ready": true, ...what it is} or {"error": ...}.
Then each command line on stdin ("NAME ARG...") is answered with one JSON line; "quit", an empty
line or the end of input ends it. Any exception becomes {"error": repr(e)}: the caller reports
it and is never left waiting.
"""
import json
import sys


def say(obj):
    print(json.dumps(obj), flush=True)


def serve(start, commands):
    """Runs start() (returns what the ready line says, beside "ready": true), then answers each
    command with commands[NAME](ARGS) (returns the answer's dict). Returns the exit status."""
    try:
        info = start()
    except Exception as e:  # the caller reports it; never hang it
        say({"error": repr(e)})
        return 1
    say({"ready": True, **info})
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        try:
            handler = commands.get(cmd[0])
            say(handler(cmd[1:]) if handler else {"error": f"unknown command {cmd[0]!r}"})
        except Exception as e:
            say({"error": repr(e)})
    return 0
