"""Command line: `python -m training fit [--hidden-layers 256 128] [--learning-rate 0.001] ...`.

Every TrainingConfig field is a flag (generated from `FIELDS`). Bad flags or values
print every field error and exit with code 2; a missing dataset prints where it
looked and exits with code 1. `--json` ends the output with one JSON line.

The hyperparameter flags are built by `add_config_arguments` and read back by
`given_config`; `manage.py train` and `manage.py sweep` use the same two, so all three
commands spell and explain the fields alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from training.config import FIELDS, ConfigError, TrainingConfig

EXIT_USAGE = 2
EXIT_FAILURE = 1
CONFIG_HEADING = "hyperparameters (training/config.py)"


def config_flag(name: str) -> str:
    """The flag of TrainingConfig field `name`: "learning_rate" -> "--learning-rate"."""
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, *, under_heading: bool = False) -> None:
    """Add one flag per TrainingConfig field to `parser`.

    `--learning-rate 0.01` stores 0.01 under "learning_rate"; a layer list takes one or more
    values (`--hidden-layers 256 128`). The values stay as typed: `TrainingConfig.from_dict`
    validates them. Every flag defaults to None so that `given_config` keeps only the flags
    given; the help text shows the field's help, its choices and its real default.
    `under_heading` lists the flags apart in --help, under CONFIG_HEADING: for commands
    with many options of their own.
    """
    target = parser.add_argument_group(CONFIG_HEADING) if under_heading else parser
    for name, spec in FIELDS.items():
        help_text = spec.help
        if spec.choices:
            help_text += f" One of: {', '.join(spec.choices)}."
        # argparse %-formats help strings ("50%" in a help text would crash --help).
        kwargs: dict[str, Any] = {"dest": name, "default": None, "metavar": name.upper(),
                                  "help": f"{help_text} (default: {spec.default})".replace("%", "%%")}
        if spec.kind == "int_list":
            kwargs["nargs"] = "+"
        target.add_argument(config_flag(name), **kwargs)


def given_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """The config fields given on the command line: {field: value as typed}.

    `options` maps argument names to values: `vars(args)` of a parser built with
    `add_config_arguments`, or the options of a Django command's handle().
    """
    return {name: options[name] for name in FIELDS if options.get(name) is not None}


def config_error_lines(errors: dict[str, list[str]]) -> list[str]:
    """A ConfigError's `errors` as the lines a command prints, each field named by its flag."""
    return ["error: invalid configuration:"] + [
        f"  {config_flag(name) if name in FIELDS else name}: {' '.join(messages)}"
        for name, messages in errors.items()
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training",
                                     description="Train a NumPy MLP on Fashion-MNIST.")
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit", help="train one network and print its test accuracy",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arguments(fit)
    fit.add_argument("--data-dir", help="folder with the four Fashion-MNIST IDX .gz files")
    fit.add_argument("--csv-train", help="training set in the Kaggle CSV layout (label + 784 pixels)")
    fit.add_argument("--csv-test", help="test set in the Kaggle CSV layout")
    fit.add_argument("--checkpoint", help="checkpoint .npz written every epoch; resumed if present")
    fit.add_argument("--save-weights", help="write the trained weights to this .npz file")
    fit.add_argument("--json", action="store_true",
                     help="print the final summary as one JSON object on the last line")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    commands.add_parser("schema", help="print the hyperparameter schema as JSON")
    return parser


def run_fit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from training.data import DatasetError, load_fashion_mnist, prepare_dataset
    from training.trainer import CheckpointError, fit

    try:
        config = TrainingConfig.from_dict(given_config(vars(args)))
    except ConfigError as exc:
        print("\n".join(config_error_lines(exc.errors)), file=sys.stderr)
        return EXIT_USAGE
    try:
        raw = load_fashion_mnist(args.data_dir, csv_train=args.csv_train, csv_test=args.csv_test)
        data = prepare_dataset(raw, validation_fraction=config.validation_fraction,
                               seed=config.seed, train_size=config.train_size)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE

    out = sys.stderr if args.json else sys.stdout
    print(f"Training {'-'.join(map(str, config.layer_sizes))} ({config.parameter_count:,} parameters) "
          f"on {data.x_train.shape[0]:,} images, validating on {data.x_val.shape[0]:,}; "
          f"{config.optimizer} lr={config.learning_rate:g} batch={config.batch_size} "
          f"epochs={config.epochs}", file=out)
    bar = None if args.quiet else tqdm(total=config.epochs, unit="epoch", file=out,
                                       dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.2f}/{total} "
                                       "[{elapsed}<{remaining}{postfix}]")

    def on_batch(epoch: int, batch: int, batches: int) -> None:
        if bar is not None and (batch % 20 == 0 or batch == batches):
            bar.n = epoch - 1 + batch / batches
            bar.set_description(f"epoch {epoch}/{config.epochs}", refresh=False)
            bar.refresh()

    def on_epoch(m) -> None:
        line = (f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  acc {m.train_accuracy:.4f}  "
                f"val_loss {m.val_loss:.4f}  val_acc {m.val_accuracy:.4f}  lr {m.learning_rate:.2e}  "
                f"{m.samples_per_second:,.0f} samples/s")
        if bar is not None:
            bar.set_postfix_str(f"val_acc {m.val_accuracy:.4f}", refresh=False)
            bar.write(line, file=out)
        elif not args.json:
            print(line, file=out)

    try:
        result = fit(config, data, on_epoch=on_epoch, on_batch=on_batch, checkpoint=args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()

    if args.save_weights:
        import numpy as np
        np.savez(args.save_weights, **result.network.weights())
    summary = result.summary()
    summary["config"] = config.to_dict()
    print(f"\nOutcome: {result.outcome.value}"
          + (f" ({result.message})" if result.message else ""), file=out)
    if result.best_val_accuracy is not None:
        print(f"Best validation accuracy: {result.best_val_accuracy:.4f} at epoch {result.best_epoch}",
              file=out)
    if result.test_accuracy is not None:
        print(f"Test accuracy: {result.test_accuracy:.4f}   test loss: {result.test_loss:.4f}", file=out)
        worst = sorted(zip(result.per_class_accuracy, data.class_names))[:3]
        print("Hardest classes: " + ", ".join(f"{n} {a:.1%}" for a, n in worst), file=out)
    print(f"Time: {result.seconds:.1f} s for {result.epochs_run} epochs", file=out)
    if args.json:
        print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 with a usage message
    if args.command == "schema":
        from training.config import config_schema
        print(json.dumps(config_schema(), indent=2))
        return 0
    return run_fit(args)
