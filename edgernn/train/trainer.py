"""Train a recurrent classifier or regressor (optionally with a conv front-end) with gradient
clipping and early stopping.

The task follows the labels: integer ``y`` of shape (N,) trains a classifier (softmax head),
integer ``y`` of shape (N, T) a per-step classifier (``return_sequences``), float ``y`` a
regressor (linear head). The model is Keras 3 and saved as ``.keras``; ``edgernn convert``
takes it from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import Dataset, load_dataset
from ..errors import EdgeRNNError
from ..frontend import save_model

log = logging.getLogger(__name__)

CELL_CLASSES = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}


@dataclass
class TrainResult:
    model: object  # keras.Model
    path: Path | None
    epochs_run: int
    history: dict
    task: str  # "classification" | "regression"
    test_metrics: dict = field(default_factory=dict)
    qat: object = None  # edgernn.qat.QATResult when train(..., qat=True)


def _class_count(y: np.ndarray, source: str) -> int:
    """K for class ids 0..K-1; a gap (labels 10..13, or no class 0) would build a head with
    classes that never occur, so it is refused."""
    present = np.unique(y)
    k = int(present[-1]) + 1
    if len(present) != k:
        missing = sorted(set(range(k)) - set(int(v) for v in present))
        shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
        raise EdgeRNNError(f"{source}: class ids must be 0..K-1; 'y' holds {len(present)} classes "
                           f"{int(present[0])}..{k - 1} without {shown}; renumber them first "
                           "(y = np.unique(y, return_inverse=True)[1])")
    return k


def _task(y: np.ndarray, return_sequences: bool, source: str = "labels") -> tuple[str, int]:
    if np.issubdtype(y.dtype, np.integer):
        if y.ndim == 1 and not return_sequences:
            return "classification", _class_count(y, source)
        if y.ndim == 2 and return_sequences:
            return "classification", _class_count(y, source)
        raise EdgeRNNError(f"labels of shape {y.shape} do not fit return_sequences={return_sequences}: "
                           "use y (N,) for one label per sequence, or y (N, T) with --return-sequences")
    outs = 1 if y.ndim == 1 or (y.ndim == 2 and return_sequences) else int(np.prod(y.shape[2 if return_sequences else 1:]))
    return "regression", outs


HEADS = ("last", "gap", "flatten")


def parse_conv(spec) -> tuple[int, int, int]:
    """One ``--conv`` block: ``"FILTERS:KERNEL[:DILATION]"`` (or a 2-3 item sequence) -> (filters,
    kernel, dilation)."""
    parts = spec.split(":") if isinstance(spec, str) else list(spec)
    try:
        vals = [int(p) for p in parts]
    except (TypeError, ValueError):
        vals = []
    if len(vals) not in (2, 3) or min(vals) < 1:
        raise EdgeRNNError(f"--conv {spec!r}: use FILTERS:KERNEL[:DILATION] with positive integers, e.g. --conv 32:5 "
                           "or --conv 32:3:2")
    return vals[0], vals[1], vals[2] if len(vals) == 3 else 1


def _check_front(timesteps, conv, pool: int, head: str, return_sequences: bool) -> list[tuple[int, int, int]]:
    blocks = [parse_conv(c) for c in conv]
    if head not in HEADS:
        raise EdgeRNNError(f"--head {head!r} is not one of {', '.join(HEADS)}")
    if return_sequences and head != "last":
        raise EdgeRNNError(f"--head {head} pools the sequence into one output; per-step labels "
                           "(--return-sequences) need --head last")
    if pool < 1:
        raise EdgeRNNError(f"--pool {pool}: use 1 (no pooling) or more")
    if pool > 1 and return_sequences:
        raise EdgeRNNError(f"--pool {pool} shortens the sequence {pool}x; per-step labels (--return-sequences) "
                           "need --pool 1")
    if pool > 1 and timesteps is not None and pool > timesteps:
        raise EdgeRNNError(f"--pool {pool}: longer than the {timesteps} time steps")
    return blocks


def build_model(timesteps: int | None, features: int, outputs: int, *, cell: str = "lstm", units: int = 32,
                layers: int = 1, bidirectional: bool = False, return_sequences: bool = False,
                task: str = "classification", dropout: float = 0.0, activation: str = "tanh",
                conv=(), causal: bool = False, pool: int = 1, head: str = "last",
                name: str = "edgernn_model"):
    """A Keras 3 model: optional conv blocks, ``layers`` stacked recurrent layers and a Dense head.

    ``conv``: one block per entry, ``"FILTERS:KERNEL[:DILATION]"``: Conv1D (padding ``causal``
    when ``causal``, else ``same``) -> BatchNormalization (folded into the conv at convert
    time) -> ReLU. ``pool``: MaxPooling1D of that size after the conv blocks. ``head``:
    ``last`` (the last recurrent layer's final state), ``gap`` (GlobalAveragePooling1D over its
    sequence) or ``flatten`` (its whole sequence), then the Dense layer.
    """
    import keras

    if cell not in CELL_CLASSES:
        raise EdgeRNNError(f"--cell {cell!r} is not one of {', '.join(CELL_CLASSES)}")
    if not 1 <= layers <= 4:
        raise EdgeRNNError(f"--layers {layers}: use 1 to 4 stacked recurrent layers")
    if units < 1:
        raise EdgeRNNError(f"--units {units}: must be at least 1")
    blocks = _check_front(timesteps, conv, pool, head, return_sequences)
    if head == "flatten" and timesteps is None:
        raise EdgeRNNError("--head flatten needs a fixed number of time steps")
    L = keras.layers
    rnn_cls = getattr(L, CELL_CLASSES[cell])
    inp = keras.Input(shape=(timesteps, features), name="input")
    h = inp
    for i, (filters, kernel, dilation) in enumerate(blocks):
        h = L.Conv1D(filters, kernel, dilation_rate=dilation, padding="causal" if causal else "same",
                     name=f"conv_{i}")(h)
        h = L.BatchNormalization(momentum=0.9, name=f"bn_{i}")(h)  # small datasets: few steps per epoch
        h = L.ReLU(name=f"relu_{i}")(h)
    if pool > 1:
        h = L.MaxPooling1D(pool, name="pool")(h)
    for i in range(layers):
        seq = return_sequences or head != "last" or i < layers - 1
        kw = {"activation": activation} if cell == "rnn" else {}
        layer = rnn_cls(units, return_sequences=seq, name=f"{cell}_{i}", **kw)
        if bidirectional:
            layer = L.Bidirectional(layer, name=f"bi_{cell}_{i}")
        h = layer(h)
        if dropout:
            h = L.Dropout(dropout, name=f"dropout_{i}")(h)
    if head == "gap":
        h = L.GlobalAveragePooling1D(name="gap")(h)
    elif head == "flatten":
        h = L.Flatten(name="flatten")(h)
    act = "softmax" if task == "classification" else "linear"
    out = L.Dense(outputs, activation=act, name="head")(h)
    return keras.Model(inp, out, name=name)


class _RichProgress:
    """A Keras callback drawing one rich progress bar over epochs."""

    def __new__(cls, epochs: int, enabled: bool):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.progress = None
                if enabled:
                    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
                    self.progress = Progress(BarColumn(bar_width=24), TextColumn("{task.fields[info]}"),
                                             TimeElapsedColumn(), transient=False)
                    self.progress.start()
                    self.task = self.progress.add_task("train", total=epochs, info="")

            def on_epoch_end(self, epoch, logs=None):
                if self.progress:
                    logs = logs or {}
                    info = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k in
                                    ("loss", "accuracy", "val_loss", "val_accuracy"))
                    self.progress.update(self.task, advance=1, info=f"epoch {epoch + 1} {info}")

            def on_train_end(self, logs=None):
                if self.progress:
                    self.progress.stop()

        return Callback()


def train(data, *, cell: str = "lstm", units: int = 32, layers: int = 1, bidirectional: bool = False,
          return_sequences: bool = False, clipnorm: float | None = 1.0, epochs: int = 100,
          batch_size: int = 32, learning_rate: float = 3e-3, patience: int = 10, validation_split: float = 0.2,
          seed: int = 0, test=None, output=None, activation: str = "tanh", dropout: float = 0.0,
          progress: bool = True, qat: bool = False, qat_epochs: int = 10, conv=(), causal: bool = False,
          pool: int = 1, head: str = "last", validation=None, callbacks=()) -> TrainResult:
    """Train a model on ``data`` (.npz path or :class:`Dataset`) and save it to ``output``.

    ``conv`` / ``causal`` / ``pool`` / ``head``: a convolutional front-end and the head, see
    :func:`build_model` (e.g. ``conv=["32:5", "32:5"]`` with an LSTM is a DeepConvLSTM).
    ``validation``: a labelled .npz path or :class:`Dataset` to validate on (early stopping, QAT's
    epoch choice) instead of a ``validation_split`` of ``data``; all of ``data`` is then trained on.
    ``callbacks``: extra Keras callbacks for the float training (e.g. a search's per-epoch report).

    ``qat``: after float training, fine-tune ``qat_epochs`` epochs with int8 fake quantization
    (:func:`edgernn.qat.qat_finetune` on the training split, keeping the epoch whose
    int8 model scores best on the validation split, the trained model itself included); the
    saved model is the QAT one.
    """
    import keras

    for opt, value, lo in (("units", units, 1), ("layers", layers, 1), ("epochs", epochs, 1),
                           ("batch-size", batch_size, 1), ("patience", patience, 0), ("seed", seed, 0),
                           ("qat-epochs", qat_epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise EdgeRNNError(f"--{opt} {value!r}: must be a whole number >= {lo}")
    for opt, value in (("lr", learning_rate), ("validation-split", validation_split), ("dropout", dropout),
                       ("clipnorm", 1.0 if clipnorm is None else clipnorm)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value):
            raise EdgeRNNError(f"--{opt} {value!r}: must be a number")
    if learning_rate <= 0:
        raise EdgeRNNError(f"--lr {learning_rate}: the learning rate must be > 0 (e.g. 3e-3)")
    for opt, value, choices in (("cell", cell, tuple(CELL_CLASSES)), ("activation", activation, ("tanh", "relu"))):
        if value not in choices:
            raise EdgeRNNError(f"--{opt} {value!r}: use one of {', '.join(choices)}")
    if output is not None and Path(output).suffix not in (".keras", ".h5"):
        raise EdgeRNNError(f"{output}: the output model file must end in .keras (or .h5)")
    ds = data if isinstance(data, Dataset) else load_dataset(data, require_y=True)
    if ds.y is None:
        raise EdgeRNNError(f"{ds.path}: no labels 'y'; training needs them")
    if not 0.0 <= validation_split < 0.9:
        raise EdgeRNNError(f"--validation-split {validation_split}: use a fraction in [0, 0.9)")
    if clipnorm is not None and clipnorm <= 0:
        raise EdgeRNNError(f"--clipnorm {clipnorm}: must be > 0 (gradient clipping by global norm)")
    task, outputs = _task(ds.y, return_sequences, str(ds.path))
    _check_front(ds.x.shape[1], conv, pool, head, return_sequences)  # before the slow part
    val_ds = None
    if validation is not None:
        val_ds = validation if isinstance(validation, Dataset) else load_dataset(
            validation, require_y=True, features=ds.x.shape[2], timesteps=ds.x.shape[1])
    test_ds = None
    if test is not None:
        test_ds = test if isinstance(test, Dataset) else load_dataset(
            test, require_y=True, features=ds.x.shape[2], timesteps=ds.x.shape[1])

    keras.utils.set_random_seed(seed)
    try:
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
    model = build_model(ds.x.shape[1], ds.x.shape[2], outputs, cell=cell, units=units, layers=layers,
                        bidirectional=bidirectional, return_sequences=return_sequences, task=task,
                        activation=activation, dropout=dropout, conv=conv, causal=causal, pool=pool, head=head)
    opt = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
    if task == "classification":
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    else:
        model.compile(optimizer=opt, loss="mse", metrics=["mae"])

    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(ds.x))
    x, y = ds.x[idx], ds.y[idx]
    n_val = 0 if val_ds is not None else int(round(len(x) * validation_split))
    val = (val_ds.x, val_ds.y) if val_ds is not None else (x[:n_val], y[:n_val]) if n_val > 0 else None
    xt, yt = x[n_val:], y[n_val:]
    callbacks = [_RichProgress(epochs, progress), *callbacks]
    if val is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                       restore_best_weights=True))
    hist = model.fit(xt, yt, validation_data=val, epochs=epochs, batch_size=batch_size, verbose=0,
                     callbacks=callbacks, shuffle=True)
    qat_result = None
    if qat:
        from ..qat import qat_finetune
        qat_result = qat_finetune(model, Dataset(ds.path, xt, yt), epochs=qat_epochs, seed=seed,
                                  val=Dataset(ds.path, *val) if val is not None else None,
                                  batch_size=batch_size, clipnorm=clipnorm)
        model = qat_result.model
        model.compile(loss="sparse_categorical_crossentropy" if task == "classification" else "mse",
                      metrics=["accuracy"] if task == "classification" else ["mae"])
    test_metrics = {}
    if test_ds is not None:
        values = model.evaluate(test_ds.x, test_ds.y, verbose=0, return_dict=True)
        test_metrics = {k: float(v) for k, v in values.items()}
    path = save_model(model, output) if output is not None else None
    return TrainResult(model=model, path=path, epochs_run=len(hist.history.get("loss", [])),
                       history={k: [float(v) for v in vs] for k, vs in hist.history.items()},
                       task=task, test_metrics=test_metrics, qat=qat_result)
