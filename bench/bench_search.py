"""Search throughput: trials per hour of ``edgernn search`` with 1 and 2 Ray workers, against the
hand-run loop it replaces (train -> convert -> simulator accuracy -> emit -> firmware run, one
model after another in one process, no Ray).

The same grid of models every time, on BasicMotions (100 steps x 6 features, 4 classes): GRU and
SimpleRNN with 4, 8 and 12 units, 3 epochs each, Cortex-M4 target (QEMU), one self-test vector,
ASHA off (every trial runs to the end, so the rows do the same work), preflight off. Wall time
includes starting Ray and each worker's TensorFlow import, as a user pays them.

    python bench/bench_search.py [--quick] [--workers 1 2] [--json out.json]

``--quick``: GRU only (3 trials). The full table takes about 15 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SPACE = {"cell": ["gru", "rnn"], "units": [4, 8, 12]}


def _config(tmp: Path, train: Path, test: Path, cells) -> Path:
    p = tmp / "search.toml"
    p.write_text(f"""[data]
train = "{train}"
test = "{test}"

[space]
cell = {json.dumps(cells)}
units = {json.dumps(SPACE["units"])}

[budget]
target = "cortex-m4"
max_flash = 131072
max_ram = 65536

[search]
algorithm = "grid"
epochs = 3
asha = false
preflight = false
samples = 1
""")
    return p


def hand_loop(cfg_path: Path, work: Path) -> dict:
    """The loop a search replaces: each model trained, converted, scored and run in turn."""
    from edgernn.convert import convert
    from edgernn.data import load_dataset
    from edgernn.search import load_config
    from edgernn.search.config import grid_points
    from edgernn.search.engine import write_splits
    from edgernn.search.trial import int8_accuracy, measure
    from edgernn.train import train

    t0 = time.time()
    cfg = load_config(cfg_path)
    data = write_splits(cfg, work / "data")
    fit, val = load_dataset(data["fit"], require_y=True), load_dataset(data["val"], require_y=True)
    per = []
    for i, p in enumerate(grid_points(cfg.space)):
        t = time.time()
        d = work / f"m{i}"
        d.mkdir(parents=True)
        res = train(fit, cell=p["cell"], units=p["units"], layers=p["layers"], bidirectional=p["bidirectional"],
                    epochs=p["epochs"], learning_rate=p["lr"], validation=val, output=d / "model.keras",
                    progress=False, batch_size=cfg.settings["batch_size"], seed=cfg.settings["seed"])
        conv = convert(res.path, fit, d / "model.tflite")
        int8_accuracy(conv.tflite, val)
        measure(conv.path, d / "fw", cfg.budget, cfg.settings, data["val"])
        per.append(time.time() - t)
    return dict(trials=len(per), wall=time.time() - t0, per_trial=sum(per) / len(per))


def ray_search(cfg_path: Path, out: Path, workers: int) -> dict:
    from edgernn.search import search

    t0 = time.time()
    res = search(cfg_path, out, workers=workers, progress=False)
    wall = time.time() - t0
    assert res.complete and all(r["status"] == "ok" for r in res.rows), [r["reason"] for r in res.rows]
    return dict(trials=len(res.rows), wall=wall, per_trial=sum(r["seconds"] for r in res.rows) / len(res.rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="GRU only (3 trials)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from edgernn import datasets

    cells = ["gru"] if args.quick else SPACE["cell"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgernn-bench-search-") as tmp:
        tmp = Path(tmp)
        train, test = datasets.write("basic_motions", tmp / "data")
        cfg = _config(tmp, train, test, cells)
        loop = hand_loop(cfg, tmp / "loop")
        rows.append(("hand-run loop (1 process, no Ray)", loop))
        for w in args.workers:
            rows.append((f"edgernn search, {w} worker{'s' if w > 1 else ''}", ray_search(cfg, tmp / f"out{w}", w)))
    load = os.getloadavg()[0]
    print(f"\n{len(cells) * len(SPACE['units'])} trials: {'/'.join(cells)} x units {SPACE['units']}, 3 epochs, "
          f"BasicMotions, cortex-m4 in QEMU; {os.cpu_count()} cores, load average {load:.1f} at the end\n")
    print("| run | trials | wall (s) | trials per hour | vs the loop | mean trial (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = rows[0][1]["trials"] / rows[0][1]["wall"]
    for name, r in rows:
        rate = r["trials"] / r["wall"]
        print(f"| {name} | {r['trials']} | {r['wall']:.0f} | {rate * 3600:.0f} | {rate / base:.2f}x | "
              f"{r['per_trial']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps([dict(run=n, **r) for n, r in rows], indent=2))


if __name__ == "__main__":
    main()
