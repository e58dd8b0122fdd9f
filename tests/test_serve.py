"""`bailong serve`: the OpenAI-compatible API over real HTTP on 127.0.0.1 with a tiny random Llama (no mocks),
talked to with urllib and with the official `openai` client."""

import gc
import inspect
import json
import os
import time
import urllib.error
import urllib.request

import openai
import pytest

from bailong.inference import ChatModel
from bailong.inference.openai_api import create_app, served_name, start_in_thread, stop
from bailong.stages.serve import run as serve
from helpers import MISTRAL_V1, tiny_llama

pytestmark = pytest.mark.slow  # HTTP servers on loopback

NAME = "tiny-served"
HELLO = [{"role": "system", "content": "你是助理。"}, {"role": "user", "content": "你好，請介紹台北。"}]


class RecordingChatModel(ChatModel):
    """The real model, noting how many tokens each generation made (to tell that a generation was stopped)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generated: list[int] = []

    def generate(self, ids, settings, streamer=None, stopping_criteria=None):
        new = super().generate(ids, settings, streamer=streamer, stopping_criteria=stopping_criteria)
        self.generated.append(len(new))
        return new


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    path = tiny_llama(tmp_path_factory.mktemp("serve") / "m", str(MISTRAL_V1))
    bot = RecordingChatModel(str(path), device="cpu")
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
            "model": NAME,
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
    "body, param, code",
    [
        ({"model": NAME, "messages": []}, "messages", "empty_array"),
        ({"model": NAME, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "invalid_value"),
        ({"model": NAME, "messages": [{"role": "user", "content": 3}]}, "messages[0].content", "invalid_type"),
        (
            {"model": NAME, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
            "invalid_type",
        ),
        ({"model": NAME}, "messages", "missing_required_parameter"),
        ({"model": NAME, "messages": HELLO, "temperature": 5}, "temperature", "decimal_above_max_value"),
        ({"model": NAME, "messages": HELLO, "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({"model": NAME, "messages": HELLO, "n": 2}, "n", "integer_above_max_value"),
        ({"model": NAME, "messages": HELLO, "stop": 7}, "stop", "invalid_type"),
        ({"model": NAME, "messages": HELLO, "max_tokens": "many"}, "max_tokens", "invalid_type"),
    ],
)
def test_bad_requests_get_openai_errors(api, body, param, code):
    bot, base = api
    before = len(bot.generated)
    status, data, _ = call(base, "/chat/completions", body)
    error = json.loads(data)["error"]
    assert status == 400 and error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code) and error["message"]
    assert len(bot.generated) == before  # refused before any generation


def test_broken_json_and_unknown_paths(api):
    _, base = api
    status, data, _ = call(base, "/chat/completions", raw=b"{not json")
    assert status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"
    status, data, _ = call(base, "/nothing")
    assert status == 404 and "message" in json.loads(data)["error"]


def client(base: str, api_key: str = "unused", **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key=api_key, max_retries=0, **options)


def test_the_openai_client_lists_retrieves_and_completes(api):
    _, base = api
    judge = client(base)
    assert [m.id for m in judge.models.list()] == [NAME]
    card = judge.models.retrieve(NAME)
    assert (card.id, card.object, card.owned_by) == (NAME, "model", "bailong")
    reply = judge.chat.completions.create(model=NAME, messages=HELLO, temperature=0, max_tokens=6)
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens <= 6 and reply.choices[0].finish_reason in ("stop", "length")
    chunks = list(judge.chat.completions.create(model=NAME, messages=HELLO, temperature=0, max_tokens=6, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    developer = [{**HELLO[0], "role": "developer"}, HELLO[1]]
    same = judge.chat.completions.create(model=NAME, messages=developer, temperature=0, max_tokens=6)
    assert same.choices[0].message.content == reply.choices[0].message.content  # developer is read as system


def test_a_hub_style_model_id_is_retrieved(api):
    bot, _ = api
    server, thread, base = start_in_thread(create_app(bot, "owner/tiny"))
    try:
        assert client(base).models.retrieve("owner/tiny").id == "owner/tiny"
    finally:
        stop(server, thread)


def test_an_unknown_model_is_not_found(api):
    bot, base = api
    before = len(bot.generated)
    judge = client(base)
    for ask in (
        lambda: judge.models.retrieve("gpt-4o"),
        lambda: judge.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=2),
        lambda: judge.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=2, stream=True),
    ):
        with pytest.raises(openai.NotFoundError) as err:
            ask()
        assert err.value.status_code == 404 and err.value.code == "model_not_found"
        assert err.value.body["type"] == "invalid_request_error" and "gpt-4o" in err.value.body["message"]
    assert len(bot.generated) == before


def test_a_prompt_beyond_the_context_is_refused_before_generating(api):
    bot, base = api
    judge, context = client(base), bot.context_length()
    assert context == 512  # tiny_llama's max_position_embeddings
    ten = len(bot.prompt_ids([{"role": "user", "content": "台北 " * 10}])[0])
    hundred = len(bot.prompt_ids([{"role": "user", "content": "台北 " * 100}])[0])
    per_word = (hundred - ten) / 90
    words = int(10 + (context - 20 - ten) / per_word)  # a prompt about 20 tokens short of the context
    near = [{"role": "user", "content": "台北 " * words}]
    prompt = len(bot.prompt_ids(near)[0])
    assert context - 40 < prompt < context
    before = len(bot.generated)
    too_long = [{"role": "user", "content": "台北 " * (words * 2)}]
    with pytest.raises(openai.BadRequestError) as err:
        judge.chat.completions.create(model=NAME, messages=too_long, max_tokens=1)
    assert (err.value.code, err.value.body["param"]) == ("context_length_exceeded", "messages")
    assert f"maximum context length is {context} tokens" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        judge.chat.completions.create(model=NAME, messages=near, max_tokens=100, stream=True)
    assert (err.value.code, err.value.body["param"]) == ("context_length_exceeded", "max_tokens")
    assert f"at most {context - prompt}" in err.value.body["message"]
    assert len(bot.generated) == before  # refused before any generation
    reply = judge.chat.completions.create(model=NAME, messages=near, temperature=0)  # no max_tokens: what fits
    assert reply.usage.completion_tokens <= context - prompt and reply.usage.total_tokens <= context


LONG = 200  # tokens of a generation the client abandons


def test_a_dropped_stream_stops_its_generation_and_frees_the_model(api):
    """A client that closes a stream after a few chunks: the generation stops there, and the next request is
    answered at once instead of after the abandoned one would have finished."""
    bot, base = api
    judge = client(base)
    story = {"model": NAME, "messages": HELLO, "temperature": 0, "max_tokens": LONG}
    started = time.perf_counter()
    whole = judge.chat.completions.create(**story)
    whole_s = time.perf_counter() - started
    assert whole.usage.completion_tokens == LONG  # without a client leaving, this prompt runs to the limit
    gc.disable()  # the stop must not wait for the garbage collector to close the abandoned generator
    try:
        stream = judge.chat.completions.create(**story, stream=True)
        for _, _chunk in zip(range(4), stream):
            pass
        stream.close()
        started = time.perf_counter()
        short = judge.chat.completions.create(model=NAME, messages=HELLO, temperature=0, max_tokens=5)
        next_s = time.perf_counter() - started
    finally:
        gc.enable()
    assert short.usage.completion_tokens <= 5
    dropped = bot.generated[-2]
    assert dropped < LONG / 2, f"the abandoned stream generated {dropped} of {LONG} tokens"
    assert next_s < whole_s / 2, f"next request took {next_s:.2f} s; the whole generation {whole_s:.2f} s"


def test_a_client_that_times_out_stops_its_generation(api):
    bot, base = api
    before = len(bot.generated)
    impatient = client(base, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model=NAME, messages=HELLO, temperature=0, max_tokens=LONG)
    short = client(base).chat.completions.create(model=NAME, messages=HELLO, temperature=0, max_tokens=5)
    assert short.usage.completion_tokens <= 5
    *abandoned, last = bot.generated[before:]  # none when the client left before its turn came
    assert last <= 5 and all(n < LONG for n in abandoned), f"generated {bot.generated[before:]} of {LONG} tokens"


def test_the_judge_client_grades_through_bailong_serve(api):
    """eval's judge (bailong's client over the openai one) against this server: the check passes, a prompt the
    served model cannot hold is a clear failure, an unknown judge model is stopped by the check."""
    from bailong.evaluation.judge_client import JudgeClient, JudgeError, JudgeSettings

    _, base = api
    settings = JudgeSettings(base_url=base, model=NAME, api_key_env=None, http_retries=0, timeout_s=60, max_tokens=4)
    judge = JudgeClient(settings)
    judge.check()
    assert isinstance(judge.complete(HELLO), str)
    with pytest.raises(JudgeError, match="HTTP 400: .*maximum context length is 512 tokens.*context_length_exceeded"):
        judge.complete([{"role": "user", "content": "台北 " * 2000}])
    with pytest.raises(JudgeError, match="does not serve model 'gpt-4o'"):
        JudgeClient(JudgeSettings(**{**settings.__dict__, "model": "gpt-4o"})).check()


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
    command = [sys.executable, "-m", "bailong", "serve", str(model), "--port", str(port), "--api-key-env", "TEST_KEY"]
    command += ["--temperature", "0", "--max-new-tokens", "3"]  # defaults for what a request leaves out
    env = {**os.environ, "TEST_KEY": "s3cret"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
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
        assert status == 401  # no key
        error = json.loads(data)["error"]
        assert error["code"] == "invalid_api_key" and "Authorization: Bearer" in error["message"]
        with pytest.raises(openai.AuthenticationError):
            client(base, api_key="wrong").models.list()
        keyed = client(base, api_key="s3cret")
        assert [m.id for m in keyed.models.list()] == ["m"]
        first = keyed.chat.completions.create(model="m", messages=HELLO)
        again = keyed.chat.completions.create(model="m", messages=HELLO)
        assert (
            first.usage.completion_tokens <= 3 and first.choices[0].message.content == again.choices[0].message.content
        )
        assert call(base.removesuffix("/v1"), "/health")[0] == 200  # the health check needs no key
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"serving m on http://127.0.0.1:{port}/v1 (key required)" in out
