"""Inference on a finished run's stored weights: predictions, misclassified test images, filters.

A run's weights file (`Experiment.weights_path`: a name in the artifact storage,
experiments/storage.py; an .npz with W0, b0, W1, b1, ... and class_names) holds the
parameters only. The inputs must be normalised as in training,
with the pixel mean and standard deviation of *that run's* training split, so those are
recomputed from the run's config (validation_fraction, seed, train_size) with
`training.data.prepare_dataset` and memoised (two floats per distinct split).

Per process, the last few loaded networks are kept (keyed by run id and the weights file's
name, size and modification time, so a replaced file is reloaded). Networks reuse internal buffers in
`forward`, so every use of one holds its lock. The misclassified test images are computed
once, by the worker when the run ends (`compute_misclassified`, called by
experiments/services/inspection.py, which stores them on the run); the web only reads them.

Errors are `experiments.errors.ServiceError` subclasses, so the API answers them with their
status code and {"detail": message}: no weights (409), weights file gone (404),
weights that do not fit the run's network (409), dataset unavailable (503).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from experiments import storage
from experiments.errors import InvalidState, NotFound, Unavailable
from experiments.models import Experiment
from training.config import ConfigError, TrainingConfig
from training.data import CLASS_NAMES, N_PIXELS, Dataset, DatasetError, load_fashion_mnist, prepare_dataset
from training.network import Network
from training.trainer import EVAL_CHUNK, build_network

MODEL_CACHE_SIZE = 4


@dataclass(eq=False)
class LoadedModel:
    """A run's network with the normalisation of its training split."""

    experiment_id: int
    network: Network
    normalizer: Dataset  # only .normalize (mean/std) is used
    class_names: tuple[str, ...]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def first_layer(self) -> np.ndarray:
        """W0, shape (784, units)."""
        return self.network.dense[0].params["W"]

    def logits_and_proba(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (n, 784) -> (logits (n, k), probabilities (n, k)), in chunks like the trainer's evaluate."""
        n = pixels.shape[0]
        k = self.network.sizes[-1]
        logits = np.empty((n, k), np.float32)
        buffer = np.empty((min(max(n, 1), EVAL_CHUNK), pixels.shape[1]), np.float32)
        with self.lock:
            for start in range(0, n, EVAL_CHUNK):
                stop = min(start + EVAL_CHUNK, n)
                chunk = self.normalizer.normalize(pixels[start:stop], out=buffer[: stop - start])
                logits[start:stop] = self.network.forward(chunk, training=False)
        shifted = logits - logits.max(axis=1, keepdims=True)
        np.exp(shifted, out=shifted)
        shifted /= shifted.sum(axis=1, keepdims=True)
        return logits, shifted


@dataclass(frozen=True)
class Misclassified:
    """The test images a run gets wrong, most confidently wrong first."""

    indices: np.ndarray      # int64 (m,), into the test set
    true: np.ndarray         # int64 (m,)
    predicted: np.ndarray    # int64 (m,)
    confidence: np.ndarray   # float32 (m,), probability of the predicted class
    test_count: int
    class_names: tuple[str, ...]


class _LruCache:
    """A small per-process least-recently-used cache; the value is computed outside the lock."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()

    def get_or_compute(self, key, compute):
        with _lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                return value
        value = compute()
        with _lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with _lock:
            self._items.clear()


_lock = threading.Lock()
_models = _LruCache(MODEL_CACHE_SIZE)
_stats: dict[tuple, tuple[float, float]] = {}


def clear_caches() -> None:
    _models.clear()
    with _lock:
        _stats.clear()


# --------------------------------------------------------------------------- data


def _raw():
    try:
        # Never download inside a request: the workers that trained the run have the files.
        return load_fashion_mnist(download=False)
    except DatasetError as exc:
        raise Unavailable(f"The Fashion-MNIST data is not available on this server: {exc}") from None


def test_set() -> tuple[np.ndarray, np.ndarray]:
    """The test images uint8 (n, 784) and labels int64 (n,)."""
    raw = _raw()
    return raw.test_images, np.asarray(raw.test_labels).astype(np.int64)


def test_count() -> int:
    return int(_raw().test_images.shape[0])


def _normalizer(config: TrainingConfig) -> Dataset:
    key = (config.validation_fraction, config.seed, config.train_size)
    with _lock:
        stats = _stats.get(key)
    if stats is None:
        try:
            data = prepare_dataset(_raw(), validation_fraction=config.validation_fraction, seed=config.seed,
                                   train_size=config.train_size)
        except DatasetError as exc:
            raise Unavailable(f"Cannot rebuild this run's training split: {exc}") from None
        stats = (data.mean, data.std)
        with _lock:
            _stats[key] = stats
    empty = np.empty((0, N_PIXELS), np.uint8)
    labels = np.empty(0, np.int64)
    return Dataset(x_train=empty, y_train=labels, x_val=empty, y_val=labels, x_test=empty, y_test=labels,
                   mean=stats[0], std=stats[1])


# --------------------------------------------------------------------------- models


def _cache_key(experiment: Experiment) -> tuple:
    if not experiment.weights_path:
        raise InvalidState(
            f"Run #{experiment.pk} has no weights (it is {experiment.status}; weights are stored when a "
            "run succeeds), so it cannot be inspected or asked for predictions.")
    name = storage.name_of(experiment.weights_path)
    info = storage.stat(name) if name else None
    if info is None:
        raise NotFound(f"The weights file of run #{experiment.pk} is missing.")
    return (experiment.pk, name, *info)


def load_model(experiment: Experiment) -> LoadedModel:
    """The run's network with its stored weights (cached per process)."""
    return _models.get_or_compute(_cache_key(experiment), lambda: _load(experiment))


def _load(experiment: Experiment) -> LoadedModel:
    try:
        config = TrainingConfig.from_dict(experiment.config)
    except ConfigError as exc:
        raise InvalidState(f"Run #{experiment.pk} has an invalid configuration: {exc}") from None
    data = storage.read_bytes(storage.name_of(experiment.weights_path))
    if data is None:
        raise NotFound(f"The weights file of run #{experiment.pk} is missing.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            weights = {name: stored[name] for name in stored.files if name[:1] in "Wb" and name[1:].isdigit()}
            names = tuple(str(n) for n in stored["class_names"]) if "class_names" in stored.files else CLASS_NAMES
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidState(f"The weights file of run #{experiment.pk} is unreadable: {exc}") from None
    network = build_network(config, np.random.default_rng(0))
    try:
        network.load_weights(weights)
    except ValueError as exc:
        raise InvalidState(f"The weights of run #{experiment.pk} do not fit its network: {exc}") from None
    if len(names) != network.sizes[-1]:
        names = CLASS_NAMES
    return LoadedModel(experiment_id=experiment.pk, network=network, normalizer=_normalizer(config),
                       class_names=names)


# --------------------------------------------------------------------------- queries


def predict(experiment: Experiment, pixels: np.ndarray) -> np.ndarray:
    """Class probabilities (k,) float for one image of 784 pixel values 0..255."""
    model = load_model(experiment)
    image = np.clip(np.rint(np.asarray(pixels, dtype=np.float64)), 0, 255).astype(np.uint8).reshape(1, N_PIXELS)
    _, proba = model.logits_and_proba(image)
    return proba[0]


def compute_misclassified(experiment: Experiment) -> Misclassified:
    """Every test image the run's stored network gets wrong: the network over the whole test set.

    Not cached, and the network is loaded outside the model cache: the worker calls this once
    per run, when it ends, and need not keep the network.
    """
    _cache_key(experiment)  # no weights: 409; weights file gone: 404
    model = _load(experiment)
    images, labels = test_set()
    logits, proba = model.logits_and_proba(images)
    predictions = logits.argmax(axis=1)  # as the trainer's evaluate: argmax of the logits
    wrong = np.flatnonzero(predictions != labels)
    confidence = proba[wrong, predictions[wrong]]
    order = np.lexsort((wrong, -confidence))  # most confidently wrong first, then by index
    return Misclassified(indices=wrong[order].astype(np.int64), true=labels[wrong][order],
                         predicted=predictions[wrong][order].astype(np.int64),
                         confidence=confidence[order].astype(np.float32), test_count=len(labels),
                         class_names=model.class_names)


def first_layer_filters(experiment: Experiment, limit: int) -> tuple[np.ndarray, int]:
    """(uint8 (min(limit, units), 784), units): W0's columns, each min-max scaled to 0..255."""
    model = load_model(experiment)
    weights = model.first_layer  # (784, units)
    units = weights.shape[1]
    columns = np.asarray(weights[:, :limit], dtype=np.float64).T  # (n, 784)
    low = columns.min(axis=1, keepdims=True)
    span = columns.max(axis=1, keepdims=True) - low
    scaled = np.where(span > 0, (columns - low) / np.where(span > 0, span, 1.0) * 255.0, 127.5)
    return np.rint(scaled).astype(np.uint8), units
