"""The evaluation set: deliberately flawed configurations and healthy controls, as data.

Each `Case` names the problem it was built to show (`expected`, a recommender kind where one
exists; "over_regularisation" and "batch_size" got their rules after the baseline) and a
complete config fragment valid under `training.config.TrainingConfig`. Every case runs on each
of its seeds (the config's `seed`). Cases on more than `LARGE_TRAIN_SIZE` images are `large`:
`evaluate_recommender --quick` skips them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HEALTHY = "healthy"
SEEDS = (11, 12, 13)
LARGE_TRAIN_SIZE = 10_000

# Problem families of the issue -> the expected kind that stands for each.
FAMILIES: dict[str, str] = {
    "divergence": "divergence",
    "rate too high": "lr_too_high",
    "rate too low": "lr_too_low",
    "under-capacity": "underfitting",
    "over-regularisation": "over_regularisation",
    "overfitting": "overfitting",
    "too few epochs": "more_epochs",
    "plateau": "plateau",
    "instability": "instability",
    "dead units": "dead_units",
    "batch-size effects": "batch_size",
}

# Shared by every case unless it overrides them: no schedule, no dropout, a 20 % validation split.
BASE: dict[str, Any] = {"lr_schedule": "constant", "dropout": 0.0, "validation_fraction": 0.2}


@dataclass(frozen=True)
class Case:
    id: str
    expected: str
    what: str
    config: dict[str, Any]
    seeds: tuple[int, ...] = SEEDS
    large: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "large", (self.config.get("train_size") or 60_000) > LARGE_TRAIN_SIZE)

    def run_config(self, seed: int) -> dict[str, Any]:
        return {**self.config, "seed": seed}


def _case(case_id: str, expected: str, what: str, **config: Any) -> Case:
    return Case(case_id, expected, what, {**BASE, **config})


def _net(optimizer: str, rate: float, layers: list[int], activation: str, size: int, epochs: int,
         batch: int) -> dict[str, Any]:
    return {"optimizer": optimizer, "learning_rate": rate, "hidden_layers": layers, "activation": activation,
            "train_size": size, "epochs": epochs, "batch_size": batch}


CASES: tuple[Case, ...] = (
    # divergence
    _case("div-sgd-5", "divergence", "SGD at a rate of 5",
          **_net("sgd", 5.0, [128], "relu", 6000, 8, 64)),
    _case("div-momentum-tanh-1", "divergence", "momentum at 1.0 on a tanh net",
          **_net("momentum", 1.0, [64, 32], "tanh", 3000, 6, 32)),
    _case("div-adam-leaky-0.5", "divergence", "Adam at 0.5, three leaky layers",
          **_net("adam", 0.5, [256, 128, 64], "leaky_relu", 4000, 6, 128)),
    _case("div-rmsprop-0.3", "divergence", "RMSprop at 0.3",
          **_net("rmsprop", 0.3, [128, 64], "relu", 2000, 5, 256)),
    # rate too high
    _case("high-adam-0.03", "lr_too_high", "Adam at 0.03: oscillating loss",
          **_net("adam", 0.03, [256, 128], "relu", 6000, 10, 128)),
    _case("high-rmsprop-tanh-0.008", "lr_too_high", "RMSprop at 0.008 on tanh",
          **_net("rmsprop", 0.008, [128], "tanh", 5000, 10, 64)),
    _case("high-sgd-leaky-0.5", "lr_too_high", "SGD at 0.5 with small batches",
          **_net("sgd", 0.5, [128, 64], "leaky_relu", 4000, 10, 32)),
    _case("high-momentum-0.2", "lr_too_high", "momentum at 0.2",
          **_net("momentum", 0.2, [256], "relu", 8000, 8, 64)),
    # rate too low
    _case("low-sgd-1e-4", "lr_too_low", "SGD at 1e-4: the loss barely moves",
          **_net("sgd", 1e-4, [256, 128], "relu", 6000, 8, 128)),
    _case("low-adam-tanh-1e-6", "lr_too_low", "Adam at 1e-6",
          **_net("adam", 1e-6, [128], "tanh", 3000, 6, 64)),
    _case("low-momentum-leaky-1e-5", "lr_too_low", "momentum at 1e-5, big batches",
          **_net("momentum", 1e-5, [256, 128, 64], "leaky_relu", 4000, 8, 256)),
    _case("low-rmsprop-3e-7", "lr_too_low", "RMSprop at 3e-7",
          **_net("rmsprop", 3e-7, [64], "relu", 2000, 10, 32)),
    # under-capacity
    _case("cap-adam-4", "underfitting", "a 4-unit hidden layer",
          **_net("adam", 0.003, [4], "relu", 6000, 10, 128)),
    _case("cap-adam-tanh-8", "underfitting", "a tanh bottleneck of 8 units",
          **_net("adam", 0.003, [8], "tanh", 6000, 10, 128)),
    _case("cap-momentum-leaky-3", "underfitting", "a 3-unit middle layer",
          **_net("momentum", 0.01, [64, 3, 64], "leaky_relu", 5000, 12, 64)),
    _case("cap-rmsprop-6x6", "underfitting", "two 6-unit layers",
          **_net("rmsprop", 0.001, [6, 6], "relu", 10000, 12, 128)),
    # over-regularisation
    _case("reg-adam-l2-0.1", "over_regularisation", "L2 of 0.1",
          **_net("adam", 0.001, [256, 128], "relu", 6000, 10, 128), l2=0.1),
    _case("reg-momentum-dropout-0.8", "over_regularisation", "dropout 0.8 on one layer",
          **{**_net("momentum", 0.01, [128], "relu", 4000, 10, 64), "dropout": 0.8}),
    _case("reg-rmsprop-tanh-both", "over_regularisation", "L2 0.05 and dropout 0.5 on tanh",
          **{**_net("rmsprop", 0.001, [256, 128, 64], "tanh", 5000, 10, 128), "l2": 0.05, "dropout": 0.5}),
    _case("reg-sgd-leaky-l2-0.3", "over_regularisation", "L2 of 0.3 with SGD",
          **_net("sgd", 0.05, [128, 64], "leaky_relu", 3000, 12, 32), l2=0.3),
    # overfitting
    _case("fit-adam-wide", "overfitting", "a wide net, no regularisation, many epochs",
          **_net("adam", 0.001, [1024, 512], "relu", 3000, 30, 128)),
    _case("fit-momentum-1000-60", "overfitting", "1 000 images for 60 epochs",
          **_net("momentum", 0.01, [512, 256], "relu", 1000, 60, 32)),
    _case("fit-rmsprop-tanh", "overfitting", "a wide tanh layer on 2 000 images",
          **_net("rmsprop", 0.0005, [512], "tanh", 2000, 40, 64)),
    _case("fit-adam-leaky-3", "overfitting", "three wide leaky layers on 2 000 images",
          **_net("adam", 0.001, [512, 512, 256], "leaky_relu", 2000, 40, 32)),
    # too few epochs
    _case("few-momentum-4", "more_epochs", "stopped after 4 epochs while improving",
          **_net("momentum", 0.005, [256, 128], "relu", 6000, 4, 128)),
    _case("few-sgd-60000-2", "more_epochs", "all 60 000 images, 2 epochs of slow SGD",
          **_net("sgd", 0.01, [128], "relu", 60000, 2, 128)),
    _case("few-adam-tanh-3", "more_epochs", "3 epochs of Adam at 3e-4",
          **_net("adam", 0.0003, [128, 64], "tanh", 10000, 3, 256)),
    _case("few-rmsprop-leaky-5", "more_epochs", "5 epochs of RMSprop at 1e-4",
          **_net("rmsprop", 0.0001, [256], "leaky_relu", 8000, 5, 64)),
    # plateau
    _case("flat-sgd-16", "plateau", "tiny noisy batches at a constant rate",
          **_net("sgd", 0.1, [256, 128], "relu", 6000, 20, 16)),
    _case("flat-adam-32", "plateau", "Adam at a constant 0.002 for 25 epochs",
          **_net("adam", 0.002, [256, 128], "relu", 5000, 25, 32)),
    _case("flat-momentum-tanh-16", "plateau", "momentum at a constant 0.05, batches of 16",
          **_net("momentum", 0.05, [128], "tanh", 4000, 20, 16)),
    _case("flat-rmsprop-leaky", "plateau", "RMSprop at a constant 0.002, three layers",
          **_net("rmsprop", 0.002, [128, 128, 128], "leaky_relu", 3000, 20, 32)),
    # instability
    _case("spiky-rmsprop-0.01", "instability", "RMSprop at 0.01 without warm-up",
          **_net("rmsprop", 0.01, [256, 128], "relu", 6000, 8, 128)),
    _case("spiky-adam-leaky-3", "instability", "Adam at 0.01, three layers, no warm-up",
          **_net("adam", 0.01, [256, 256, 256], "leaky_relu", 5000, 8, 32)),
    _case("spiky-sgd-tanh-deep", "instability", "SGD at 0.3 through three tanh layers",
          **_net("sgd", 0.3, [512, 256, 128], "tanh", 4000, 8, 16)),
    _case("spiky-momentum-0.99", "instability", "momentum 0.99 at a rate of 0.1",
          **_net("momentum", 0.1, [128], "relu", 6000, 10, 64), momentum=0.99),
    # dead units
    _case("dead-momentum-32", "dead_units", "a narrow ReLU net, momentum, tiny batches",
          **_net("momentum", 0.05, [32], "relu", 6000, 8, 16)),
    _case("dead-sgd-0.5", "dead_units", "SGD at 0.5 on two ReLU layers",
          **_net("sgd", 0.5, [64, 64], "relu", 4000, 8, 16)),
    _case("dead-adam-0.02", "dead_units", "Adam at 0.02 on a funnel of ReLUs",
          **_net("adam", 0.02, [128, 64, 32], "relu", 5000, 10, 32)),
    _case("dead-rmsprop-tanh", "dead_units", "saturated tanh units under RMSprop at 0.01",
          **_net("rmsprop", 0.01, [64], "tanh", 3000, 10, 16)),
    # batch-size effects
    _case("batch-sgd-1024", "batch_size", "batches of 1 024 with plain SGD: few, timid steps",
          **_net("sgd", 0.01, [256, 128], "relu", 10000, 10, 1024)),
    _case("batch-momentum-30000", "batch_size", "30 000 images in batches of 1 024 for 5 epochs",
          **_net("momentum", 0.01, [256], "relu", 30000, 5, 1024)),
    _case("batch-adam-tanh-16", "batch_size", "batches of 16 at Adam's 0.003: noisy steps",
          **_net("adam", 0.003, [128], "tanh", 4000, 10, 16)),
    _case("batch-adam-leaky-512", "batch_size", "batches of 512 on 800 training images: 2 steps an epoch",
          **_net("adam", 0.001, [64], "leaky_relu", 1000, 10, 512)),
    # healthy controls
    _case("ok-adam", HEALTHY, "Adam 1e-3, cosine, dropout 0.2",
          **_net("adam", 0.001, [256, 128], "relu", 6000, 15, 128), lr_schedule="cosine", dropout=0.2),
    _case("ok-momentum-tanh", HEALTHY, "momentum 0.01 on tanh, cosine",
          **_net("momentum", 0.01, [256], "tanh", 6000, 15, 64), lr_schedule="cosine"),
    _case("ok-sgd-leaky-step", HEALTHY, "SGD 0.05, step decay",
          **_net("sgd", 0.05, [256, 128], "leaky_relu", 5000, 15, 32), lr_schedule="step"),
    _case("ok-rmsprop-3", HEALTHY, "RMSprop 5e-4, three layers, cosine",
          **_net("rmsprop", 0.0005, [128, 64, 32], "relu", 8000, 12, 128), lr_schedule="cosine"),
    _case("ok-adam-leaky-3", HEALTHY, "Adam, three leaky layers, dropout 0.2, cosine",
          **_net("adam", 0.001, [256, 128, 64], "leaky_relu", 10000, 12, 256), lr_schedule="cosine",
          dropout=0.2),
    _case("ok-adam-60000", HEALTHY, "all 60 000 images, Adam, cosine",
          **_net("adam", 0.001, [256, 128], "relu", 60000, 10, 256), lr_schedule="cosine", dropout=0.2),
    _case("ok-momentum-early-stop", HEALTHY, "momentum, L2 1e-4, early stopping",
          **_net("momentum", 0.02, [256], "relu", 6000, 20, 64), lr_schedule="cosine", l2=0.0001,
          early_stopping_patience=3),
    _case("ok-rmsprop-tanh", HEALTHY, "RMSprop 3e-4 on tanh, cosine",
          **_net("rmsprop", 0.0003, [128, 64], "tanh", 4000, 15, 64), lr_schedule="cosine"),
)

CASES_BY_ID: dict[str, Case] = {case.id: case for case in CASES}
