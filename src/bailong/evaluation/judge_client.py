"""The judge: chat completions through the official `openai` client, and a resumable judging loop.

The `openai` client does the transport: retries of connection errors, timeouts, 408/409/429 and 5xx with exponential
backoff (honouring Retry-After), up to `http_retries` times. bailong keeps the rest: the preflight `check`, the
rating parse, the re-asks of a reply without a rating and the resumable judgments file. `judge_all` appends one JSON
line per judged job as soon as it arrives (flushed and fsynced), so an interrupted run loses nothing and a rerun skips
every key already recorded. The API key is read from the environment variable named by `JudgeSettings.api_key_env`
when the client is made; it is never logged, saved or put in an error message.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bailong.errors import BailongError

if TYPE_CHECKING:
    import openai

_EXCERPT = 300  # characters of a server's error body quoted in a JudgeError
_RETRIED = (408, 409, 429)  # and 5xx: the statuses the openai client retries


class JudgeError(BailongError):
    """The judge could not be reached or answered with an error (URL, status and a short body excerpt)."""


@dataclass
class JudgeSettings:
    """Where the judge is and how to call it. `max_retries` re-asks when a reply has no rating; `http_retries` is the
    openai client's `max_retries` (connection errors, timeouts, 408/409/429 and 5xx, with its backoff);
    `timeout_s` its `timeout` per request."""

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 4
    max_retries: int = 3
    http_retries: int = 4
    timeout_s: float = 120
    temperature: float = 0.0
    max_tokens: int = 1024
    key_required: bool = False  # the config names api_key_env explicitly: an unset variable is an error


class JudgeClient:
    """Calls `{base_url}/chat/completions` through one `openai.OpenAI` client; safe to share between threads."""

    def __init__(self, settings: JudgeSettings):
        if not settings.base_url.startswith(("http://", "https://")):
            raise JudgeError(f"judge base_url must start with http:// or https://, got {settings.base_url!r}")
        if settings.concurrency < 1:
            raise JudgeError(f"judge concurrency must be at least 1, got {settings.concurrency}")
        if settings.http_retries < 0 or settings.timeout_s <= 0:
            raise JudgeError(
                f"judge http_retries must be >= 0 and timeout_s > 0, got {settings.http_retries}, {settings.timeout_s}"
            )
        self.settings = settings
        self.base = settings.base_url.rstrip("/")
        self.url = self.base + "/chat/completions"
        self._client = self._openai()

    def _openai(self) -> openai.OpenAI:
        import openai

        key, s = self._key(), self.settings
        # No key: no Authorization header at all (a local judge), which the client allows only when a request omits
        # it explicitly.
        self._headers = {} if key else {"Authorization": openai.Omit()}
        return openai.OpenAI(
            base_url=self.base, api_key=key or "unused", max_retries=s.http_retries, timeout=s.timeout_s
        )

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
        import openai

        s = self.settings
        if s.key_required and not self._key():
            raise JudgeError(
                f"judge.api_key_env names {s.api_key_env}, which is not set; export {s.api_key_env}=<key>, "
                "or set judge.api_key_env: null for a judge that needs no key"
            )
        listing = self._client.with_options(max_retries=0, timeout=min(s.timeout_s, 30))
        try:
            payload = listing.models.with_raw_response.list(extra_headers=self._headers).http_response.content
        except openai.APIStatusError as err:
            if err.status_code not in (404, 405, 501):  # an endpoint without /models is checked by the request below
                raise self._refused(err, "GET /models") from None
        except openai.APIConnectionError as err:
            raise JudgeError(
                f"judge at {self.base} cannot be reached ({self._cause(err)}); check judge.base_url and that "
                "the server is running"
            ) from None
        else:
            try:
                served = [m["id"] for m in json.loads(payload)["data"]]
            except (ValueError, KeyError, TypeError):
                raise JudgeError(
                    f"judge at {self.base} sent an unexpected response to GET /models: "
                    f"{self._redact(_excerpt(payload))}"
                ) from None
            if s.model not in served:
                raise JudgeError(
                    f"judge at {self.base} does not serve model {s.model!r} (it serves: {', '.join(served[:10])}); "
                    "set judge.model"
                )
        probe = JudgeClient(JudgeSettings(**{**s.__dict__, "http_retries": min(s.http_retries, 1), "max_tokens": 1}))
        try:
            probe.complete([{"role": "user", "content": "Reply with OK."}])
        except JudgeError as err:
            raise JudgeError(f"judge check failed: {err}") from None

    def _cause(self, err: Exception) -> str:
        cause = err.__cause__ or err.__context__
        return self._redact(f"{type(err).__name__}: {cause or err}")

    def _hint(self, status: int) -> str:
        """What to change for a status the judge keeps answering."""
        if status in (401, 403):
            name = self.settings.api_key_env
            return (
                f"; put a valid key in ${name}" if name else "; set judge.api_key_env to the variable holding the key"
            )
        if status == 404:
            return "; check judge.base_url and that the judge serves judge.model"
        if status == 429:
            return "; lower judge.concurrency or raise judge.http_retries"
        return ""

    def _refused(self, err: openai.APIStatusError, what: str) -> JudgeError:
        excerpt = self._redact(_excerpt(err.response.content))
        return JudgeError(
            f"judge at {self.base} answered {what} with HTTP {err.status_code}: {excerpt}" + self._hint(err.status_code)
        )

    def complete(self, messages: list[dict]) -> str:
        """The judge's reply text to `messages`; raises JudgeError once the client is out of retries, or at once on
        a 4xx it does not retry (a bad request, a refused key, an unknown model)."""
        import openai

        s = self.settings
        attempts = f"{s.http_retries + 1} attempt{'s' if s.http_retries else ''}"
        try:
            response = self._client.chat.completions.with_raw_response.create(
                model=s.model,
                messages=messages,
                temperature=s.temperature,
                max_tokens=s.max_tokens,
                extra_headers=self._headers,
            )
        except openai.APIStatusError as err:
            excerpt = self._redact(_excerpt(err.response.content))
            if err.status_code in _RETRIED or err.status_code >= 500:
                last = f"HTTP {err.status_code}: {excerpt}{self._hint(err.status_code)}"
                raise JudgeError(f"judge request to {self.url} failed after {attempts}: {last}") from None
            raise JudgeError(
                f"judge request to {self.url} failed with HTTP {err.status_code}: {excerpt}"
                + self._hint(err.status_code)
            ) from None
        except openai.APITimeoutError:
            last = f"no answer within judge.timeout_s ({s.timeout_s:g} s)"
            raise JudgeError(f"judge request to {self.url} failed after {attempts}: {last}") from None
        except openai.APIConnectionError as err:
            raise JudgeError(f"judge request to {self.url} failed after {attempts}: {self._cause(err)}") from None
        return self._reply_text(response.http_response.content)

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
