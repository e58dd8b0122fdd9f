"""`bailong report`: one self-contained report.html from eval outputs, training runs and extend-vocab outputs."""

from pathlib import Path
from typing import Annotated

import typer


def run(
    dirs: Annotated[
        list[Path],
        typer.Argument(
            help="eval, pretrain/sft or extend-vocab output folders, or a folder of them (e.g. runs/demo)",
            show_default=False,
            metavar="DIR",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="where to write; default DIR/report.html for one folder, else ./report.html"),
    ] = None,
) -> Path:
    """Write one self-contained report.html (tables, charts, answers side by side, curves, token boundaries)."""
    from bailong.artifacts import REPORT_HTML_FILE
    from bailong.console import say
    from bailong.evaluation.html_report import write_html
    from bailong.evaluation.report_sections import collect_sections

    sections = collect_sections(list(dirs))
    target = Path(out) if out else (Path(dirs[0]) if len(dirs) == 1 else Path.cwd()) / REPORT_HTML_FILE
    if target.is_dir():
        target = target / REPORT_HTML_FILE
    write_html(target, sections)
    say(f"wrote {target} ({', '.join(s['title'] for s in sections)})")
    return target
