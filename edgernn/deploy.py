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
    _check_sections(cfg, p)
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


# keys each section must have (what they are, for the error message)
_REQUIRED = {"dataset": {"name": "the bundled dataset to write"},
             "train": {"data": "the training .npz", "output": "the .keras file to write"},
             "model": {"path": "the trained Keras model"},
             "convert": {"calib": "the calibration .npz", "output": "the .tflite file to write"},
             "emit": {"output": "the directory to write"},
             "validate": {"data": "the labelled .npz to validate on"}}


def _check_sections(cfg: dict, p: Path) -> None:
    for name, keys in _REQUIRED.items():
        tables = cfg.get(name)
        if tables is None:
            continue
        for t in tables if isinstance(tables, list) else [tables]:
            if not isinstance(t, dict):
                raise EdgeRNNError(f"{p}: [{name}] must be a table of keys")
            for key, what in keys.items():
                if key not in t:
                    raise EdgeRNNError(f"{p}: [{name}] needs '{key}' ({what})")
    if cfg.get("convert") and not (cfg.get("train") or cfg.get("model")):
        raise EdgeRNNError(f"{p}: [convert] needs a [train] or [model] section")
    if cfg.get("emit") and not cfg.get("convert"):
        raise EdgeRNNError(f"{p}: [[emit]] needs a [convert] section")
    if cfg.get("validate") and not cfg.get("convert"):
        raise EdgeRNNError(f"{p}: [validate] needs a model and a [convert] section")


def _outputs(cfg: dict) -> list[Path]:
    """Every file or directory the run will write."""
    out = []
    if cfg["dataset"]:
        d = Path(cfg["dataset"].get("output", str(cfg["path"].parent)))
        name = cfg["dataset"]["name"]
        out += [d / f"{name}_train.npz", d / f"{name}_test.npz"]
    for sec in ("train", "convert"):
        if cfg[sec]:
            out.append(Path(cfg[sec]["output"]))
    out += [Path(e["output"]) for e in cfg["emit"]]
    if cfg["validate"]:
        out += [Path(cfg["validate"][k]) for k in ("report", "junit", "markdown") if cfg["validate"].get(k)]
    return out


def _call(fn, where: str, **kwargs):
    try:
        return fn(**kwargs)
    except TypeError as exc:  # an unknown key in the section
        raise EdgeRNNError(f"[{where}]: {exc}") from None
    except EdgeRNNError as exc:
        raise type(exc)(f"[{where}] {exc}") from None


def deploy(config) -> DeployResult:
    """Run the stages the config names; returns what each produced. On bad input nothing the
    run would write is left behind (files and directories that existed before are kept)."""
    import shutil

    cfg = load_config(config)
    fresh = []  # the topmost path each output creates (new directories included)
    for p in _outputs(cfg):
        p = p.absolute()
        if not p.exists():
            while not p.parent.exists():
                p = p.parent
            fresh.append(p)
    try:
        return _run(cfg)
    except EdgeRNNError:
        for p in fresh:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
        raise


def _run(cfg: dict) -> DeployResult:
    from . import convert, emit, train, validate

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
