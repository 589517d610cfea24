"""Training speed and memory of the NumPy network, against the BLAS floor and PyTorch.

Prints figures; asserts nothing. Each measurement runs in its own subprocess so
peak RSS and thread settings do not leak between them.

    python bench/train_speed.py            # speed, floor, RSS, PyTorch if installed
    python bench/train_speed.py --accuracy # also a full default-config run (~30 s)
    python bench/train_speed.py --threads 1 --presets  # also the default and Strong presets
                                                       # (dropout, cosine) against their floors

Where an epoch's time goes, part by part: bench/profile_epoch.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (784, 256, 128, 10)
BATCH = 128
THREADS = "2"


def _child(mode: str, epochs: int, preset: str = "") -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": THREADS, "OMP_NUM_THREADS": THREADS,
           "MKL_NUM_THREADS": THREADS, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--epochs", str(epochs),
                          "--threads", THREADS, "--preset", preset],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_rss_mib() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _full_train_dataset():
    """All 60 000 training images as the training split (an epoch = 60 000 samples)."""
    import numpy as np

    from training.data import Dataset, load_fashion_mnist, pixel_mean_std
    raw = load_fashion_mnist()
    mean, std = pixel_mean_std(raw.train_images)
    return Dataset(x_train=raw.train_images, y_train=raw.train_labels.astype(np.int64),
                   x_val=raw.test_images[:256], y_val=raw.test_labels[:256].astype(np.int64),
                   x_test=raw.test_images, y_test=raw.test_labels.astype(np.int64),
                   mean=mean, std=std)


def child_numpy(epochs: int) -> dict:
    from training.config import TrainingConfig
    from training.trainer import fit
    data = _full_train_dataset()
    config = TrainingConfig.from_dict({"hidden_layers": list(SIZES[1:-1]), "optimizer": "adam",
                                       "batch_size": BATCH, "epochs": epochs, "dropout": 0.0,
                                       "lr_schedule": "constant"})
    result = fit(config, data)
    times = [m.seconds for m in result.history]
    return {"epoch_seconds": times, "samples": int(data.x_train.shape[0]), "rss_mib": _peak_rss_mib()}


def child_preset(epochs: int, preset: str) -> dict:
    """Epochs of a preset as the lab trains it (its split, dropout, schedule), validation included."""
    from training.config import PRESETS, TrainingConfig
    from training.data import load_fashion_mnist, prepare_dataset
    from training.trainer import fit
    config = TrainingConfig.from_dict({**PRESETS[preset], "epochs": epochs})
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=config.validation_fraction,
                           seed=config.seed)
    result = fit(config, data)
    return {"epoch_seconds": [m.seconds for m in result.history], "samples": int(data.x_train.shape[0]),
            "sizes": list(config.layer_sizes), "batch": config.batch_size}


def child_floor(epochs: int, sizes=SIZES, n: int = 60000, batch: int = BATCH) -> dict:
    """The same matrix products as one training epoch of `sizes`, nothing else."""
    import numpy as np
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((a, b), dtype=np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    acts = [np.empty((batch, s), np.float32) for s in sizes]
    grads = [np.empty_like(w) for w in weights]
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for _ in range(-(-n // batch)):
            acts[0] = x
            for i, w in enumerate(weights):
                np.matmul(acts[i], w, out=acts[i + 1])
            for i in reversed(range(len(weights))):
                np.matmul(acts[i].T, acts[i + 1], out=grads[i])
                if i > 0:
                    np.matmul(acts[i + 1], weights[i].T, out=acts[i])
        times.append(time.perf_counter() - start)
    return {"epoch_seconds": times}


def child_torch(epochs: int, fused: bool) -> dict:
    import numpy as np
    import torch
    torch.set_num_threads(int(THREADS))
    torch.manual_seed(0)
    data = _full_train_dataset()
    x_all = torch.from_numpy(np.asarray(data.x_train))
    y_all = torch.from_numpy(data.y_train)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU(inplace=True))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None, foreach=None if fused else True)
    loss_fn = torch.nn.CrossEntropyLoss()
    mean, inv_std = data.mean, 1 / data.std
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(x_all.shape[0])
        for i in range(0, x_all.shape[0], BATCH):
            idx = order[i: i + BATCH]
            xb = (x_all[idx].float() - mean) * inv_std
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), y_all[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return {"epoch_seconds": times, "rss_mib": _peak_rss_mib(), "version": torch.__version__}


def child_accuracy(epochs: int) -> dict:
    from training.config import TrainingConfig
    from training.data import load_fashion_mnist, prepare_dataset
    from training.trainer import fit
    config = TrainingConfig()
    data = prepare_dataset(load_fashion_mnist(), validation_fraction=config.validation_fraction,
                           seed=config.seed)
    result = fit(config, data)
    return {"test_accuracy": result.test_accuracy, "best_val_accuracy": result.best_val_accuracy,
            "epochs": result.epochs_run, "seconds": result.seconds, "rss_mib": _peak_rss_mib()}


def child_load(_: int) -> dict:
    from training.data import load_fashion_mnist
    load_fashion_mnist()  # make sure the cache exists; then time a fresh process-level load
    from training.data import clear_memo
    clear_memo()
    start = time.perf_counter()
    raw = load_fashion_mnist()
    int(raw.train_images[-1, -1])  # touch the mapping
    return {"seconds": time.perf_counter() - start}


def main() -> None:
    global THREADS
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--accuracy", action="store_true", help="also train the default config fully")
    parser.add_argument("--presets", action="store_true",
                        help="also time the default and Strong presets against their own floors")
    parser.add_argument("--threads", default=THREADS, help="BLAS threads (workers use 1)")
    parser.add_argument("--preset", default="")
    args = parser.parse_args()
    THREADS = args.threads
    if args.child:
        preset_floor = None
        if args.child == "preset_floor":
            from training.config import PRESETS, TrainingConfig
            config = TrainingConfig.from_dict(PRESETS[args.preset])
            preset_floor = lambda e: child_floor(e, tuple(config.layer_sizes), 54000,  # noqa: E731
                                                 config.batch_size)
        modes = {"numpy": child_numpy, "floor": child_floor, "accuracy": child_accuracy,
                 "preset": lambda e: child_preset(e, args.preset), "preset_floor": preset_floor,
                 "load": child_load,
                 "torch": lambda e: child_torch(e, fused=False),
                 "torch_fused": lambda e: child_torch(e, fused=True)}
        print(json.dumps(modes[args.child](args.epochs)))
        return

    print(f"Tuner training bench: MLP {'-'.join(map(str, SIZES))}, Adam, batch {BATCH}, "
          f"{THREADS} BLAS threads, 60 000 samples/epoch, float32")
    load = _child("load", 1)
    print(f"warm dataset load:          {load.get('seconds', float('nan')) * 1000:.1f} ms")
    numpy_run = _child("numpy", args.epochs)
    floor = _child("floor", args.epochs)
    np_epoch = statistics.median(numpy_run["epoch_seconds"][1:] or numpy_run["epoch_seconds"])
    floor_epoch = statistics.median(floor["epoch_seconds"][1:] or floor["epoch_seconds"])
    print(f"numpy epoch (median):       {np_epoch:.3f} s  ({numpy_run['samples'] / np_epoch:,.0f} samples/s)")
    print(f"numpy peak RSS:             {numpy_run['rss_mib']:.0f} MiB")
    print(f"BLAS floor (matmuls only):  {floor_epoch:.3f} s  -> ratio {np_epoch / floor_epoch:.2f}x")
    for mode, label in (("torch", "PyTorch (foreach Adam)"), ("torch_fused", "PyTorch (fused Adam)")):
        torch_run = _child(mode, args.epochs)
        if "error" in torch_run:
            print(f"{label}: not measured ({torch_run['error']})")
            continue
        t_epoch = statistics.median(torch_run["epoch_seconds"][1:] or torch_run["epoch_seconds"])
        print(f"{label + ' ' + torch_run['version']:27s} {t_epoch:.3f} s, peak RSS "
              f"{torch_run['rss_mib']:.0f} MiB  -> numpy/torch {np_epoch / t_epoch:.2f}x")
    if args.presets:
        for preset in ("default", "strong"):
            run = _child("preset", args.epochs, preset)
            floor = _child("preset_floor", args.epochs, preset)
            if "error" in run or "error" in floor:
                print(f"preset {preset}: not measured ({run.get('error') or floor.get('error')})")
                continue
            epoch = statistics.median(run["epoch_seconds"][1:] or run["epoch_seconds"])
            low = statistics.median(floor["epoch_seconds"][1:] or floor["epoch_seconds"])
            print(f"preset {preset:8s} {'-'.join(map(str, run['sizes']))}, {run['samples']} samples: epoch "
                  f"{epoch:.3f} s (validation included), floor {low:.3f} s -> ratio {epoch / low:.2f}x")
    if args.accuracy:
        acc = _child("accuracy", 0)
        print(f"default config, full data:  test accuracy {acc['test_accuracy']:.4f}, best val "
              f"{acc['best_val_accuracy']:.4f}, {acc['epochs']} epochs in {acc['seconds']:.1f} s, "
              f"peak RSS {acc['rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
