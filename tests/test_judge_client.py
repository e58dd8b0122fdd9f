"""The judge client against a real OpenAI-style HTTP server on 127.0.0.1, the resumable loop and the prompts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bailong.evaluation.judge_client import (
    JudgeClient,
    JudgeError,
    JudgeSettings,
    judge_all,
    parse_rating,
    read_judgments,
)
from bailong.evaluation.judge_prompts import DEFAULT_TEMPLATES, FIELDS, load_templates, render_messages

pytestmark = pytest.mark.slow  # HTTP servers on loopback

Respond = Callable[[int, str], tuple]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        server: JudgeServer = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with server.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            server.requests.append({"path": self.path, "body": body, "headers": headers})
            number = len(server.requests)
        status, text, *extra = server.respond(number, body["messages"][-1]["content"])
        if isinstance(text, bytes):  # a raw body, e.g. not JSON
            data = text
        else:
            payload = {"choices": [{"message": {"role": "assistant", "content": text}}]} if status == 200 else text
            data = (json.dumps(payload) if status == 200 else str(payload)).encode("utf-8")
        self._send(status, data, extra[0] if extra else {})

    def do_GET(self):  # noqa: N802
        server: JudgeServer = self.server  # type: ignore[assignment]
        if self.path != "/v1/models" or server.models is None:
            self._send(404, b"not found", {})
        else:
            self._send(200, json.dumps({"data": [{"id": m} for m in server.models]}).encode(), {})

    def _send(self, status: int, data: bytes, headers: dict) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class JudgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Respond):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond, self.requests, self.lock, self.models = respond, [], threading.Lock(), None
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"

    def contents(self) -> list[str]:
        return [r["body"]["messages"][-1]["content"] for r in self.requests]


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    servers: list[JudgeServer] = []

    def start(respond: Respond) -> JudgeServer:
        server = JudgeServer(respond)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def settings(url: str, **kwargs) -> JudgeSettings:
    values = {"api_key_env": None, "timeout_s": 5.0, "max_retries": 2, "http_retries": 3}
    return JudgeSettings(base_url=url, model="judge-model", **{**values, **kwargs})


def render(job: dict) -> list[dict]:
    return [{"role": "system", "content": "Rate it."}, {"role": "user", "content": f"job:{job['key']}"}]


def jobs(n: int) -> list[dict]:
    return [
        {"key": f"q{i:02d}", "question": f"Question {i}?", "answer": f"Answer {i}.", "_big": "x" * 100}
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "reply, rating",
    [
        ("Good answer.\nRating: [[8]]", 8.0),
        ("[[8.5]]", 8.5),
        ("Rating: 8", 8.0),
        ("rating: 8/10", 8.0),
        ("評分：8", 8.0),
        ("**Rating:** [[7]]", 7.0),
        ("The format is `Rating: [[N]]` ... Rating: [[3]]\nFinal: [[9]]", 9.0),
        ("Score = 6 out of 10", 6.0),
        ("Rating: [[10]]", 10.0),
        ("Rating: [[11]]", None),
        ("Rating: [[0]]", None),
        ("Rating: [[N]]", None),
        ("I liked it a lot.", None),
        ("", None),
    ],
)
def test_parse_rating(reply, rating):
    assert parse_rating(reply) == rating


def test_ratings_from_various_reply_forms(serve, tmp_path):
    replies = {"q00": "ok\nRating: [[8]]", "q01": "**Rating:** [[7.5]]", "q02": "評分：6", "q03": "rating: 9/10"}
    server = serve(lambda n, content: (200, replies[content.removeprefix("job:")]))
    seen: list[dict] = []
    summary = judge_all(JudgeClient(settings(server.url)), jobs(4), tmp_path / "j.jsonl", render, on_result=seen.append)
    assert summary == {"done": 4, "skipped": 0, "failed": 0}
    records = read_judgments(tmp_path / "j.jsonl")
    assert {k: r["rating"] for k, r in records.items()} == {"q00": 8.0, "q01": 7.5, "q02": 6.0, "q03": 9.0}
    assert all(r["status"] == "ok" and r["question"] and "_big" not in r for r in records.values())
    assert len(seen) == 4 and server.requests[0]["path"] == "/v1/chat/completions"
    body = server.requests[0]["body"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("judge-model", 0.0, 1024)
    assert "authorization" not in server.requests[0]["headers"]


def test_server_errors_are_retried(serve, tmp_path):
    server = serve(lambda n, content: (500, "overloaded") if n <= 2 else (200, "Rating: [[6]]"))
    assert JudgeClient(settings(server.url)).complete(render({"key": "a"})) == "Rating: [[6]]"
    assert len(server.requests) == 3
    limited = serve(lambda n, content: (429, "slow down", {"Retry-After": "0"}) if n == 1 else (200, "[[4]]"))
    summary = judge_all(JudgeClient(settings(limited.url)), jobs(1), tmp_path / "j.jsonl", render)
    assert summary["failed"] == 0 and read_judgments(tmp_path / "j.jsonl")["q00"]["rating"] == 4.0


def test_client_errors_fail_at_once_and_outages_are_recorded(serve, tmp_path):
    bad = serve(lambda n, content: (400, "model not found"))
    with pytest.raises(JudgeError, match=r"HTTP 400.*model not found") as err:
        JudgeClient(settings(bad.url)).complete(render({"key": "a"}))
    assert bad.url + "/chat/completions" in str(err.value) and len(bad.requests) == 1
    down = serve(lambda n, content: (503, "unavailable"))
    summary = judge_all(JudgeClient(settings(down.url, http_retries=2)), jobs(2), tmp_path / "j.jsonl", render)
    assert summary == {"done": 2, "skipped": 0, "failed": 2} and len(down.requests) == 2 * 3
    assert all("HTTP 503" in r["reason"] for r in read_judgments(tmp_path / "j.jsonl").values())
    up = serve(lambda n, content: (200, "Rating: [[5]]"))
    summary = judge_all(JudgeClient(settings(up.url)), jobs(2), tmp_path / "j.jsonl", render)
    assert summary == {"done": 2, "skipped": 0, "failed": 0}  # a rerun asks again what the outage failed
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with pytest.raises(JudgeError, match="failed after 3 attempts"):
        JudgeClient(settings(closed, http_retries=2)).complete(render({"key": "a"}))


def test_requests_go_through_the_openai_client_with_its_timeout_and_retries(serve):
    slow = serve(lambda n, content: (time.sleep(1.5), (200, "Rating: [[6]]"))[1])
    with pytest.raises(JudgeError, match=r"failed after 2 attempts: no answer within judge.timeout_s \(0.3 s\)"):
        JudgeClient(settings(slow.url, timeout_s=0.3, http_retries=1)).complete(render({"key": "a"}))
    assert len(slow.requests) == 2
    headers = [r["headers"] for r in slow.requests]
    assert all(h["user-agent"].startswith("OpenAI/Python") for h in headers)
    assert [h["x-stainless-retry-count"] for h in headers] == ["0", "1"]
    once = serve(lambda n, content: (503, "busy"))
    with pytest.raises(JudgeError, match="failed after 1 attempt: HTTP 503: busy"):
        JudgeClient(settings(once.url, http_retries=0)).complete(render({"key": "a"}))
    assert len(once.requests) == 1
    limited = serve(lambda n, content: (429, "rate limit reached"))
    with pytest.raises(JudgeError, match="HTTP 429: rate limit reached; lower judge.concurrency"):
        JudgeClient(settings(limited.url, http_retries=0)).complete(render({"key": "a"}))
    missing = serve(lambda n, content: (404, "The model `judge-model` does not exist"))
    with pytest.raises(JudgeError, match="failed with HTTP 404: .* does not exist; check judge.base_url and .*model"):
        JudgeClient(settings(missing.url)).complete(render({"key": "a"}))
    assert len(missing.requests) == 1  # not retried


def test_unparseable_replies_are_recorded_as_failed(serve, tmp_path):
    server = serve(lambda n, content: (200, "I would rather not give a number."))
    client = JudgeClient(settings(server.url, max_retries=2))
    summary = judge_all(client, jobs(2), tmp_path / "j.jsonl", render)
    assert summary == {"done": 2, "skipped": 0, "failed": 2}
    records = read_judgments(tmp_path / "j.jsonl")
    assert all(r["status"] == "failed" and r["rating"] is None and r["attempts"] == 3 for r in records.values())
    assert "no rating" in records["q00"]["reason"] and records["q00"]["judge_reply"].startswith("I would")
    assert sorted(server.contents()) == ["job:q00"] * 3 + ["job:q01"] * 3
    assert judge_all(client, jobs(2), tmp_path / "j.jsonl", render)["skipped"] == 2  # failed records are kept
    assert judge_all(client, jobs(2), tmp_path / "j.jsonl", render, retry_failed=True)["done"] == 2


def test_api_key_is_sent_but_never_saved_or_shown(serve, tmp_path, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("BAILONG_TEST_JUDGE_KEY", secret)
    ok = serve(lambda n, content: (200, "Rating: [[5]]"))
    client = JudgeClient(settings(ok.url, api_key_env="BAILONG_TEST_JUDGE_KEY"))
    judge_all(client, jobs(2), tmp_path / "j.jsonl", render)
    assert {r["headers"].get("authorization") for r in ok.requests} == {f"Bearer {secret}"}
    assert secret not in (tmp_path / "j.jsonl").read_text(encoding="utf-8")
    echo = serve(lambda n, content: (401, f"Incorrect API key provided: {secret}"))
    with pytest.raises(JudgeError, match="HTTP 401") as err:
        JudgeClient(settings(echo.url, api_key_env="BAILONG_TEST_JUDGE_KEY")).complete(render({"key": "a"}))
    assert secret not in str(err.value) and "***" in str(err.value)
    judge_all(
        JudgeClient(settings(echo.url, api_key_env="BAILONG_TEST_JUDGE_KEY")), jobs(1), tmp_path / "k.jsonl", render
    )
    assert secret not in (tmp_path / "k.jsonl").read_text(encoding="utf-8")
    monkeypatch.setenv("BAILONG_TEST_JUDGE_KEY", "")
    JudgeClient(settings(ok.url, api_key_env="BAILONG_TEST_JUDGE_KEY")).complete(render({"key": "a"}))
    assert "authorization" not in ok.requests[-1]["headers"]


def test_interrupted_run_resumes_without_repeating(serve, tmp_path):
    server = serve(lambda n, content: (200, f"Fine.\nRating: [[{1 + n % 10}]]"))
    client = JudgeClient(settings(server.url))
    path = tmp_path / "judgments.jsonl"
    assert judge_all(client, jobs(12)[:5], path, render)["done"] == 5
    partial = json.dumps({"key": "q05", "rating": 7.0, "status": "ok", "judge_reply": "Rating: [[7]]"})
    with path.open("a", encoding="utf-8") as f:
        f.write(partial[: len(partial) // 2])  # a write cut short by a kill: no newline
    assert "q05" not in read_judgments(path)
    first = list(server.contents())
    summary = judge_all(client, jobs(12), path, render)
    assert summary == {"done": 7, "skipped": 5, "failed": 0}
    again = server.contents()[len(first) :]
    assert sorted(again) == [f"job:q{i:02d}" for i in range(5, 12)]
    lines = path.read_text(encoding="utf-8").splitlines()
    keys = [json.loads(line)["key"] for line in lines]  # every line is whole JSON again
    assert len(lines) == 12 and sorted(keys) == [f"q{i:02d}" for i in range(12)]
    assert judge_all(client, jobs(12), path, render) == {"done": 0, "skipped": 12, "failed": 0}


def test_whole_last_record_without_newline_is_kept(serve, tmp_path):
    server = serve(lambda n, content: (200, "Rating: [[5]]"))
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"key": "q00", "rating": 9.0, "status": "ok"}), encoding="utf-8")  # no newline
    summary = judge_all(JudgeClient(settings(server.url)), jobs(2), path, render)
    assert summary == {"done": 1, "skipped": 1, "failed": 0} and server.contents() == ["job:q01"]
    assert read_judgments(path)["q00"]["rating"] == 9.0 and len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_requests_run_concurrently(serve, tmp_path):
    server = serve(lambda n, content: (time.sleep(0.2), (200, "Rating: [[7]]"))[1])
    start = time.perf_counter()
    summary = judge_all(JudgeClient(settings(server.url, concurrency=4)), jobs(8), tmp_path / "j.jsonl", render)
    assert time.perf_counter() - start < 1.2 and summary["done"] == 8 and len(server.requests) == 8


def test_bad_jobs_and_corrupt_files(tmp_path):
    client = JudgeClient(settings("http://127.0.0.1:9/v1"))
    with pytest.raises(ValueError, match="unique"):
        judge_all(client, jobs(2) + jobs(1), tmp_path / "j.jsonl", render)
    with pytest.raises(ValueError, match="key"):
        judge_all(client, [{"question": "?"}], tmp_path / "j.jsonl", render)
    path = tmp_path / "corrupt.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="corrupt.jsonl:2"):
        read_judgments(path)
    with pytest.raises(JudgeError, match="http"):
        JudgeClient(settings("127.0.0.1:8000"))


def test_default_templates_render_for_both_languages():
    templates = load_templates(None)
    samples = {
        "question": "什麼是颱風？",
        "answer": "颱風是一種熱帶氣旋。",
        "reference": "熱帶氣旋。",
        "question_1": "Hi",
        "answer_1": "Hello!",
        "question_2": "請用繁體中文介紹台北。",
        "answer_2": "台北是首都。",
        "reference_1": "Hello",
        "reference_2": "台北是臺灣的首都。",
    }
    for name, template in templates.items():
        user = render_messages(template, **{k: samples[k] for k in FIELDS[name]})[1]["content"]
        assert "Rating: [[N]]" in user and "Traditional Chinese" in user and "at most 2" in user
        assert all(samples[k] in user for k in FIELDS[name])
    assert "SECOND" in templates["multi_turn"]["user"] and "reference" in templates["multi_turn_reference"]["user"]


def test_template_overrides(tmp_path):
    full = {
        name: {"system": "Judge.", "user": "Q: {" + sorted(FIELDS[name])[0] + "}\nRating: [[N]]"}
        for name in DEFAULT_TEMPLATES
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(full), encoding="utf-8")
    (tmp_path / "t.json").write_text(json.dumps(full), encoding="utf-8")
    assert load_templates(tmp_path / "t.yaml") == full == load_templates(str(tmp_path / "t.json"))
    missing_key = {k: v for k, v in full.items() if k != "multi_turn_reference"}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(missing_key), encoding="utf-8")
    with pytest.raises(ValueError, match="multi_turn_reference"):
        load_templates(tmp_path / "a.yaml")
    missing_field = {**full, "reference": {"system": "Judge."}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(missing_field), encoding="utf-8")
    with pytest.raises(ValueError, match="'reference'.*'user'"):
        load_templates(tmp_path / "b.yaml")
    unknown_field = {**full, "single": {"system": "Judge.", "user": "{question} {reference}"}}
    (tmp_path / "c.json").write_text(json.dumps(unknown_field), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown field.*reference"):
        load_templates(Path(tmp_path / "c.json"))


def test_check_passes_a_judge_that_answers(serve):
    server = serve(lambda n, content: (200, "OK"))
    server.models = ["judge-model", "other"]
    JudgeClient(settings(server.url)).check()
    assert len(server.requests) == 1 and server.requests[0]["body"]["max_tokens"] == 1


@pytest.mark.parametrize(
    "case, expected",
    [
        ("unreachable", "cannot be reached"),
        ("http 500", "HTTP 500"),
        ("not json", "unexpected response"),
        ("model not served", "does not serve model 'judge-model'"),
        ("key unset", "names BAILONG_TEST_UNSET_KEY, which is not set"),
        ("key refused", "HTTP 401"),
    ],
)
def test_check_stops_a_judge_that_cannot_judge(serve, monkeypatch, case, expected):
    respond = {"http 500": (500, "boom"), "not json": (200, b"<html>hello</html>"), "key refused": (401, "no key")}
    server = serve(lambda n, content: respond.get(case, (200, "OK")))
    url = server.url
    if case == "unreachable":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    if case == "model not served":
        server.models = ["other-model"]
    monkeypatch.delenv("BAILONG_TEST_UNSET_KEY", raising=False)
    extra = {"api_key_env": "BAILONG_TEST_UNSET_KEY", "key_required": case == "key unset"}
    started = time.monotonic()
    with pytest.raises(JudgeError, match=expected):
        JudgeClient(settings(url, **extra)).check()
    assert time.monotonic() - started < 10
    if case == "key unset":
        assert server.requests == []  # stopped before asking anything
