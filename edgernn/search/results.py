"""Trials as rows: status, the best model that fits, the Pareto front, trials.csv / trials.json, OUT/best/."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

from ..data import load_dataset
from ..errors import EdgeRNNError
from .config import Budget

COLUMNS = ["trial", "status", "fits", "pareto", "cell", "units", "layers", "bidirectional", "qat", "epochs", "lr",
           "accuracy", "float_accuracy", "test_accuracy", "params", "flash", "ram", "instructions", "latency_ms",
           "epochs_run", "seconds", "node", "reason"]
_FINAL = ("done", "refused", "error")
_HARDWARE = ("flash", "RAM", "instructions", "latency")


def _status(m: dict, tune_status: str | None, error) -> tuple[str, str]:
    phase = m.get("phase")
    if phase == "done":
        if m.get("fits"):
            return "ok", ""
        hw = any(part.strip().startswith(_HARDWARE) or part.strip().startswith("host latency")
                 for part in m.get("reason", "").split(";"))
        return ("over budget" if hw else "below min_accuracy"), m.get("reason", "")
    if phase in ("refused", "error"):
        return phase, m.get("reason", "")
    if error is not None:
        return "error", str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__
    if phase == "train" and tune_status == "TERMINATED":
        return "stopped", (f"stopped early by ASHA after epoch {m.get('epoch')} "
                           f"(float validation accuracy {m.get('score', float('nan')):.3f})")
    return "unfinished", "interrupted before it finished; `edgernn search --resume` runs it again"


def _final(trials_dir: Path | None, tid: str) -> dict | None:
    """The trial's own final result (OUT/trials/<id>/result.json, written before it reports it)."""
    f = trials_dir / tid / "result.json" if trials_dir is not None else None
    if f is None or not f.is_file():
        return None
    try:
        m = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    return m if m.get("phase") in _FINAL else None


def collect(grid, statuses: dict, fixed: dict, trials_dir: Path | None = None) -> list[dict]:
    """One row per trial from Tune's results (the last result each trial reported), or from the
    trial's result.json when it finished while the search was being stopped: a resume reports that
    same result again rather than running the trial, so the tables count it as finished now."""
    rows = []
    for r in grid:
        m = dict(r.metrics or {})
        tid = m.get("trial_id") or (Path(r.path).name if r.path else "?")
        final = _final(trials_dir, tid) if m.get("phase") not in _FINAL else None
        if final is not None:
            m = final
            status, reason = _status(m, "TERMINATED", None)
        else:
            status, reason = _status(m, statuses.get(tid), r.error)
        row = {**{c: None for c in COLUMNS}, **fixed, **(r.config or {})}
        row.update({k: m[k] for k in COLUMNS if k in m})
        row["params"] = m.get("n_params")
        row.update(trial=tid, status=status, reason=reason, fits=status == "ok", pareto=False)
        if status not in ("ok", "over budget", "below min_accuracy"):  # no int8 model measured
            row.update(accuracy=None, flash=None, ram=None, instructions=None, latency_ms=None)
        rows.append(row)
    mark_pareto(rows)
    return rows


def _cost(row: dict):
    return row["instructions"] if row.get("instructions") is not None else row.get("latency_ms")


def _dominates(a: dict, b: dict) -> bool:
    ka = (-a["accuracy"], a["flash"], a["ram"], _cost(a) if _cost(a) is not None else 0)
    kb = (-b["accuracy"], b["flash"], b["ram"], _cost(b) if _cost(b) is not None else 0)
    return all(x <= y for x, y in zip(ka, kb)) and ka != kb


def measured(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["status"] in ("ok", "over budget", "below min_accuracy")]


def mark_pareto(rows: list[dict]) -> None:
    """``pareto``: no other measured trial is as accurate with as little flash, RAM and time."""
    ms = measured(rows)
    for r in ms:
        r["pareto"] = not any(_dominates(o, r) for o in ms if o is not r)


def front_2d(rows: list[dict], key: str) -> list[dict]:
    """The accuracy-vs-``key`` front (ascending ``key``): each point more accurate than all cheaper ones."""
    pts = sorted((r for r in measured(rows) if r.get(key) is not None), key=lambda r: (r[key], -r["accuracy"]))
    front, best = [], -math.inf
    for r in pts:
        if r["accuracy"] > best:
            front.append(r)
            best = r["accuracy"]
    return front


def ranked(rows: list[dict]) -> list[dict]:
    """Trials that fit every budget, most accurate first (ties: less flash, RAM, time)."""
    ok = [r for r in rows if r["status"] == "ok"]
    return sorted(ok, key=lambda r: (-r["accuracy"], r["flash"], r["ram"], _cost(r) or 0))


def test_accuracy(out: Path, row: dict, test_npz: str) -> float:
    from .trial import int8_accuracy

    return int8_accuracy((out / "trials" / row["trial"] / "model.tflite").read_bytes(),
                         load_dataset(test_npz, require_y=True))


def _plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_tables(out: Path, rows: list[dict], saved: dict, best: dict | None) -> list[Path]:
    rows = sorted(rows, key=lambda r: (r["status"] != "ok", -(r["accuracy"] if r["accuracy"] is not None else -9)))
    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else _plain(r[k]) for k in COLUMNS})
    settings = saved["settings"]
    emit = dict(backend="native", target=Budget(**settings["budget"]).measured_as, samples=settings["samples"],
                test_data=settings["data"]["val"])
    doc = dict(edgernn=saved.get("edgernn"), search=saved["config"], data=settings["data"],
               floors=settings.get("floors"), trial_firmware=emit, best=best,
               trials=[{k: _plain(v) for k, v in r.items()} for r in rows])
    (out / "trials.json").write_text(json.dumps(doc, indent=2, default=str))
    return [out / "trials.csv", out / "trials.json"]


def write_best(out: Path, best: dict, budget: Budget, settings: dict) -> Path:
    """OUT/best/: the best trial's model.keras, model.tflite and firmware for the target."""
    src = out / "trials" / best["trial"]
    dst = out / "best"
    tmp = out / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name in ("model.keras", "model.tflite"):
            shutil.copy2(src / name, tmp / name)
        if budget.measured_as == budget.target:
            shutil.copytree(src / "firmware", tmp / "firmware", symlinks=True)
        else:  # measured as a Cortex-M4 build; the deliverable is the target's own project
            from ..emit import emit
            emit(tmp / "model.tflite", tmp / "firmware", backend="native", target=budget.target,
                 test_data=settings["data"]["test"], samples=settings["samples"])
        (tmp / "best.json").write_text(json.dumps({k: _plain(v) for k, v in best.items()}, indent=2, default=str))
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def fmt(v, kind: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if kind == "acc":
        return f"{v:.3f}"
    if kind == "bytes":
        return f"{v:,}"
    if kind == "lr":
        return f"{v:.2g}"
    if kind == "ms":
        return f"{v:.3g}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def describe(row: dict) -> str:
    bi = "bi-" if row.get("bidirectional") else ""
    layers = f"{row['layers']}x" if (row.get("layers") or 1) > 1 else ""
    return f"{layers}{bi}{row.get('cell', '?')}({row.get('units', '?')})" + (" qat" if row.get("qat") else "")


def require_rows(rows: list[dict]) -> None:
    if not rows:
        raise EdgeRNNError("the search ran no trial; see OUT/ray/search for Ray Tune's logs")


def table(rows: list[dict], budget: Budget, limit: int = 20):
    """A rich Table: the trials that fit, most accurate first (the Pareto ones marked)."""
    from rich.table import Table

    t = Table(title="trials that fit the budgets, most accurate first", title_justify="left")
    cols = [("#", "right"), ("trial", "left"), ("model", "left"), ("epochs", "right"), ("lr", "right"),
            ("int8 acc", "right"), ("flash B", "right"), ("RAM B", "right")]
    cols += [("instructions", "right")] if budget.counts_instructions else []
    cols += [("ms", "right")] if any(r.get("latency_ms") is not None for r in rows) else []
    cols += [("pareto", "center")]
    for name, justify in cols:
        t.add_column(name, justify=justify)
    for i, r in enumerate(ranked(rows)[:limit], 1):
        cells = [str(i), r["trial"], describe(r), fmt(r.get("epochs")), fmt(r.get("lr"), "lr"),
                 fmt(r["accuracy"], "acc"), fmt(r["flash"], "bytes"), fmt(r["ram"], "bytes")]
        cells += [fmt(r.get("instructions"), "bytes")] if budget.counts_instructions else []
        cells += [fmt(r.get("latency_ms"), "ms")] if any(x.get("latency_ms") is not None for x in rows) else []
        cells += ["*" if r["pareto"] else ""]
        t.add_row(*cells)
    return t


def counts(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out
