"""How long `bailong serve` keeps the next request waiting after a client drops a stream.

Starts `bailong serve MODEL` as a user would (a subprocess on 127.0.0.1), then with the official `openai` client, per
try: times a short request alone, opens a long streamed story, reads a few chunks, closes it, and times the same short
request again. A server that stops the abandoned generation answers the second about as fast as the first.

    python scripts/bench_serve_dropped_stream.py                          # embedded SmolLM2, 400-token story, 3 tries
    python scripts/bench_serve_dropped_stream.py --tries 1 --max-tokens 200
    python scripts/bench_serve_dropped_stream.py --src ../main/src        # another checkout's code, e.g. before a fix
    python scripts/bench_serve_dropped_stream.py --src ../main/src --no-gc   # ... with its garbage collector off

`--no-gc` turns off the server's automatic garbage collection: a server that relies on the collector to close an
abandoned stream (a reference cycle keeps it alive) then finishes the whole abandoned story first, as a busy server
whose collector runs late does.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

STORY = [{"role": "user", "content": "Tell me a long story about a dragon who learns to bake bread."}]
HELLO = [{"role": "user", "content": "Say hello."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(client, proc: subprocess.Popen, timeout: float = 300) -> None:
    import openai

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bailong serve exited with {proc.returncode}")
        try:
            client.models.list()
            return
        except openai.APIConnectionError:
            time.sleep(0.5)
    raise SystemExit("bailong serve did not answer in time")


def timed_short(client, model: str, tokens: int) -> float:
    started = time.perf_counter()
    client.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=tokens)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="what `bailong serve` serves")
    parser.add_argument("--max-tokens", type=int, default=400, help="length of the story the client abandons")
    parser.add_argument("--chunks", type=int, default=4, help="chunks read before the client closes the stream")
    parser.add_argument("--short-tokens", type=int, default=5, help="length of the timed request")
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--src", help="run the server from this source folder (PYTHONPATH), e.g. an older checkout")
    parser.add_argument("--no-gc", action="store_true", help="turn off the server's automatic garbage collection")
    args = parser.parse_args()

    import openai

    from bailong.console import format_table

    port, env = free_port(), dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src)
    launcher = ["-m", "bailong"]
    if args.no_gc:
        launcher = ["-c", "import gc; gc.disable(); from bailong.__main__ import main; main()"]
    command = [sys.executable, *launcher, "serve", args.model, "--port", str(port), "--name", "served"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=600)
    rows = []
    try:
        wait_until_serving(client, proc)
        timed_short(client, "served", args.short_tokens)  # warm-up
        for attempt in range(1, args.tries + 1):
            alone = timed_short(client, "served", args.short_tokens)
            stream = client.chat.completions.create(
                model="served", messages=STORY, temperature=0, max_tokens=args.max_tokens, stream=True
            )
            for _, _chunk in zip(range(args.chunks), stream):
                pass
            stream.close()
            after = timed_short(client, "served", args.short_tokens)
            rows.append([attempt, round(alone, 2), round(after, 2)])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(
        f"{args.model}: a {args.short_tokens}-token request, alone and right after a client closed a "
        f"{args.max_tokens}-token stream after {args.chunks} chunks (server code: {args.src or 'this checkout'}"
        f"{', garbage collector off' if args.no_gc else ''})"
    )
    print(format_table(["try", "alone (s)", "after a dropped stream (s)"], rows))


if __name__ == "__main__":
    main()
