"""`ff report`: one self-contained HTML page (figures embedded) for one or several runs."""

from __future__ import annotations

import base64
import html
import io
import json
import typing
from pathlib import Path

from . import runs
from .config import read_json
from .errors import FFError
from .figures import figures_of, pyplot, read_metrics

SUMMARY_KEYS = ("test_error", "val_error", "test_error_softmax", "test_error_goodness", "test_error_combined",
                "epochs", "train_seconds", "device")
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
img{max-width:100%;border:1px solid #eee;margin:6px 0}pre{background:#f6f6f6;padding:8px;overflow:auto}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fmt(key: str, value) -> str:
    if isinstance(value, float) and "error" in key:
        return f"{100 * value:.2f} %"
    return html.escape(str(value))


def load_summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    if not path.exists():
        raise FFError(f"{run_dir} has no summary.json: the run has not finished (or is not a run directory).")
    return read_json(path, "run summary")


def _comparison_figure(run_dirs: list[Path]) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for run_dir in run_dirs:
        metrics = [m for m in read_metrics(run_dir) if "val_error" in m]
        ax.plot([m["epoch"] for m in metrics], [100 * m["val_error"] for m in metrics], "o-", label=run_dir.name)
    ax.set(xlabel="epoch", ylabel="validation error (%)", title="validation error")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _flat(config: dict) -> dict[str, object]:
    return {f"{section}.{key}": value for section, values in config.items() if isinstance(values, dict)
            for key, value in values.items()}


def config_differences(summaries: list[dict]) -> dict[str, list]:
    """The config fields whose values differ between runs: field -> one value per run."""
    flats = [_flat(s.get("config", {})) for s in summaries]
    fields = sorted(set().union(*flats)) if flats else []
    quiet = {"run.progress", "data.data_dir"}  # how a run was watched or where its files were, not what it did
    return {f: [flat.get(f, "") for flat in flats] for f in fields
            if f not in quiet and len({json.dumps(flat.get(f), sort_keys=True) for flat in flats}) > 1}


def write_report(run_dirs: list[Path], out: Path, unplotted: typing.Collection[Path] = ()) -> Path:
    """Write the HTML page to `out`. Each run's figures must exist (`ff plot`; `ff report` makes missing ones),
    but those of the runs in `unplotted`, which are shown by their summaries alone."""
    run_dirs = [Path(r) for r in run_dirs]
    unplotted = {Path(r) for r in unplotted}
    summaries = [load_summary(r) for r in run_dirs]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>forward-forward report</title>"
             f"<style>{STYLE}</style></head><body><h1>forward-forward report</h1>"]
    if len(run_dirs) > 1:
        parts.append("<h2>Comparison</h2><table><tr><th>run</th>")
        parts += [f"<th>{k}</th>" for k in SUMMARY_KEYS] + ["</tr>"]
        for run_dir, summary in zip(run_dirs, summaries):
            cells = "".join(f"<td>{_fmt(k, summary.get(k, ''))}</td>" for k in SUMMARY_KEYS)
            parts.append(f"<tr><td>{html.escape(run_dir.name)}</td>{cells}</tr>")
        parts.append("</table>")
        differences = config_differences(summaries)
        if differences:
            parts.append("<h3>config fields that differ</h3><table><tr><th>field</th>")
            parts += [f"<th>{html.escape(r.name)}</th>" for r in run_dirs] + ["</tr>"]
            for field, values in differences.items():
                cells = "".join(f"<td>{html.escape(json.dumps(v))}</td>" for v in values)
                parts.append(f"<tr><td>{html.escape(field)}</td>{cells}</tr>")
            parts.append("</table>")
        parts.append(_img(_comparison_figure(run_dirs), "validation error of every run"))
    for run_dir, summary in zip(run_dirs, summaries):
        parts.append(f"<h2>{html.escape(run_dir.name)}</h2><table>")
        parts += [f"<tr><th>{k}</th><td>{_fmt(k, summary.get(k, ''))}</td></tr>" for k in SUMMARY_KEYS]
        parts.append("</table>")
        for name in figures_of(summary.get("config", {})) if run_dir not in unplotted else ():
            png = run_dir / "figures" / f"{name}.png"
            if not png.exists():
                raise FFError(f"{png} is missing: run `ff plot {run_dir}` first.")
            parts.append(f"<h3>{name.replace('_', ' ')}</h3>" + _img(png.read_bytes(), name))
        parts.append(f"<h3>config</h3><pre>{html.escape(json.dumps(summary.get('config', {}), indent=2))}</pre>")
    parts.append("</body></html>")
    out = Path(out)
    runs.write_atomic(out, lambda f: f.write("".join(parts).encode()))  # a failed write keeps the old report
    return out
