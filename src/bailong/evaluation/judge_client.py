"""An OpenAI-compatible chat-completions judge client (standard library only) and a resumable judging loop.

`judge_all` appends one JSON line per judged job to judgments.jsonl as soon as it arrives (flushed and fsynced), so
an interrupted run loses nothing and a rerun skips every key already recorded. The API key is read from the
environment variable named by `JudgeSettings.api_key_env` at request time; it is never logged, saved or put in an
error message.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from bailong.errors import BailongError

_EXCERPT = 300  # characters of a server's error body quoted in a JudgeError


class JudgeError(BailongError):
    """The judge could not be reached or answered with an error (URL, status and a short body excerpt)."""


@dataclass
class JudgeSettings:
    """Where the judge is and how to call it. `max_retries` re-asks when a reply has no rating; `http_retries`
    retries HTTP 429/5xx, connection errors and timeouts, sleeping backoff_s * 2**attempt in between."""

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 4
    max_retries: int = 3
    http_retries: int = 4
    timeout_s: float = 120
    backoff_s: float = 1.0
    temperature: float = 0.0
    max_tokens: int = 1024
    key_required: bool = False  # the config names api_key_env explicitly: an unset variable is an error


class JudgeClient:
    """Calls `{base_url}/chat/completions`; safe to share between threads."""

    def __init__(self, settings: JudgeSettings):
        if not settings.base_url.startswith(("http://", "https://")):
            raise JudgeError(f"judge base_url must start with http:// or https://, got {settings.base_url!r}")
        if settings.concurrency < 1:
            raise JudgeError(f"judge concurrency must be at least 1, got {settings.concurrency}")
        self.settings = settings
        self.url = settings.base_url.rstrip("/") + "/chat/completions"

    def _key(self) -> str | None:
        name = self.settings.api_key_env
        return (os.environ.get(name) or None) if name else None

    def _redact(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def check(self) -> None:
        """Stops (JudgeError) before any work when the judge cannot judge: the key variable unset where one is
        required, an endpoint that cannot be reached or answers an error, a model it does not serve, a one-token
        request that gets no chat completion back."""
        s, base = self.settings, self.settings.base_url.rstrip("/")
        if s.key_required and not self._key():
            raise JudgeError(
                f"judge.api_key_env names {s.api_key_env}, which is not set; export {s.api_key_env}=<key>, "
                "or set judge.api_key_env: null for a judge that needs no key"
            )
        headers = {"Accept": "application/json", **self._auth()}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(base + "/models", headers=headers), timeout=min(s.timeout_s, 30)
            ) as response:
                payload = response.read()
        except urllib.error.HTTPError as err:
            if err.code not in (404, 405, 501):  # an endpoint without /models is checked by the request below
                raise self._refused(err, "GET /models") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", None) or err
            raise JudgeError(
                f"judge at {base} cannot be reached ({self._redact(str(reason))}); check judge.base_url and that "
                "the server is running"
            ) from None
        else:
            try:
                served = [m["id"] for m in json.loads(payload)["data"]]
            except (ValueError, KeyError, TypeError):
                raise JudgeError(
                    f"judge at {base} sent an unexpected response to GET /models: {self._redact(_excerpt(payload))}"
                ) from None
            if s.model not in served:
                raise JudgeError(
                    f"judge at {base} does not serve model {s.model!r} (it serves: {', '.join(served[:10])}); "
                    "set judge.model"
                )
        probe = JudgeClient(JudgeSettings(**{**s.__dict__, "http_retries": 1, "max_tokens": 1}))
        try:
            probe.complete([{"role": "user", "content": "Reply with OK."}])
        except JudgeError as err:
            raise JudgeError(f"judge check failed: {err}") from None

    def _auth(self) -> dict:
        key = self._key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _refused(self, err: urllib.error.HTTPError, what: str) -> JudgeError:
        excerpt = self._redact(_excerpt(err.read() if err.fp else b""))
        hint = ""
        if err.code in (401, 403):
            name = self.settings.api_key_env
            hint = (
                f"; put a valid key in ${name}" if name else "; set judge.api_key_env to the variable holding the key"
            )
        return JudgeError(f"judge at {self.settings.base_url} answered {what} with HTTP {err.code}: {excerpt}{hint}")

    def complete(self, messages: list[dict]) -> str:
        """The judge's reply text to `messages`; raises JudgeError once out of retries or on a non-429 4xx."""
        s = self.settings
        body = json.dumps(
            {"model": s.model, "messages": messages, "temperature": s.temperature, "max_tokens": s.max_tokens}
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self._auth()}
        last = ""
        for attempt in range(s.http_retries + 1):
            wait = s.backoff_s * 2**attempt
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=s.timeout_s) as response:
                    payload = response.read()
                return self._reply_text(payload)
            except urllib.error.HTTPError as err:
                excerpt = self._redact(_excerpt(err.read() if err.fp else b""))
                last = f"HTTP {err.code}: {excerpt}"
                if err.code != 429 and err.code < 500:
                    raise JudgeError(f"judge request to {self.url} failed with HTTP {err.code}: {excerpt}") from None
                wait = max(wait, min(_retry_after(err.headers.get("Retry-After")), 60.0))
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", None) or err
                last = self._redact(f"{type(err).__name__}: {reason}")
            if attempt < s.http_retries:
                time.sleep(wait)
        raise JudgeError(f"judge request to {self.url} failed after {s.http_retries + 1} attempts: {last}")

    def _reply_text(self, payload: bytes) -> str:
        try:
            data = json.loads(payload)
            content = data["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise JudgeError(
                f"judge at {self.url} sent an unexpected response: {self._redact(_excerpt(payload))}"
            ) from None
        return content if isinstance(content, str) else ""


def _excerpt(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _retry_after(value: str | None) -> float:
    try:
        return max(float(value), 0.0) if value else 0.0
    except ValueError:
        return 0.0


_NUMBER = r"(\d+(?:\.\d+)?)"
_BRACKETED = re.compile(r"\[\[\s*\**\s*" + _NUMBER + r"\s*\**\s*(?:/\s*10\s*)?\]\]")
_LABELLED = re.compile(
    r"(?:\b(?:rating|score)\b|評分|评分|分數|分数|得分)\s*[*_]*\s*[:：=]?\s*[*_\s]*\[?\s*" + _NUMBER, re.I
)


def parse_rating(reply: str) -> float | None:
    """The 1-10 rating in a judge reply: the last `[[N]]`, else the last `Rating: N` / `評分：N`; None if there is
    none or it is outside 1..10."""
    matches = _BRACKETED.findall(reply or "") or _LABELLED.findall(reply or "")
    if not matches:
        return None
    rating = float(matches[-1])
    return rating if 1 <= rating <= 10 else None


def read_judgments(path: str | Path) -> dict[str, dict]:
    """Records of a judgments.jsonl by key (the last record of a key wins). An unreadable last line (a write cut
    short by a kill) is ignored; an unreadable line before it raises ValueError."""
    path = Path(path)
    if not path.exists():
        return {}
    lines = path.read_bytes().split(b"\n")
    records: dict[str, dict] = {}
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _parse_record(line)
        except ValueError as err:
            if number - 1 == last:
                break
            raise ValueError(f"{path}:{number}: not a judgment record ({err}); fix or remove that line") from None
        records[record["key"]] = record
    return records


def _parse_record(line: bytes) -> dict:
    record = json.loads(line.decode("utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        raise ValueError("not a record with a string key")
    return record


def _repair_tail(path: Path) -> None:
    """Drops an unreadable last line (a write cut short) and ends the file with a newline, so that new records
    start on a line of their own."""
    if not path.exists():
        return
    with path.open("rb+") as f:
        data = f.read()
        body = data.rstrip()
        if not body:
            return
        start = body.rfind(b"\n") + 1
        try:
            _parse_record(body[start:])
        except ValueError:
            f.truncate(start)
            return
        if not data.endswith(b"\n"):
            f.write(b"\n")


class _Appender:
    """Appends JSON lines, each flushed and fsynced, under a lock."""

    def __init__(self, path: Path, on_result: Callable[[dict], None] | None):
        self.path, self.on_result, self.lock = path, on_result, threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            if self.on_result is not None:
                self.on_result(record)


def _judge_one(client: JudgeClient, job: dict, render: Callable[[dict], list[dict]]) -> dict:
    record = {k: v for k, v in job.items() if not k.startswith("_")}
    messages = render(job)
    reply, attempts = "", 0
    for _ in range(client.settings.max_retries + 1):
        attempts += 1
        try:
            reply = client.complete(messages)
        except JudgeError as err:
            return {
                **record,
                "rating": None,
                "status": "failed",
                "failure": "request",  # the judge could not be asked: a rerun asks again
                "reason": str(err),
                "judge_reply": reply,
                "attempts": attempts,
            }
        rating = parse_rating(reply)
        if rating is not None:
            return {**record, "rating": rating, "status": "ok", "judge_reply": reply, "attempts": attempts}
    reason = f"no rating from 1 to 10 in the judge's reply after {attempts} attempts"
    return {
        **record,
        "rating": None,
        "status": "failed",
        "failure": "no rating",
        "reason": reason,
        "judge_reply": reply,
        "attempts": attempts,
    }


def judge_all(
    client: JudgeClient,
    jobs: list[dict],
    judgments_path: str | Path,
    render: Callable[[dict], list[dict]],
    *,
    on_result: Callable[[dict], None] | None = None,
    retry_failed: bool = False,
    progress: str | None = None,
) -> dict:
    """Judges every job whose "key" has no record in `judgments_path` yet, `concurrency` at a time.

    Each record is the job (fields starting with "_" left out) plus rating, status ("ok"/"failed"), reason (failed
    only), judge_reply and attempts; it is appended as it arrives and passed to `on_result`. Judge failures are
    recorded, never raised. A key whose request failed (the judge could not be asked) is judged again;
    `retry_failed` also redoes keys whose reply had no rating; `progress` labels the progress bar. Returns
    {"done": new records, "skipped": jobs already recorded, "failed": failed records in the file}.
    """
    path = Path(judgments_path)
    keys = [job.get("key") for job in jobs]
    if not all(isinstance(k, str) and k for k in keys):
        raise ValueError("every judge job needs a non-empty string 'key'")
    if len(set(keys)) != len(keys):
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"judge job keys must be unique; repeated: {', '.join(duplicates[:5])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = read_judgments(path)
    _repair_tail(path)

    def recorded(key: str) -> bool:
        if key not in existing or existing[key].get("status") != "failed":
            return key in existing
        return not (retry_failed or existing[key].get("failure") == "request")

    todo = [job for job in jobs if not recorded(job["key"])]
    appender = _Appender(path, on_result)
    from tqdm.auto import tqdm

    from bailong.console import is_main_process

    bar = tqdm(total=len(todo), desc=progress or "judging", unit="judgment", disable=not todo or not is_main_process())

    def run(job: dict) -> None:
        appender.write(_judge_one(client, job, render))

    pool = ThreadPoolExecutor(max_workers=client.settings.concurrency, thread_name_prefix="judge")
    try:
        for future in as_completed([pool.submit(run, job) for job in todo]):
            future.result()
            bar.update()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # records already written stay; a rerun does the rest
        raise
    finally:
        bar.close()
    pool.shutdown()
    failed = sum(record.get("status") == "failed" for record in read_judgments(path).values())
    return {"done": len(todo), "skipped": len(jobs) - len(todo), "failed": failed}
