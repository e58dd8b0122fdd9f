"""`bailong serve`: the OpenAI-compatible API over real HTTP on 127.0.0.1 with a tiny random Llama (no mocks)."""

import inspect
import json
import urllib.error
import urllib.request

import pytest

from bailong.inference import ChatModel
from bailong.inference.openai_api import create_app, served_name, start_in_thread, stop
from bailong.stages.serve import run as serve
from helpers import MISTRAL_V1, tiny_llama

pytestmark = pytest.mark.slow  # HTTP servers on loopback

NAME = "tiny-served"
HELLO = [{"role": "system", "content": "你是助理。"}, {"role": "user", "content": "你好，請介紹台北。"}]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    path = tiny_llama(tmp_path_factory.mktemp("serve") / "m", str(MISTRAL_V1))
    bot = ChatModel(str(path), device="cpu")
    server, thread, base = start_in_thread(create_app(bot, NAME))
    yield bot, base
    stop(server, thread)
    assert not thread.is_alive()


def call(base: str, path: str, body: dict | None = None, raw: bytes | None = None) -> tuple[int, bytes, str]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def complete(base: str, **body) -> dict:
    status, data, _ = call(base, "/chat/completions", {"model": NAME, "messages": HELLO, **body})
    assert status == 200, data
    return json.loads(data)


def test_health_and_models(api):
    _, base = api
    assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
    status, data, _ = call(base.removesuffix("/v1"), "/health")
    assert (status, json.loads(data)) == (200, {"status": "ok"})
    status, data, _ = call(base, "/models")
    listing = json.loads(data)
    assert status == 200 and listing["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in listing["data"]] == [(NAME, "model", "bailong")]
    assert isinstance(listing["data"][0]["created"], int)


def test_completion_shape_and_usage(api):
    bot, base = api
    reply = complete(base, temperature=0, max_tokens=8, seed=1)
    assert reply["id"].startswith("chatcmpl-") and reply["object"] == "chat.completion"
    assert reply["model"] == NAME and isinstance(reply["created"], int)
    (choice,) = reply["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["finish_reason"] in ("stop", "length")
    usage = reply["usage"]
    assert usage["prompt_tokens"] == bot.prompt_ids(HELLO).shape[1]
    assert 1 <= usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_greedy_is_deterministic_and_max_tokens_gives_length(api):
    _, base = api
    first, second = (complete(base, temperature=0, max_tokens=6) for _ in range(2))
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    short = complete(base, temperature=0, max_tokens=3)
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] <= 3
    parts = complete(
        base,
        temperature=0,
        max_tokens=3,
        messages=[
            {"role": "system", "content": "你是助理。"},
            {"role": "user", "content": [{"type": "text", "text": "你好，"}, {"type": "text", "text": "請介紹台北。"}]},
        ],
    )
    assert parts["choices"][0]["message"] == short["choices"][0]["message"]  # text parts are joined


def test_concurrent_requests_are_served_one_at_a_time(api):
    from concurrent.futures import ThreadPoolExecutor

    _, base = api
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: complete(base, temperature=0, max_tokens=5), range(3)))
    assert len({r["choices"][0]["message"]["content"] for r in replies}) == 1
    nulls = complete(base, temperature=None, top_p=None, max_tokens=2, n=None, stop=None, seed=None, user="x")
    assert nulls["usage"]["completion_tokens"] <= 2  # null means the default; unknown fields are ignored


def test_stop_string_cuts_the_reply(api):
    _, base = api
    text = complete(base, temperature=0, max_tokens=12)["choices"][0]["message"]["content"]
    if len(text) < 4:
        pytest.skip("the random model's reply is too short to cut")
    cut = complete(base, temperature=0, max_tokens=12, stop=[text[2:4]])
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["choices"][0]["message"]["content"] == text[: text.find(text[2:4])].strip()


def test_stream_matches_non_streaming(api):
    _, base = api
    want = complete(base, temperature=0, max_tokens=10)
    status, data, kind = call(
        base,
        "/chat/completions",
        {
            "model": "any",
            "messages": HELLO,
            "temperature": 0,
            "max_tokens": 10,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200 and kind.startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in data.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == NAME for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == want["choices"][0]["message"]["content"]
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finals == [want["choices"][0]["finish_reason"]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == want["usage"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": NAME, "messages": []}, "messages"),
        ({"model": NAME, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": NAME, "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"model": NAME, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
        ({"model": NAME}, "messages"),
        ({"model": NAME, "messages": HELLO, "temperature": 5}, "temperature"),
        ({"model": NAME, "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": NAME, "messages": HELLO, "stop": 7}, "stop"),
    ],
)
def test_bad_requests_get_openai_errors(api, body, param):
    _, base = api
    status, data, _ = call(base, "/chat/completions", body)
    error = json.loads(data)["error"]
    assert status == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] is None and error["message"]


def test_broken_json_and_unknown_paths(api):
    _, base = api
    status, data, _ = call(base, "/chat/completions", raw=b"{not json")
    assert status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"
    status, data, _ = call(base, "/nothing")
    assert status == 404 and "message" in json.loads(data)["error"]


def test_serve_defaults_to_localhost_and_names_the_folder(tmp_path):
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert served_name(str(tmp_path)) == tmp_path.name
    assert served_name("owner/model") == "owner/model"


def test_cli_serves_a_run_folder_on_loopback(api, tmp_path):
    """`bailong serve MODEL --port P` as a user runs it: a subprocess answering on 127.0.0.1 until stopped."""
    import socket
    import subprocess
    import sys
    import time

    bot, _ = api
    model = tiny_llama(tmp_path / "m", str(MISTRAL_V1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bailong", "serve", str(model), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                status, data, _ = call(base, "/models")
                break
            except urllib.error.URLError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()
        assert status == 200 and json.loads(data)["data"][0]["id"] == "m"
        reply = complete(base, temperature=0, max_tokens=4)
        assert reply["choices"][0]["message"]["role"] == "assistant"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"serving m on http://127.0.0.1:{port}/v1" in out
