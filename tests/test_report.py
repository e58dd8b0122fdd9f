"""report.html from real runs — an eval against a grader on loopback, an extend-vocab output and a pretrain run —
opened from disk in headless Chromium: its DOM after the page's own script ran, and a screenshot."""

import html
import json
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import DEMO_DATA, MISTRAL_V1, run_cli, tiny_llama, write_config

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"
)
BENCH_IDS = (2, 9)  # a Chinese question that asks for English, and a reasoning question with a reference


def chromium(page, profile, *args: str, query: str = "") -> subprocess.CompletedProcess:
    """Headless Chromium on `page` (a file on disk, `query` its query string), kept off the network."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",  # containers often have a small /dev/shm
        f"--user-data-dir={profile}",
        *args,
        page.resolve().as_uri() + query,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def distinct_colors(png) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=2**24))


class Grader(BaseHTTPRequestHandler):
    """A judge on loopback that explains itself and rates by the prompt's length (1-10)."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        rating = 1 + len(prompt) % 10
        text = f"Graded a prompt of {len(prompt)} characters: brief, partly on topic.\nRating: [[{rating}]]"
        payload = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    """A real eval of SmolLM2 and a tiny random Llama: bits per character, choice, and two judged questions."""
    tmp = tmp_path_factory.mktemp("eval")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Grader)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    lines = (DEMO_DATA / "bailong_bench_mini.jsonl").read_text(encoding="utf-8").splitlines()
    bench = tmp / "bench.jsonl"
    bench.write_text("".join(x + "\n" for x in lines if json.loads(x)["question_id"] in BENCH_IDS), encoding="utf-8")
    cfg = {
        "models": [
            {"name": "smol", "name_or_path": "smollm2-135m-instruct"},
            {"name": "tiny", "name_or_path": str(tiny_llama(tmp / "tiny", str(MISTRAL_V1)))},
        ],
        "tasks": [
            {"type": "bpc", "files": [str(DEMO_DATA / "tc_heldout.txt")], "limit": 1},
            {"type": "choice", "file": str(DEMO_DATA / "tc_choice.jsonl"), "limit": 2},
            {"type": "judge", "questions": str(bench), "max_new_tokens": 8},
        ],
        "judge": {"base_url": f"http://127.0.0.1:{server.server_address[1]}/v1", "model": "grader", "max_retries": 0},
        "output_dir": str(tmp / "eval"),
    }
    result = run_cli("eval", write_config(tmp / "eval.yaml", cfg))
    server.shutdown()
    assert result.code == 0, result.stderr
    return tmp / "eval"


@pytest.mark.slow
@needs_chromium
def test_eval_writes_a_report_that_chromium_shows(eval_run, tmp_path, monkeypatch):
    page = eval_run / "report.html"
    assert page.is_file()
    source = page.read_text(encoding="utf-8")
    assert "http://" not in source and "https://" not in source  # nothing to fetch: images are inlined
    assert source.count('src="data:image/png;base64,') == 2  # results.png, judge_categories.png

    dom = chromium(page, tmp_path / "profile", "--dump-dom").stdout
    text = html.unescape(dom)
    table = text[text.index('<table class="compare">') : text.index("</table>")]
    results = json.loads((eval_run / "results.json").read_text(encoding="utf-8"))
    for name, result in results.items():
        assert f'<tr data-model="{name}">' in table
        assert f"{result['details']['judge']['mean']:.3f}" in table
        assert f"{result['details']['bpc']['bits_per_char']:.3f}" in table
    answers = [json.loads(x) for x in (eval_run / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    judgments = [json.loads(x) for x in (eval_run / "judgments.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {a["model"] for a in answers} == {"smol", "tiny"} and len(answers) == 2 * len(BENCH_IDS)
    for answer in answers:
        assert answer["turns"][0].strip() in text
    for judgment in judgments:
        assert judgment["judge_reply"].strip() in text
        assert f"{judgment['rating']:g}/10" in text
    questions = [json.loads(x) for x in (eval_run / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [q["question_id"] for q in questions] == list(BENCH_IDS)
    assert questions[0]["turns"][0] in text and questions[1]["reference"][0] in text
    assert text.count('<article class="question"') == len(BENCH_IDS)
    assert "answer in en" in text and "answer in zh-Hant" in text  # the language check's expected language
    # the page's script ran: the filter form is shown and counts what it shows
    assert '<form class="filters" data-section="section-1">' in dom
    assert f"{len(BENCH_IDS)} of {len(BENCH_IDS)} questions" in text
    assert not re.search(r"<\w+ [^>]*hidden", dom[dom.index("<main>") :])  # every question and answer shown

    # the filters, set from the query string as a linked view would: one category, one model
    filtered = chromium(page, tmp_path / "profile", "--dump-dom", query="?category=reasoning&models=tiny").stdout
    articles = re.findall(r'<article class="question" data-category="(\w+)"[^>]*?( hidden="")?>', filtered)
    assert articles == [("writing", ' hidden=""'), ("reasoning", "")]
    assert set(re.findall(r'<div class="answer" data-model="(\w+)"( hidden="")?>', filtered)) == {
        ("smol", ' hidden=""'),
        ("tiny", ""),
    }
    assert '<tr data-model="smol" hidden="">' in filtered and "1 of 2 questions" in filtered

    shot = tmp_path / "report.png"
    chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000")
    assert distinct_colors(shot) > 200  # text, tables, charts and badges; a blank page has one or two

    # `bailong report` on the eval folder writes the same page; eval still takes the folder as its own
    assert run_cli("report", eval_run, "--out", tmp_path / "again.html").code == 0
    assert (tmp_path / "again.html").read_text(encoding="utf-8").count('<article class="question"') == len(BENCH_IDS)
    monkeypatch.chdir(tmp_path)  # several folders: ./report.html, one section each with its own filters
    assert run_cli("report", eval_run, eval_run).code == 0
    twice = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert re.findall(r'<form class="filters" data-section="([\w-]+)"', twice) == ["section-1", "section-2"]
    from bailong.stages.evaluate import _check_output_dir

    _check_output_dir(eval_run, overwrite=False)


@pytest.fixture(scope="module")
def training_runs(tmp_path_factory):
    """runs/: a real extend-vocab output (tiny Llama + Mistral v1, 10% held out) and a pretrain run on it."""
    tmp = tmp_path_factory.mktemp("runs")
    runs = tmp / "runs"
    vocab = {
        "model": {"name_or_path": str(tiny_llama(tmp / "base", str(MISTRAL_V1)))},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0.1},
        "vocab": {"new_tokens": 200},
        "output_dir": str(runs / "extend_vocab"),
    }
    assert run_cli("extend-vocab", write_config(tmp / "v.yaml", vocab)).code == 0
    pretrain = {
        "model": {"name_or_path": str(runs / "extend_vocab")},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {
            "files": [str(DEMO_DATA / "tc_corpus.txt")],
            "validation_files": [str(DEMO_DATA / "tc_heldout.txt")],
            "block_size": 64,
        },
        "train": {"max_steps": 2, "batch_size": 2, "save_steps": 2, "logging_steps": 1, "eval_steps": 1},
        "output_dir": str(runs / "pretrain"),
    }
    result = run_cli("pretrain", write_config(tmp / "p.yaml", pretrain))
    assert result.code == 0, result.stderr
    return runs


@pytest.mark.slow
def test_report_of_a_runs_folder_shows_curves_and_token_boundaries(training_runs, tmp_path):
    from bailong.config.data import VocabDataConfig
    from bailong.data import CorpusReader, split_held_out
    from bailong.evaluation.report_sections import collect_sections

    result = run_cli("report", training_runs)
    assert result.code == 0, result.stderr
    page = training_runs / "report.html"
    source = page.read_text(encoding="utf-8")
    assert source.index("training run: pretrain") < source.index("extend-vocab: extend_vocab")
    assert source.count('src="data:image/png;base64,') == 1  # the run's loss.png
    assert 'font: 15px/1.5 "Noto Sans CJK TC", "PingFang TC", "Microsoft JhengHei"' in source  # CJK fonts first

    run, vocab = collect_sections([training_runs])
    facts = dict(run["facts"])
    assert facts["stage"] == "pretrain" and facts["steps"] == 2 and "(step 2)" in facts["held-out loss (first → last)"]
    held_out = [
        d for d in CorpusReader(VocabDataConfig(files=[str(DEMO_DATA / "tc_corpus.txt")])) if split_held_out(d, 0.1)
    ]
    assert len(vocab["samples"]) == min(6, len(held_out))
    for sample, document in zip(vocab["samples"], held_out):
        assert document.startswith(sample["text"].removesuffix("…"))
        for cut in (sample["base"], sample["extended"]):
            assert "".join(seg["text"] for seg in cut) == sample["text"]
        assert sample["extended_tokens"] < sample["base_tokens"]  # the new TC tokens cut held-out text coarser
    assert sum(seg["tokens"] > 1 for s in vocab["samples"] for seg in s["base"]) > 0  # byte-fallback characters
    assert html.escape(vocab["samples"][0]["extended"][0]["text"]) in source

    if CHROMIUM:
        shot = tmp_path / "runs.png"
        chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1600")
        assert distinct_colors(shot) > 200


def test_token_segments_cover_the_text_and_count_every_token():
    from bailong.evaluation.report_sections import token_segments
    from bailong.loading import load_tokenizer

    text = "臺灣的夜市 has 滷味 and 🍜, naïve café."
    for source in (str(MISTRAL_V1), "smollm2-135m-instruct"):  # SentencePiece with byte fallback; byte-level BPE
        tokenizer = load_tokenizer(source)
        segments = token_segments(tokenizer, text)
        assert "".join(s["text"] for s in segments) == text
        assert sum(s["tokens"] for s in segments) == len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert any(s["tokens"] > 1 for s in segments)  # 🍜 or a Han character as byte pieces


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "report: .*nope does not exist; pass an eval output_dir"),
        ("empty", "report: .*empty holds nothing to report; pass an eval output_dir .* or a folder of those"),
        ("file", "report: .*results.json is a file; pass its folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, case, expected):
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    (tmp_path / "results.json").write_text("{}")
    target = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "file": tmp_path / "results.json"}[case]
    result = run_cli("report", target, "--out", tmp_path / "out.html")
    assert result.code == 2
    assert re.fullmatch(f"error: {expected}.*\n", result.stderr)
    assert not (tmp_path / "out.html").exists()
