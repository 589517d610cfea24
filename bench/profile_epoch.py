"""Where a training epoch's time goes, against the matrix-product floor for the same shapes.

Prints figures; asserts nothing. For a preset (default: the default config; `--preset strong`)
it times, on the full Fashion-MNIST training split:

- whole epochs of `training.fit` (the per-epoch `seconds` it reports, validation included);
- the same batch loop re-enacted step by step with a timer around each part (gather and
  normalise, forward, loss, backward, gradient norm, optimizer, ...);
- the floor: only the forward and backward matrix products of those shapes (no bias, no
  activation, no optimizer), i.e. what a perfect implementation could not avoid.

    python bench/profile_epoch.py                      # default config, 2 BLAS threads
    python bench/profile_epoch.py --preset strong --threads 1
    python bench/profile_epoch.py --cprofile           # also cProfile one epoch of fit()
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_threads(threads: str) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="default", choices=("default", "strong"))
    parser.add_argument("--threads", default="2")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of fit() to time")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    _setup_threads(args.threads)

    import math
    import statistics
    import time
    from collections import defaultdict

    import numpy as np

    from training.config import PRESETS, TrainingConfig
    from training.data import load_fashion_mnist, prepare_dataset
    from training.losses import SoftmaxCrossEntropy
    from training.optimizers import make_optimizer
    from training.schedules import learning_rate_at
    from training.trainer import build_network, fit

    config = TrainingConfig.from_dict({**PRESETS[args.preset], "epochs": args.epochs})
    started = time.perf_counter()
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=config.validation_fraction,
                           seed=config.seed)
    startup = time.perf_counter() - started
    n_train = data.x_train.shape[0]
    sizes = config.layer_sizes
    batch_size = config.batch_size
    batches = math.ceil(n_train / batch_size)
    print(f"preset {args.preset}: {'-'.join(map(str, sizes))}, {config.optimizer} lr {config.learning_rate}, "
          f"dropout {config.dropout}, {config.lr_schedule}, batch {batch_size}, {n_train} samples, "
          f"{args.threads} BLAS threads")
    print(f"data load + split (start-up):   {startup * 1000:7.1f} ms")

    # Whole epochs through fit().
    start = time.perf_counter()
    result = fit(config, data)
    total = time.perf_counter() - start
    epoch_times = [m.seconds for m in result.history]
    fit_epoch = statistics.median(epoch_times[1:] or epoch_times)
    print(f"fit(): {args.epochs} epochs in {total:.2f} s; epoch min {min(epoch_times):.3f} s, "
          f"median {fit_epoch:.3f} s (validation included)")

    # The floor: forward and backward matrix products only, same shapes and batch count.
    from train_speed import child_floor  # bench/ is this script's directory
    floor_times = child_floor(3, tuple(sizes), n_train, batch_size)["epoch_seconds"]
    floor = min(floor_times)
    floor_median = statistics.median(floor_times)

    # The batch loop, part by part (mirrors training/trainer.py).
    network = build_network(config, np.random.default_rng(config.seed))
    optimizer = make_optimizer(config.optimizer, network.parameter_count, momentum=config.momentum)
    loss_fn = SoftmaxCrossEntropy()
    raw_batch = np.empty((batch_size, sizes[0]), np.uint8)
    float_batch = np.empty((batch_size, sizes[0]), np.float32)
    parts: dict[str, float] = defaultdict(float)
    loop_rng = np.random.default_rng(1)
    clock = time.perf_counter
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t_epoch = clock()
        t = clock()
        order = loop_rng.permutation(n_train)
        parts["shuffle"] += clock() - t
        for batch in range(batches):
            t = clock()
            index = order[batch * batch_size: (batch + 1) * batch_size]
            n = index.shape[0]
            np.take(data.x_train, index, axis=0, out=raw_batch[:n])
            labels = data.y_train[index]
            t2 = clock()
            parts["gather (uint8 rows, labels)"] += t2 - t
            inputs = data.normalize(raw_batch[:n], out=float_batch[:n])
            t = clock()
            parts["normalise to float32"] += t - t2
            lr = learning_rate_at(base_lr=config.learning_rate, schedule=config.lr_schedule,
                                  epochs=config.epochs, epoch=0, fraction=batch / batches,
                                  warmup_epochs=config.warmup_epochs, lr_decay=config.lr_decay)
            t2 = clock()
            parts["learning rate"] += t2 - t
            x_in = inputs
            for layer in network.layers:
                t = clock()
                x_in = layer.forward(x_in, True)
                parts[f"forward {type(layer).__name__}"] += clock() - t
            logits = x_in
            t = clock()
            correct = int(np.count_nonzero(logits.argmax(axis=1) == labels))
            t2 = clock()
            parts["accuracy count"] += t2 - t
            loss = loss_fn.forward(logits, labels)
            dlogits = loss_fn.backward()
            t = clock()
            parts["softmax + cross-entropy"] += t - t2
            dout = dlogits
            for layer in reversed(network.layers):
                t = clock()
                dout = layer.backward(dout)
                parts[f"backward {type(layer).__name__}"] += clock() - t
            t = clock()
            network.add_l2_gradient(config.l2)
            norm = math.sqrt(float(np.dot(network.grad, network.grad)))
            t2 = clock()
            parts["l2 + gradient norm"] += t2 - t
            optimizer.step(network.theta, network.grad, lr)
            parts[f"optimizer {config.optimizer}"] += clock() - t2
            del correct, loss, norm
        loop = clock() - t_epoch

    print(f"\nfloor (GEMMs only):            {floor:.3f} s min, {floor_median:.3f} s median")
    print(f"fit() epoch / floor:           {fit_epoch / floor:.2f}x  (by medians {fit_epoch / floor_median:.2f}x)")
    print(f"\nbatch loop re-enacted:         {loop:.3f} s ({loop / floor:.2f}x floor)")
    for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:30s} {seconds:6.3f} s  {100 * seconds / loop:5.1f} %")
    print(f"  {'(timers, loop overhead)':30s} {loop - sum(parts.values()):6.3f} s")

    if args.cprofile:
        import cProfile
        import pstats
        one = TrainingConfig.from_dict({**PRESETS[args.preset], "epochs": 1})
        profiler = cProfile.Profile()
        profiler.enable()
        fit(one, data)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
