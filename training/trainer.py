"""The training loop: `fit(config, data, on_epoch=..., should_stop=..., checkpoint=...)`.

One small interface drives every caller (CLI, Celery worker, sweeps, tests):

- `on_epoch(EpochMetrics)` after every epoch (the worker persists and publishes it);
- `on_batch(epoch, batch, batches)` after every mini-batch (progress bars);
- `should_stop()` between mini-batches: returning True cancels within one batch;
- `checkpoint`: a `.npz` path written atomically after every epoch and, when it
  already exists, resumed from; or any `training.checkpoint.CheckpointStore` (an object
  with `save(bytes)` / `load() -> bytes | None`, e.g. the server's object-store one). Weights, optimizer state, RNG state and the
  early-stopping bookkeeping are all in it, so a resumed run reproduces the
  uninterrupted run's metrics exactly.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.checkpoint import CheckpointStore, checkpoint_store
from training.config import TrainingConfig
from training.data import Dataset
from training.losses import SoftmaxCrossEntropy
from training.network import Network
from training.optimizers import clip_by_global_norm, make_optimizer
from training.schedules import learning_rate_at

NUM_CLASSES = 10
EVAL_CHUNK = 2048
# A run has diverged when a batch loss is NaN/inf, or when a whole epoch's mean
# training loss exceeds 4x the loss of uniform guessing (4 * ln 10 = 9.2): the
# network is then far worse than knowing nothing, and more epochs will not help.
DIVERGENCE_LOSS_FACTOR = 4.0


class Outcome(str, enum.Enum):
    COMPLETED = "completed"
    EARLY_STOPPED = "early_stopped"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"


@dataclass
class EpochMetrics:
    """What one epoch produced. `epoch` is 1-based."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float
    samples_per_second: float
    gradient_norm: float  # mean global gradient norm over the epoch's batches, before clipping
    gradient_norm_max: float
    dead_unit_fraction: float  # hidden units inactive on every validation sample

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The per-epoch metric names, in order: every EpochMetrics field but the epoch number.
# What stores, serves or prints an epoch's metrics reads this list rather than its own copy.
METRIC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EpochMetrics) if f.name != "epoch")


@dataclass
class FitResult:
    outcome: Outcome
    epochs_run: int
    best_epoch: int | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    test_loss: float | None
    confusion_matrix: list[list[int]] | None  # [true class][predicted class]
    per_class_accuracy: list[float] | None
    history: list[EpochMetrics]
    seconds: float
    network: Network = field(repr=False)
    message: str = ""  # why the run ended early (divergence details, early stop epoch)
    resumed_from_epoch: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no weights)."""
        return {
            "outcome": self.outcome.value,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_accuracy": self.best_val_accuracy,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion_matrix,
            "seconds": round(self.seconds, 3),
            "message": self.message,
            "resumed_from_epoch": self.resumed_from_epoch,
        }


class CheckpointError(Exception):
    """A checkpoint exists but cannot be used for this run."""


@dataclass
class _State:
    """Everything beyond the weights that must survive a checkpoint."""

    epoch: int = 0  # epochs completed
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    epochs_without_improvement: int = 0
    history: list[EpochMetrics] = field(default_factory=list)
    stopped: str = ""  # Outcome value when the run ended early (early stop / divergence)
    message: str = ""


def build_network(config: TrainingConfig, rng: np.random.Generator, dtype=np.float32) -> Network:
    return Network(config.layer_sizes, activation=config.activation, dropout=config.dropout,
                   rng=rng, dtype=dtype)


def evaluate(network: Network, data: Dataset, images: np.ndarray, labels: np.ndarray,
             *, track_dead_units: bool = False) -> tuple[float, float, np.ndarray, float]:
    """(mean loss, accuracy, predictions (n,), dead-unit fraction) in chunks of EVAL_CHUNK.

    images: uint8 (n, 784); labels: int (n,).
    """
    n = images.shape[0]
    predictions = np.empty(n, dtype=np.int64)
    buffer = np.empty((min(n, EVAL_CHUNK), images.shape[1]), np.float32)
    loss_fn = SoftmaxCrossEntropy()
    total_loss = 0.0
    alive = [np.zeros(d.n_out, bool) for d in network.dense[:-1]] if track_dead_units else None
    for start in range(0, n, EVAL_CHUNK):
        stop = min(start + EVAL_CHUNK, n)
        chunk = data.normalize(images[start:stop], out=buffer[: stop - start])
        logits = network.forward(chunk, training=False)
        predictions[start:stop] = logits.argmax(axis=1)
        total_loss += loss_fn.forward(logits, labels[start:stop]) * (stop - start)
        if alive is not None:
            for mask, act in zip(alive, network.activations):
                mask |= ~act.dead_units()
    accuracy = float(np.mean(predictions == labels)) if n else 0.0
    dead = 0.0
    if alive:
        dead = float(sum((~m).sum() for m in alive) / sum(m.size for m in alive))
    return total_loss / max(n, 1), accuracy, predictions, dead


def evaluate_on_test_set(network: Network, data: Dataset) -> tuple[float, float, list[list[int]], list[float]]:
    """(test loss, test accuracy, confusion matrix [true][predicted], per-class accuracy) of `network`."""
    test_loss, test_accuracy, predictions, _ = evaluate(network, data, data.x_test, data.y_test)
    counts = confusion_matrix(data.y_test, predictions)
    return test_loss, test_accuracy, counts.tolist(), (np.diag(counts) / np.maximum(counts.sum(axis=1), 1)).tolist()


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, k: int = NUM_CLASSES) -> np.ndarray:
    """(k, k) counts, rows = true class, columns = predicted class."""
    return np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)


def _save_checkpoint(store: CheckpointStore, config: TrainingConfig, network: Network, optimizer,
                     rng: np.random.Generator, state: _State, best_theta: np.ndarray | None) -> None:
    arrays = {f"opt_{k}": v for k, v in optimizer.state_dict().items()}
    arrays["theta"] = network.theta
    if best_theta is not None:
        arrays["best_theta"] = best_theta
    meta = {
        "config": config.to_dict(),
        "rng": rng.bit_generator.state,
        "epoch": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_accuracy": state.best_val_accuracy,
        "epochs_without_improvement": state.epochs_without_improvement,
        "history": [m.to_dict() for m in state.history],
        "stopped": state.stopped,
        "message": state.message,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    store.save(buffer.getvalue())  # replaced whole: a crash mid-write never leaves a torn checkpoint


def _load_checkpoint(data: bytes, path: Any, config: TrainingConfig, network: Network, optimizer,
                     rng: np.random.Generator) -> tuple[_State, np.ndarray | None]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta["config"] != config.to_dict():
                raise CheckpointError(f"checkpoint {path} was written for a different configuration")
            network.theta[...] = stored["theta"]
            optimizer.load_state_dict(
                {k[4:]: stored[k] for k in stored.files if k.startswith("opt_")}
            )
            best_theta = stored["best_theta"].copy() if "best_theta" in stored.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable: {exc}") from exc
    rng.bit_generator.state = meta["rng"]
    state = _State(
        epoch=meta["epoch"],
        best_epoch=meta["best_epoch"],
        best_val_accuracy=meta["best_val_accuracy"],
        epochs_without_improvement=meta["epochs_without_improvement"],
        history=[EpochMetrics(**m) for m in meta["history"]],
        stopped=meta.get("stopped", ""),
        message=meta.get("message", ""),
    )
    return state, best_theta


def load_network_from_checkpoint(path: str | Path) -> tuple[TrainingConfig, Network]:
    """The network stored in a checkpoint (its current weights), for inference."""
    with np.load(path, allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        config = TrainingConfig.from_dict(meta["config"])
        network = build_network(config, np.random.default_rng(0))
        network.theta[...] = stored["theta"]
    return config, network


def fit(
    config: TrainingConfig,
    data: Dataset,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_batch: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint: str | Path | CheckpointStore | None = None,
) -> FitResult:
    """Train a network for `config` on `data` (see the module docstring)."""
    # A diverging run overflows float32 on purpose; divergence is detected and reported.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _fit(config, data, on_epoch=on_epoch, on_batch=on_batch, should_stop=should_stop,
                    checkpoint=checkpoint)


def _fit(config, data, *, on_epoch, on_batch, should_stop, checkpoint) -> FitResult:
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    network = build_network(config, rng)
    optimizer = make_optimizer(config.optimizer, network.parameter_count, momentum=config.momentum)
    loss_fn = SoftmaxCrossEntropy()
    state = _State()
    best_theta: np.ndarray | None = None
    store = checkpoint_store(checkpoint)
    stored = store.load() if store is not None else None
    if stored is not None:
        state, best_theta = _load_checkpoint(stored, store, config, network, optimizer, rng)
    resumed_from = state.epoch

    n_train = data.x_train.shape[0]
    batch_size = min(config.batch_size, n_train)
    batches = math.ceil(n_train / batch_size)
    raw_batch = np.empty((batch_size, data.x_train.shape[1]), np.uint8)
    float_batch = np.empty((batch_size, data.x_train.shape[1]), np.float32)
    divergence_limit = DIVERGENCE_LOSS_FACTOR * math.log(NUM_CLASSES)
    # A checkpoint of a run that already stopped early resumes as stopped.
    outcome = Outcome(state.stopped) if state.stopped else Outcome.COMPLETED
    message = state.message

    def finish_early(new_outcome: Outcome, text: str) -> None:
        nonlocal outcome, message
        outcome, message = new_outcome, text
        if new_outcome is not Outcome.CANCELLED:
            state.stopped, state.message = new_outcome.value, text

    while state.epoch < config.epochs and outcome is Outcome.COMPLETED:
        epoch_started = time.perf_counter()
        order = rng.permutation(n_train)
        loss_sum = 0.0
        correct = 0
        seen = 0
        norm_sum = 0.0
        norm_max = 0.0
        lr = config.learning_rate
        for batch in range(batches):
            if should_stop is not None and should_stop():
                finish_early(Outcome.CANCELLED, f"cancelled during epoch {state.epoch + 1}")
                break
            index = order[batch * batch_size: (batch + 1) * batch_size]
            n = index.shape[0]
            np.take(data.x_train, index, axis=0, out=raw_batch[:n])
            inputs = data.normalize(raw_batch[:n], out=float_batch[:n])
            labels = data.y_train[index]
            lr = learning_rate_at(
                base_lr=config.learning_rate, schedule=config.lr_schedule, epochs=config.epochs,
                epoch=state.epoch, fraction=batch / batches, warmup_epochs=config.warmup_epochs,
                lr_decay=config.lr_decay,
            )
            logits = network.forward(inputs, training=True)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == labels))
            loss = loss_fn.forward(logits, labels)
            if not math.isfinite(loss):
                finish_early(Outcome.DIVERGED,
                             f"training loss became {loss} at epoch {state.epoch + 1}, batch {batch + 1}")
                break
            loss_sum += loss * n
            seen += n
            network.backward(loss_fn.backward())
            network.add_l2_gradient(config.l2)
            norm = math.sqrt(float(np.dot(network.grad, network.grad)))
            if not math.isfinite(norm):
                finish_early(Outcome.DIVERGED,
                             f"gradient norm became {norm} at epoch {state.epoch + 1}, batch {batch + 1}")
                break
            norm_sum += norm
            norm_max = max(norm_max, norm)
            clip_by_global_norm(network.grad, config.gradient_clip, norm)
            optimizer.step(network.theta, network.grad, lr)
            if on_batch is not None:
                on_batch(state.epoch + 1, batch + 1, batches)
        if outcome is not Outcome.COMPLETED:
            break

        train_seconds = time.perf_counter() - epoch_started
        val_loss, val_accuracy, _, dead = evaluate(
            network, data, data.x_val, data.y_val, track_dead_units=True
        )
        state.epoch += 1
        metrics = EpochMetrics(
            epoch=state.epoch,
            train_loss=loss_sum / seen,
            train_accuracy=correct / seen,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            learning_rate=lr,
            seconds=time.perf_counter() - epoch_started,
            samples_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
            gradient_norm=norm_sum / batches,
            gradient_norm_max=norm_max,
            dead_unit_fraction=dead,
        )
        state.history.append(metrics)
        if state.best_val_accuracy is None or val_accuracy > state.best_val_accuracy:
            state.best_val_accuracy, state.best_epoch = val_accuracy, state.epoch
            state.epochs_without_improvement = 0
            if config.early_stopping_patience > 0:
                best_theta = network.theta.copy()
        else:
            state.epochs_without_improvement += 1

        if not math.isfinite(val_loss) or metrics.train_loss > divergence_limit:
            finish_early(Outcome.DIVERGED,
                         f"epoch {state.epoch} mean training loss {metrics.train_loss:.3g} exceeds "
                         f"{divergence_limit:.3g} (4x the loss of uniform guessing)")
        elif 0 < config.early_stopping_patience <= state.epochs_without_improvement:
            finish_early(Outcome.EARLY_STOPPED,
                         f"no validation improvement for {state.epochs_without_improvement} epochs; "
                         f"restored the weights of epoch {state.best_epoch}")
        # Report before checkpointing: if the process dies in between, the resumed run
        # recomputes this epoch (deterministically) and reports it again, so a consumer
        # that upserts by epoch never misses one.
        if on_epoch is not None:
            on_epoch(metrics)
        if store is not None:
            _save_checkpoint(store, config, network, optimizer, rng, state, best_theta)

    if best_theta is not None and outcome in (Outcome.COMPLETED, Outcome.EARLY_STOPPED):
        network.theta[...] = best_theta

    test_accuracy = test_loss = matrix = per_class = None
    if outcome in (Outcome.COMPLETED, Outcome.EARLY_STOPPED):
        test_loss, test_accuracy, matrix, per_class = evaluate_on_test_set(network, data)

    return FitResult(
        outcome=outcome,
        epochs_run=state.epoch,
        best_epoch=state.best_epoch,
        best_val_accuracy=state.best_val_accuracy,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        confusion_matrix=matrix,
        per_class_accuracy=per_class,
        history=state.history,
        seconds=time.perf_counter() - started,
        network=network,
        message=message,
        resumed_from_epoch=resumed_from,
    )
