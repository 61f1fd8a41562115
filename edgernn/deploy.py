"""``edgernn deploy CONFIG.toml``: the whole chain from one config file, for CI.

Sections run in pipeline order; each is optional except where a later one needs its output.
Relative paths are relative to the config file. Example::

    [dataset]                  # optional: write a bundled real dataset first
    name = "basic_motions"
    output = "data"            # -> data/basic_motions_train.npz, data/basic_motions_test.npz

    [train]                    # omit to start from [model] path
    data = "data/train.npz"
    cell = "lstm"
    units = 32
    epochs = 80
    output = "out/model.keras"

    [model]
    path = "out/model.keras"   # used when there is no [train]

    [convert]
    calib = "data/train.npz"
    output = "out/model.tflite"

    [[emit]]                   # one table per backend/target
    backend = "tflm"
    output = "out/fw_tflm"
    test_data = "data/test.npz"
    samples = 5

    [validate]
    data = "data/test.npz"
    engines = ["tflm"]
    max_accuracy_drop = 0.02
    min_agreement = 0.97
    report = "out/validate.json"
    junit = "out/validate.xml"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .data import read_toml
from .errors import EdgeRNNError

_PATH_KEYS = {"data", "output", "path", "calib", "test_data", "test", "report", "junit", "markdown", "html"}
_SECTIONS = {"dataset", "train", "model", "convert", "emit", "validate", "firmware"}


@dataclass
class DeployResult:
    steps: list[str] = field(default_factory=list)
    model: Path | None = None
    tflite: Path | None = None
    emitted: list = field(default_factory=list)
    validation: object = None
    firmware: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ok = self.validation is None or self.validation.passed
        return ok and all(r.passed for r in self.firmware)


def _resolve(section: dict, base: Path) -> dict:
    out = {}
    for k, v in section.items():
        out[k] = str(base / v) if k in _PATH_KEYS and isinstance(v, str) else v
    return out


def load_config(path) -> dict:
    p = Path(path)
    cfg = read_toml(p)
    unknown = set(cfg) - _SECTIONS
    if unknown:
        raise EdgeRNNError(f"{p}: unknown section(s) {sorted(unknown)}; known: {sorted(_SECTIONS)}")
    base = p.parent
    emits = cfg.get("emit", [])
    return {
        "dataset": _resolve(cfg["dataset"], base) if "dataset" in cfg else None,
        "train": _resolve(cfg["train"], base) if "train" in cfg else None,
        "model": _resolve(cfg["model"], base) if "model" in cfg else None,
        "convert": _resolve(cfg["convert"], base) if "convert" in cfg else None,
        "emit": [_resolve(e, base) for e in (emits if isinstance(emits, list) else [emits])],
        "validate": _resolve(cfg["validate"], base) if "validate" in cfg else None,
        "firmware": cfg.get("firmware"),
        "path": p,
    }


def _call(fn, where: str, **kwargs):
    try:
        return fn(**kwargs)
    except TypeError as exc:  # an unknown key in the section
        raise EdgeRNNError(f"[{where}]: {exc}") from None


def deploy(config) -> DeployResult:
    """Run the stages the config names; returns what each produced."""
    from . import convert, emit, train, validate

    cfg = load_config(config)
    res = DeployResult()
    if cfg["dataset"]:
        from .datasets import write
        d = cfg["dataset"]
        paths = _call(write, "dataset", name=d.get("name"), out_dir=d.get("output", str(cfg["path"].parent)))
        res.steps.append(f"dataset -> {paths[0]}, {paths[1]}")
    if cfg["train"]:
        t = dict(cfg["train"])
        data = t.pop("data", None)
        if data is None or "output" not in t:
            raise EdgeRNNError(f"{cfg['path']}: [train] needs data and output")
        t.setdefault("progress", False)
        res.model = _call(train, "train", data=data, **t).path
        res.steps.append(f"train -> {res.model}")
    elif cfg["model"]:
        res.model = Path(cfg["model"]["path"])
    if cfg["convert"]:
        if res.model is None:
            raise EdgeRNNError(f"{cfg['path']}: [convert] needs a [train] or [model] section")
        c = dict(cfg["convert"])
        res.tflite = Path(c.pop("output"))
        _call(convert, "convert", model=res.model, output=res.tflite, **c)
        res.steps.append(f"convert -> {res.tflite}")
    for e in cfg["emit"]:
        e = dict(e)
        if res.tflite is None:
            raise EdgeRNNError(f"{cfg['path']}: [[emit]] needs a [convert] section")
        out = e.pop("output")
        res.emitted.append(_call(emit, "emit", model=res.tflite, out_dir=out, **e))
        res.steps.append(f"emit {e.get('backend', 'tflm')}/{e.get('target', 'host')} -> {out}")
    if cfg["firmware"] and cfg["firmware"].get("run"):
        from .firmware import run_project
        for em in res.emitted:
            if em.backend == "native":
                res.firmware.append(run_project(em.out_dir))
                res.steps.append(f"firmware run {em.out_dir}")
    if cfg["validate"]:
        if res.model is None or res.tflite is None:
            raise EdgeRNNError(f"{cfg['path']}: [validate] needs a model and a [convert] section")
        v = dict(cfg["validate"])
        data = v.pop("data")
        # the HTML report is always written (next to the .tflite unless `html` says where), with
        # the firmware figures of the projects run above
        v.setdefault("html", str(res.tflite.with_name(res.tflite.stem + "_report.html")))
        if res.firmware:
            v.setdefault("firmware", [fw.to_dict() for fw in res.firmware])
        res.validation = _call(validate, "validate", model=res.model, quant=res.tflite, data=data, **v)
        res.steps.append(f"validate -> {v['html']}")
    return res
