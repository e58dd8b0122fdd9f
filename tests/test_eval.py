"""bailong eval on real data: bits per character, multiple choice, and the judge task against judges on loopback —
a tiny model served by `bailong serve` (its replies are unparseable) and a scripted grader — incl. interrupt and
rerun."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bailong.config import BpcTask, ChoiceTask
from bailong.evaluation.judge import load_bench
from helpers import DEMO_DATA, MISTRAL_V1, run_cli, shared_file, tiny_llama, write_config

EASY = [  # questions a 135M English model should get right by the likelihood of the choice text
    ("The capital of France is", ["Paris", "a banana", "the ocean", "Tuesday"], "A"),
    ("Water freezes at zero degrees", ["purple", "Celsius", "singing", "quickly"], "B"),
    ("The opposite of hot is", ["green", "seven", "cold", "table"], "C"),
    ("One plus one equals", ["blue", "car", "tree", "two"], "D"),
    ("The sun rises in the", ["east", "fridge", "spoon", "keyboard"], "A"),
    ("Cats and dogs are", ["minerals", "animals", "numbers", "verbs"], "B"),
]


@pytest.fixture(scope="module")
def smollm2():
    from bailong.inference import ChatModel

    return ChatModel("smollm2-135m-instruct")


@pytest.mark.slow
def test_bpc_task_on_tc_wikipedia(smollm2):
    from bailong.evaluation.bpc import bits_per_character, run_bpc

    path = shared_file("tc/drcd_test_seen_titles_paragraphs.txt")
    task = BpcTask(type="bpc", files=[str(path)], limit=2, window=256, stride=128)
    result = run_bpc(task, smollm2.model, smollm2.tokenizer)
    docs = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:2]
    assert result["documents"] == 2 and result["characters"] == sum(len(d) for d in docs)
    direct = bits_per_character(smollm2.model, smollm2.tokenizer, docs, max_length=256, stride=128)
    assert result["bits_per_char"] == pytest.approx(direct["bits_per_char"])
    assert result["tokens_per_char"] > 1.0  # byte-level BPE without TC tokens: more than a token per character
    assert 2 < result["bits_per_char"] < 20 and result["perplexity"] > 1


@pytest.mark.slow
def test_choice_task_scores_easy_questions_and_real_tmmlu(smollm2, tmp_path):
    from bailong.evaluation.choice import run_choice

    easy = tmp_path / "easy.jsonl"
    easy.write_text(
        "".join(json.dumps({"question": q, "choices": c, "answer": a, "subject": "easy"}) + "\n" for q, c, a in EASY),
        encoding="utf-8",
    )
    result = run_choice(ChoiceTask(type="choice", file=str(easy), batch_size=5), smollm2.model, smollm2.tokenizer)
    assert result["accuracy"] >= 5 / 6 and result["per_subject"] == {"easy": result["accuracy"]}

    tmmlu = shared_file("bench/tmmlu_mc.jsonl")
    lettered = ChoiceTask(
        type="choice",
        file=str(tmmlu),
        limit=6,
        scoring="letter",
        shots=1,
        dev_file=str(DEMO_DATA / "tc_choice_dev.jsonl"),
    )
    result = run_choice(lettered, smollm2.model, smollm2.tokenizer)
    assert result["questions"] == 6 and 0 <= result["accuracy"] <= 1 and result["chance"] == pytest.approx(0.25)
    subjects = {json.loads(line)["subject"] for line in tmmlu.read_text(encoding="utf-8").splitlines()[:6]}
    assert set(result["per_subject"]) == subjects


def test_bench_mini_is_well_formed():
    questions = load_bench(str(DEMO_DATA / "bailong_bench_mini.jsonl"))
    assert 30 <= len(questions) <= 50
    categories = {q["category"] for q in questions}
    assert {
        "writing",
        "roleplay",
        "reasoning",
        "math",
        "coding",
        "extraction",
        "stem",
        "humanities",
        "translation",
        "multi-turn",
    } <= categories
    assert any(len(q["turns"]) == 2 for q in questions) and any(q.get("reference") for q in questions)
    assert any(q.get("answer_language") for q in questions if q["category"] != "translation")


class ScriptedJudge(BaseHTTPRequestHandler):
    """A grader on loopback: rates 7, except that every third request gets a reply without a rating."""

    requests = 0

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests += 1
        prompt = body["messages"][-1]["content"]
        text = "No rating here." if "[[" not in prompt or type(self).requests % 3 == 0 else "Fine.\nRating: [[7]]"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted_judge():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def eval_config(tmp_path, models, judge: dict, limit=4) -> dict:
    return {
        "models": models,
        "tasks": [
            {"type": "bpc", "files": [str(DEMO_DATA / "tc_heldout.txt")], "limit": 3},
            {"type": "choice", "file": str(DEMO_DATA / "tc_choice.jsonl"), "limit": 4},
            {
                "type": "judge",
                "questions": str(shared_file("bench/mt_bench_en_questions.jsonl")),
                "references": str(shared_file("bench/mt_bench_en_reference_gpt4.jsonl")),
                "limit": limit,
                "max_new_tokens": 6,
            },
        ],
        "judge": {"max_retries": 1, "concurrency": 2, "max_tokens": 8, **judge},
        "output_dir": str(tmp_path / "eval"),
    }


@pytest.mark.slow
def test_judge_served_by_bailong_serve_fails_softly_and_rerun_resumes(tmp_path):
    model = tiny_llama(tmp_path / "tiny", str(MISTRAL_V1), context=4096)  # room for the judge prompts
    cfg = eval_config(
        tmp_path,
        [{"name": "tiny", "name_or_path": str(model)}],
        {"serve": str(model), "model": "tiny-judge", "max_failed_share": 1.0},
        limit=3,
    )
    config = write_config(tmp_path / "e.yaml", cfg)
    result = run_cli("eval", config)
    assert result.code == 0, result.stderr
    out = tmp_path / "eval"
    results = json.loads((out / "results.json").read_text())
    tiny = results["tiny"]
    judgments = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert len(judgments) == 6  # three two-turn questions
    assert tiny["judge"]["failures"] == sum(j["status"] == "failed" for j in judgments) > 0
    assert set(tiny) >= {"bpc", "choice", "judge", "language_consistency"}
    assert (out / "results.md").is_file() and (out / "results.png").is_file()

    # an interrupted run: the last judgment lost and the one before cut mid-line
    lines = (out / "judgments.jsonl").read_text().splitlines(keepends=True)
    (out / "judgments.jsonl").write_text("".join(lines[:4]) + lines[4][:20])
    answers_before = (out / "answers.jsonl").read_text()
    assert run_cli("eval", config).code == 0
    again = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert sorted(j["key"] for j in again) == sorted(j["key"] for j in judgments)
    assert [j["key"] for j in again[:4]] == [j["key"] for j in judgments[:4]]
    assert (out / "answers.jsonl").read_text() == answers_before  # answers were not generated again


@pytest.mark.slow
def test_scripted_judge_scores_per_category_and_turn(tmp_path, scripted_judge):
    cfg = eval_config(
        tmp_path,
        [{"name": "smol", "name_or_path": "smollm2-135m-instruct"}],
        {"base_url": scripted_judge, "model": "grader", "max_failed_share": 1.0},
        limit=2,
    )
    result = run_cli("eval", write_config(tmp_path / "e.yaml", cfg))
    assert result.code == 0, result.stderr
    judge = json.loads((tmp_path / "eval" / "results.json").read_text())["smol"]["details"]["judge"]
    records = [json.loads(line) for line in (tmp_path / "eval" / "judgments.jsonl").read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    assert ok and all(r["rating"] == 7 for r in ok)
    assert judge["mean"] == 7 and judge["judged"] == len(ok) and judge["failures"] == len(records) - len(ok)
    assert set(judge["per_turn"]) <= {"1", "2"} and judge["per_category"] == {"writing": 7}
    assert judge["language_consistency"]["checked"] >= 1


def bilingual_bench(tmp_path):
    """MT-bench with a second copy under the same ids, as MT-bench + MT-Bench-TW in one file would be."""
    lines = shared_file("bench/mt_bench_en_questions.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    copies = [json.dumps({**json.loads(line), "turns": ["（譯）" + json.loads(line)["turns"][0]]}) for line in lines]
    bench = tmp_path / "bilingual.jsonl"
    bench.write_text("\n".join(lines + copies) + "\n", encoding="utf-8")
    return bench, json.loads(lines[0])["question_id"]


def test_repeated_question_ids_are_refused_naming_both_lines(tmp_path):
    from bailong.errors import BailongError

    bench, first_id = bilingual_bench(tmp_path)
    with pytest.raises(BailongError, match=rf"bilingual.jsonl:4: question_id {first_id} repeats .*bilingual.jsonl:1"):
        load_bench(str(bench))


def test_answers_reused_only_for_the_same_model_files_and_generation_settings(tmp_path):
    from bailong.config import JudgeTask
    from bailong.evaluation.judge import generate_answers, judge_jobs, model_identity
    from bailong.evaluation.judge_prompts import DEFAULT_TEMPLATES
    from bailong.inference import ChatModel

    model = tiny_llama(tmp_path / "tiny", str(MISTRAL_V1))
    questions = load_bench(str(DEMO_DATA / "bailong_bench_mini.jsonl"), limit=2)
    task = JudgeTask(type="judge", questions=str(DEMO_DATA / "bailong_bench_mini.jsonl"), max_new_tokens=2)
    answers_file = tmp_path / "answers.jsonl"

    def answer(task):
        identity = model_identity(str(model))
        answers = generate_answers(ChatModel(str(model)), "tiny", identity, questions, task, answers_file)
        return len(answers_file.read_text().splitlines()), judge_jobs(
            "tiny", questions, answers, DEFAULT_TEMPLATES, "j"
        )

    assert answer(task)[0] == 2
    rows, jobs = answer(task)
    assert rows == 2  # same model, same settings: reused
    assert answer(task.model_copy(update={"max_new_tokens": 3}))[0] == 4  # other settings: generated again
    tiny_llama(tmp_path / "tiny", str(MISTRAL_V1))  # retrained under the same name and path
    rows, retrained_jobs = answer(task.model_copy(update={"max_new_tokens": 3}))
    assert rows == 6
    rows, jobs_again = answer(task.model_copy(update={"max_new_tokens": 3}))
    assert rows == 6 and [j["key"] for j in jobs_again] == [j["key"] for j in retrained_jobs]
    assert jobs[0]["key"].startswith(f"tiny/{questions[0]['question_id']}/1/")


class FailingJudge(ScriptedJudge):
    """Answers the check, then never gives a rating."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        payload = json.dumps({"choices": [{"message": {"content": "I cannot say."}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class ServerError(ScriptedJudge):
    def do_POST(self):  # noqa: N802
        self.send_response(500)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"boom")


def loopback(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, expected",
    [
        ("http 500", "judge check failed: judge request to .* failed after 2 attempts: HTTP 500: boom"),
        ("unreachable", "cannot be reached"),
        ("key unset", "judge.api_key_env names BAILONG_TEST_UNSET_KEY, which is not set"),
        ("repeated ids", "question_id .* repeats"),
        ("another stage's folder", "holds files eval does not write \\(e.g. bailong_run.json\\)"),
    ],
)
def test_a_judge_that_cannot_judge_stops_eval_before_any_answer(tmp_path, monkeypatch, case, expected):
    monkeypatch.delenv("BAILONG_TEST_UNSET_KEY", raising=False)
    server, url = loopback(ServerError if case == "http 500" else ScriptedJudge)
    if case == "unreachable":
        server.shutdown()
        server.server_close()
    judge = {"base_url": url, "model": "grader", "timeout_s": 5}
    if case == "key unset":
        judge["api_key_env"] = "BAILONG_TEST_UNSET_KEY"
    cfg = eval_config(tmp_path, [{"name": "smol", "name_or_path": "smollm2-135m-instruct"}], judge)
    if case == "repeated ids":
        cfg["tasks"][2] = {"type": "judge", "questions": str(bilingual_bench(tmp_path)[0])}
    if case == "another stage's folder":
        (tmp_path / "eval").mkdir()
        (tmp_path / "eval" / "bailong_run.json").write_text("{}")
    result = run_cli("eval", write_config(tmp_path / "e.yaml", cfg))
    assert result.code == 2
    assert re.fullmatch(f"error: .*{expected}.*\n", result.stderr.splitlines(keepends=True)[-1])
    assert "evaluating smol" not in result.stdout  # stopped before loading any model
    assert not (tmp_path / "eval" / "answers.jsonl").exists() and not (tmp_path / "eval" / "results.json").exists()
    server.shutdown()


@pytest.mark.slow
def test_too_many_failed_judgments_end_non_zero_after_the_report(tmp_path):
    server, url = loopback(FailingJudge)
    cfg = eval_config(
        tmp_path, [{"name": "smol", "name_or_path": "smollm2-135m-instruct"}], {"base_url": url, "model": "g"}, limit=2
    )
    cfg["tasks"] = cfg["tasks"][2:]
    result = run_cli("eval", write_config(tmp_path / "e.yaml", cfg))
    assert result.code == 2
    assert result.stderr.splitlines()[-1].startswith("error: judge: 4 of 4 judgments failed (100%, above ")
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["smol"]["judge"]["failures"] == 4
    assert re.search(r"answers \(smol\): 100%.*2/2", result.stderr)  # progress bars with counts
    assert re.search(r"judging \(smol\): 100%.*4/4", result.stderr)
    server.shutdown()


def test_speed_task_reports_characters_and_tokens_per_second(tmp_path):
    """The speed task in results.json, results.md and report.html: positive rates, the same characters per model."""
    models = []
    for name, tied in (("tiny-a", True), ("tiny-b", False)):
        tiny_llama(tmp_path / name, "smollm2-135m-instruct", tied=tied)
        models.append({"name": name, "name_or_path": str(tmp_path / name)})
    cfg = {
        "models": models,
        "tasks": [
            {"type": "bpc", "files": [str(DEMO_DATA / "tc_heldout.txt")], "limit": 1},
            {"type": "speed", "characters": 12, "limit": 2},
        ],
        "output_dir": str(tmp_path / "eval"),
    }
    result = run_cli("eval", write_config(tmp_path / "e.yaml", cfg))
    assert result.code == 0, result.stderr
    results = json.loads((tmp_path / "eval" / "results.json").read_text(encoding="utf-8"))
    for name in ("tiny-a", "tiny-b"):
        speed = results[name]["details"]["speed"]
        assert speed["prompts"] == 2 and speed["new_characters"] >= 24 and speed["new_tokens"] > 0
        assert results[name]["chars_per_s"] == speed["chars_per_s"] > 0
        assert results[name]["tokens_per_s"] == speed["tokens_per_s"] > 0
    table = (tmp_path / "eval" / "results.md").read_text(encoding="utf-8")
    header, _, *rows = table.splitlines()
    assert "chars/s" in header and "tokens/s" in header
    column = [c.strip() for c in header.split("|")].index("chars/s")
    assert all(float(row.split("|")[column]) > 0 for row in rows)
    html = (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    assert ">chars/s" in html and ">tokens/s" in html
