"""The HTML validation report: one self-contained file an engineer opens to judge int8.

:func:`write_html` renders a :class:`~edgernn.validate.validator.ValidateReport` with
matplotlib (Agg backend, figures as inline base64 PNG) into the Jinja2 template
``templates/report.html.j2``. The file loads nothing: no script, font, stylesheet or image
from anywhere else, so it works offline, as a CI artifact, or attached to a ticket.

Figures (each a ``<figure class="edgernn-figure" id="fig-NAME">``, present when it applies):
``confusion`` (float and int8 side by side, changed cells outlined) and ``per-class``
(classification); ``scatter`` (int8 against float, and residuals; regression); ``error-hist``
(|float - int8| of the outputs); ``time-error`` (error against the time step, mean and p95);
``per-layer`` (SNR and saturation per layer, worst first; ``--per-layer``); ``firmware`` (flash
and RAM breakdown per firmware result). Tables: thresholds, engine agreement, metrics,
firmware instructions per step, provenance.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path

import numpy as np

from .. import _version

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_FLOAT, _INT8, _BAD = "#4c72b0", "#dd8452", "#c44e52"
_SNR_CAP = 100.0  # dB shown for an exact (infinite-SNR) layer


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 100,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _confusion(labels: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    idx = {int(c): i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes)), np.int64)
    for t, p in zip(labels, pred):
        if int(p) in idx:
            cm[idx[int(t)], idx[int(p)]] += 1
    return cm


def fig_confusion(plt, y_true, y_float, y_int8) -> tuple[str, int]:
    """Float and int8 confusion matrices; cells whose count changed outlined on both."""
    labels = np.asarray(y_true).reshape(-1).astype(int)
    pf = y_float.reshape(-1, y_float.shape[-1]).argmax(axis=1)
    pq = y_int8.reshape(-1, y_int8.shape[-1]).argmax(axis=1)
    classes = np.arange(max(int(labels.max()) + 1, y_float.shape[-1]))
    cms = [_confusion(labels, pf, classes), _confusion(labels, pq, classes)]
    changed = cms[0] != cms[1]
    k = len(classes)
    size = min(4.2, 1.6 + 0.3 * k)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 0.8, size))
    vmax = max(1, int(max(cm.max() for cm in cms)))
    for ax, cm, title in zip(axes, cms, ("float", "int8")):
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=vmax)
        acc = np.trace(cm) / max(1, cm.sum())
        ax.set_title(f"{title}: accuracy {acc:.1%}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        if k <= 16:
            for i in range(k):
                for j in range(k):
                    if cm[i, j] or changed[i, j]:
                        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                                color="white" if cm[i, j] > 0.6 * vmax else "black",
                                fontweight="bold" if changed[i, j] else "normal")
        for i, j in zip(*np.nonzero(changed)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=_BAD, linewidth=2))
    return _png(fig), int(changed.sum())


def fig_per_class(plt, per_class: dict) -> str:
    classes = sorted(per_class, key=int)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(classes) + 2), 2.8))
    ax.bar(x - 0.2, [per_class[c]["accuracy_float"] for c in classes], 0.4, label="float", color=_FLOAT)
    ax.bar(x + 0.2, [per_class[c]["accuracy_int8"] for c in classes], 0.4, label="int8", color=_INT8)
    ax.set_xticks(x, [str(c) for c in classes])
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(fig)


def fig_scatter(plt, y_true, y_float, y_int8) -> str:
    f, q = y_float.ravel(), y_int8.ravel()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    a1.scatter(f, q, s=6, alpha=0.5, color=_INT8, rasterized=True)
    lo, hi = float(min(f.min(), q.min())), float(max(f.max(), q.max()))
    a1.plot([lo, hi], [lo, hi], color="gray", linewidth=1)
    a1.set_xlabel("float output")
    a1.set_ylabel("int8 output")
    a1.set_title("int8 against float")
    a2.scatter(f, q - f, s=6, alpha=0.5, color=_BAD, rasterized=True)
    a2.axhline(0, color="gray", linewidth=1)
    a2.set_xlabel("float output")
    a2.set_ylabel("int8 - float")
    a2.set_title("residuals")
    return _png(fig)


def fig_error_hist(plt, y_float, y_int8, out_scale: float | None) -> str:
    err = np.abs(y_int8.astype(np.float64) - y_float.astype(np.float64)).ravel()
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    hi = float(err.max()) if err.size and err.max() > 0 else 1e-6
    ax.hist(err, bins=40, range=(0, hi), color=_INT8, log=True)
    if out_scale:
        ax.axvline(out_scale / 2, color="gray", linestyle="--", linewidth=1, label="half an output LSB")
        ax.legend(fontsize=8)
    ax.set_xlabel("|float - int8| per output value")
    ax.set_ylabel("count")
    return _png(fig)


def fig_time_error(plt, tl: dict) -> str:
    steps = np.arange(1, tl["steps"] + 1)
    fig, ax = plt.subplots(figsize=(6.0, 2.8))
    ax.plot(steps, tl["mean"], color=_FLOAT, label="mean")
    ax.plot(steps, tl["p95"], color=_BAD, label="95th percentile")
    ax.set_xlabel("time step")
    ax.set_ylabel("|float - int8|")
    ax.set_title(f"error along the sequence: {tl['what']}")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return _png(fig)


def fig_per_layer(plt, rows: list[dict]) -> str:
    rows = sorted(rows, key=lambda r: (r["snr_db"], r["index"]))  # worst first
    names = [f"{r['layer']} ({r['kind']})" for r in rows]
    snr = [min(r["snr_db"], _SNR_CAP) if math.isfinite(r["snr_db"]) or r["snr_db"] > 0 else 0.0 for r in rows]
    y = np.arange(len(rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 0.35 * len(rows) + 1.4), sharey=True)
    a1.barh(y, snr, color=[_BAD if s < 20 else _FLOAT for s in snr])
    a1.set_yticks(y, names)
    a1.invert_yaxis()
    a1.set_xlabel(f"SNR float vs int8 (dB; exact shown as {_SNR_CAP:.0f})")
    a1.set_title("SNR per layer, worst first")
    sat = [100 * r["saturated_fraction"] for r in rows]
    clip = [100 * r["clipped_fraction"] for r in rows]
    a2.barh(y - 0.2, sat, 0.4, color=_INT8, label="int8 at -128/127")
    a2.barh(y + 0.2, clip, 0.4, color=_BAD, label="float outside int8 range")
    a2.set_xlabel("% of values")
    a2.set_title("saturation")
    a2.legend(fontsize=8, loc="best")
    return _png(fig)


def fig_firmware(plt, results: list[dict]) -> str | None:
    sized = [r for r in results if r.get("sizes")]
    if not sized:
        return None
    parts = list(dict.fromkeys(p for r in sized for k in ("flash_parts", "ram_parts") for p in r["sizes"][k]))
    colors = dict(zip(parts, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 0.5 * len(sized) + 1.6))
    labels = [f"{r.get('backend', '?')}/{r.get('target', '?')}" for r in sized]
    for ax, key, title in zip(axes, ("flash_parts", "ram_parts"), ("flash", "RAM")):
        left = np.zeros(len(sized))
        for p in parts:
            kb = np.array([r["sizes"][key].get(p, 0) / 1024 for r in sized])
            if kb.any():
                ax.barh(labels, kb, left=left, color=colors[p], label=p)
                left += kb
        ax.set_xlabel("KiB")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, frameon=False)
    return _png(fig)


def _sha256(path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def provenance(files: dict) -> dict:
    """``files``: role -> path (or None). Hashes, sizes, the edgernn version, the tools'."""
    import platform

    rows = []
    for role, p in files.items():
        if p is None or not isinstance(p, (str, os.PathLike)):
            continue
        path = Path(p)
        digest = _sha256(path) if path.is_file() else None
        rows.append({"role": role, "path": str(path), "sha256": digest or "(a directory or not a file)",
                     "bytes": path.stat().st_size if path.is_file() else None})
    versions = {"edgernn": _version.__version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import matplotlib

        versions["matplotlib"] = matplotlib.__version__
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    return {"files": rows, "versions": versions}


def _fmt(v):
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "inf" if math.isinf(v) else f"{v:.4g}"
    return str(v)


def render_html(report) -> str:
    """The report as one HTML page (str)."""
    import jinja2

    plt = _plt()
    a = report.arrays
    y_true, y_float, y_int8 = a["y_true"], a["y_float"], a["y_int8"]
    figures = []

    def add(key, title, uri, caption=""):
        if uri:
            figures.append({"id": f"fig-{key}", "title": title, "src": uri, "caption": caption})

    if report.task == "classification":
        uri, changed = fig_confusion(plt, y_true, y_float, y_int8)
        add("confusion", "Confusion matrices, float and int8", uri,
            f"{changed} cell(s) differ between float and int8, outlined in red on both.")
        add("per-class", "Per-class accuracy", fig_per_class(plt, report.metrics["per_class"]))
    else:
        add("scatter", "int8 against float, and residuals", fig_scatter(plt, y_true, y_float, y_int8))
    add("error-hist", "|float - int8| of the outputs", fig_error_hist(plt, y_float, y_int8, a.get("out_scale")),
        "Every output value of every sample; log scale.")
    tl = report.timeline
    if tl:
        where = (f"simulator tensor <code>{tl['tensor']}</code>, cosine with float {tl['cosine']:.4f}"
                 if tl["kind"] == "hidden" else "the model's output at each step")
        add("time-error", "Error along the sequence", fig_time_error(plt, tl),
            f"|float - int8| of the {tl['what']} at each time step ({where}); mean and 95th percentile "
            "over samples and channels.")
    if report.per_layer:
        add("per-layer", "Per-layer diagnostics", fig_per_layer(plt, report.per_layer),
            "Dequantized int8 activations against float, per layer; the lowest SNR first.")
    fw = [r for r in report.firmware if isinstance(r, dict)]
    add("firmware", "Firmware flash and RAM", fig_firmware(plt, fw))

    metric_rows = [(k, _fmt(v)) for k, v in report.metrics.items() if not isinstance(v, (dict, list))]
    engines = []
    ref = "tflm" if "tflm" in report.engine_metrics else (report.engines[0] if report.engines else None)
    for e, em in report.engine_metrics.items():
        lsb = report.metrics.get(f"{e}_vs_{ref}_max_lsb")
        engines.append({"engine": e, "reference": e == ref, "max_lsb": "reference" if e == ref else _fmt(lsb),
                        "accuracy": _fmt(em.get("accuracy_int8")) if "accuracy_int8" in em else "",
                        "max_abs_error": _fmt(em.get("max_abs_error")), "snr_db": _fmt(em.get("snr_db"))})
    def per(v, unit):  # instructions on a Cortex-M, seconds on the host
        if v is None:
            return ""
        return f"{v * 1e6:.2f} µs" if unit == "seconds" else f"{v:,.0f}"

    firmware = []
    for r in fw:
        perf, sizes = r.get("perf") or {}, r.get("sizes") or {}
        firmware.append({"label": f"{r.get('backend', '?')}/{r.get('target', '?')}", "passed": r.get("passed"),
                         "flash": sizes.get("flash"), "ram": sizes.get("ram"),
                         "flash_parts": sizes.get("flash_parts", {}), "ram_parts": sizes.get("ram_parts", {}),
                         "unit": perf.get("unit"), "per_step": per(perf.get("per_step"), perf.get("unit")),
                         "per_inference": per(perf.get("per_inference"), perf.get("unit")),
                         "step_max": per(perf.get("step_max"), perf.get("unit"))})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        r=report, figures=figures, metric_rows=metric_rows, engines=engines, firmware=firmware,
        checks=[{"name": c.name, "metric": c.metric, "op": c.op, "limit": _fmt(c.limit), "value": _fmt(c.value),
                 "passed": c.passed} for c in report.checks],
        per_layer=report.per_layer, fmt=_fmt, prov=report.provenance, timeline=tl,
        warnings=list(getattr(report, "warnings", [])))


def write_html(report, path) -> Path:
    """Render ``report`` into ``path`` (written whole: a temporary file renamed into place)."""
    p = Path(path)
    text = render_html(report)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p
