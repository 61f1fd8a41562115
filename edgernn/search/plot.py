"""The plot: int8 accuracy against flash, RAM and latency, the Pareto fronts, the budget lines."""

from __future__ import annotations

from pathlib import Path

from .config import Budget
from .results import describe, front_2d, measured


def _panels(budget: Budget, rows: list[dict]) -> list[tuple[str, str, float, float | None, str]]:
    """(row key, axis label, scale, budget line, budget name) per panel."""
    panels = [("flash", "flash (KiB)", 1 / 1024, budget.max_flash, "max_flash"),
              ("ram", "RAM (KiB)", 1 / 1024, budget.max_ram, "max_ram")]
    if any(r.get("latency_ms") is not None for r in rows):
        where = f" at {budget.cpu_hz / 1e6:g} MHz" if budget.cpu_hz else " (host)"
        limit = budget.max_latency_ms
        if limit is None and budget.max_instructions is not None and budget.cpu_hz:
            limit = budget.max_instructions / budget.cpu_hz * 1000
        panels.append(("latency_ms", f"latency (ms){where}", 1.0, limit, "max latency"))
    elif any(r.get("instructions") is not None for r in rows):
        panels.append(("instructions", "instructions per inference (M)", 1e-6, budget.max_instructions,
                       "max_instructions"))
    return panels


def plot(rows: list[dict], budget: Budget, out_base: Path, best: dict | None, title: str) -> list[Path]:
    """Write ``out_base.png`` and ``out_base.svg``; return both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = measured(rows)
    panels = _panels(budget, ms)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (key, label, scale, limit, name) in zip(axes[0], panels):
        groups = [("fits", [r for r in ms if r["status"] == "ok"], dict(marker="o", color="tab:blue")),
                  ("below min_accuracy", [r for r in ms if r["status"] == "below min_accuracy"],
                   dict(marker="o", facecolors="none", edgecolors="tab:orange")),
                  ("over budget", [r for r in ms if r["status"] == "over budget"], dict(marker="x", color="0.55"))]
        for lab, pts, style in groups:
            pts = [r for r in pts if r.get(key) is not None]
            if pts:
                ax.scatter([r[key] * scale for r in pts], [r["accuracy"] for r in pts], s=36, label=lab,
                           zorder=3, **style)
        front = front_2d(ms, key)
        if front:  # the best accuracy reachable with at most x: a staircase through the front
            right = max([r[key] for r in ms if r.get(key) is not None] + [limit or 0]) * scale * 1.04
            xs = [r[key] * scale for r in front] + [right]
            ys = [r["accuracy"] for r in front] + [front[-1]["accuracy"]]
            ax.step(xs, ys, where="post", color="tab:green", lw=1.2, zorder=2, label="Pareto front")
        if limit is not None:
            ax.axvline(limit * scale, color="tab:red", ls="--", lw=1.2, zorder=1, label=f"{name}")
        if budget.min_accuracy is not None:
            ax.axhline(budget.min_accuracy, color="tab:purple", ls=":", lw=1.2, zorder=1, label="min_accuracy")
        if best is not None and best.get(key) is not None:
            ax.scatter([best[key] * scale], [best["accuracy"]], marker="*", s=220, color="gold", edgecolors="black",
                       zorder=4, label=f"best: {describe(best)}")
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("int8 accuracy (validation split)")
    handles, labels = {}, []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=min(len(labels), 7),
               fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    paths = [out_base.with_suffix(".png"), out_base.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths
