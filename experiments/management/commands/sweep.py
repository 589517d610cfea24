"""`python manage.py sweep --strategy tpe --budget 24 --parallelism 2 --param learning_rate=1e-4:1e-1:log ...`

Starts a sweep exactly as the API does (`services.sweep_create`) and, with --follow, shows a
progress bar (trials done / budget, best so far) polling the database every second until
the sweep ends, then a table of its trials, best first.

--param NAME=SPEC, once per varied field:
  a:b             a range (linear, or the field's usual scale: log for learning_rate, batch_size, l2)
  a:b:log         a log-scale range     a:b:linear   a linear range
  a:b:int         integer steps (the default for integer fields); modifiers combine: 16:512:log:int
  x,y,z           a list of values      e.g. optimizer=adam,sgd   dropout=0,0.2,0.4
  [64],[128,64]   hidden layer lists    e.g. hidden_layers=[64],[128],[256,128]

The base configuration is --base-config JSON, then any hyperparameter flag (as for
`manage.py train`: --epochs 5 --train-size 10000 ...), which takes precedence.

Exit codes: 0 created (or followed to the end); 1 quota exceeded or unknown user;
2 invalid flags, params or values (every error is printed).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from experiments import selectors, services
from experiments.management.owners import resolve_owner
from experiments.models import Experiment, Sweep
from experiments.search.space import DEFAULT_PARALLELISM, PRUNERS, SECOND_OBJECTIVES, STRATEGIES
from training.cli import EXIT_FAILURE, EXIT_USAGE, add_config_arguments, config_flag, given_config
from training.config import FIELDS

POLL_SECONDS = 1.0
RANGE_MODIFIERS = {"log": ("scale", "log"), "linear": ("scale", "linear"), "int": ("type", "int"),
                   "float": ("type", "float")}


class ParamError(ValueError):
    pass


def _number(text: str, what: str, flag: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ParamError(f"--param {flag}: {what} {text!r} is not a number.") from None


def _scalar(text: str) -> Any:
    """A list item as typed: JSON numbers, true/false/null, else the plain string."""
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if not isinstance(value, (list, dict)) else text


def parse_cli_param(text: str) -> tuple[str, dict[str, Any]]:
    """NAME=SPEC -> (name, a space entry); ParamError says what is wrong."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip().replace("-", "_"), spec.strip()
    if not sep or not name:
        raise ParamError(f"--param {text!r}: expected NAME=SPEC, e.g. learning_rate=1e-4:1e-1:log.")
    if name not in FIELDS:
        raise ParamError(f"--param {text!r}: unknown field {name!r}. Known fields: {', '.join(FIELDS)}.")
    if not spec:
        raise ParamError(f"--param {text!r}: nothing after '='.")
    if spec.startswith("["):
        try:
            values = json.loads(f"[{spec}]")
        except ValueError:
            raise ParamError(f"--param {text!r}: layer lists must look like [64],[128],[256,128].") from None
        return name, {"values": values}
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            raise ParamError(f"--param {text!r}: a range is LOW:HIGH[:log|:linear][:int|:float].")
        entry: dict[str, Any] = {"low": _number(parts[0], "low", text), "high": _number(parts[1], "high", text)}
        for modifier in parts[2:]:
            key_value = RANGE_MODIFIERS.get(modifier.strip().lower())
            if key_value is None:
                raise ParamError(f"--param {text!r}: unknown range modifier {modifier!r}; use log, linear, int "
                                 "or float.")
            key, value = key_value
            if key in entry and entry[key] != value:
                raise ParamError(f"--param {text!r}: {modifier!r} contradicts {entry[key]!r}.")
            entry[key] = value
        if FIELDS[name].kind == "int" and entry.get("type") != "float":
            entry["type"] = "int"
        return name, entry
    return name, {"values": [_scalar(item) for item in spec.split(",")]}


def parse_cli_params(texts: list[str]) -> dict[str, dict[str, Any]]:
    space: dict[str, dict[str, Any]] = {}
    for text in texts:
        name, entry = parse_cli_param(text)
        if name in space:
            raise ParamError(f"--param {name} is given twice.")
        space[name] = entry
    return space


class Command(BaseCommand):
    help = "Start a sweep (batch of runs searched by grid/random/TPE/QMC); with --follow, watch it to the end."

    def add_arguments(self, parser):
        parser.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                            help="a varied field: LOW:HIGH[:log][:int], a,b,c, or [64],[128,64] (repeatable)")
        parser.add_argument("--strategy", default="tpe", help=f"one of {', '.join(STRATEGIES)} (default tpe)")
        parser.add_argument("--budget", type=int, default=None,
                            help="most trials, 1-200 (default: a grid's size, else 20)")
        parser.add_argument("--parallelism", type=int, default=DEFAULT_PARALLELISM,
                            help="most trials queued or running at once, 1-8 (default 2)")
        parser.add_argument("--pruner", default="none", help=f"one of {', '.join(PRUNERS)} (default none)")
        parser.add_argument("--second-objective", default="none",
                            help=f"minimised too, giving a Pareto front: {', '.join(SECOND_OBJECTIVES)}")
        parser.add_argument("--sweep-seed", type=int, default=None,
                            help="seeds the sampler (default: random); --seed is the trials' training seed")
        parser.add_argument("--warm-start", action="store_true",
                            help="import your earlier matching runs as completed trials")
        parser.add_argument("--diagnostic-pruning", action="store_true",
                            help="also prune trials at a critical live diagnosis (divergence, not learning)")
        parser.add_argument("--base-config", default=None, metavar="JSON",
                            help="the config every trial starts from (hyperparameter flags override it)")
        add_config_arguments(parser, under_heading=True)
        parser.add_argument("--name", default="", help="a name for the sweep")
        parser.add_argument("--user", help="owner of the sweep (default: the only superuser)")
        parser.add_argument("--follow", action="store_true",
                            help="show progress until the sweep ends (Ctrl-C stops following only)")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def usage_error(self, *lines: str) -> None:
        for line in lines:
            self.stderr.write(line)
        raise SystemExit(EXIT_USAGE)

    def handle(self, *args, **options):
        try:
            space = parse_cli_params(options["param"])
        except ParamError as exc:
            self.usage_error(f"error: {exc}")
        if not space:
            self.usage_error("error: give at least one --param NAME=SPEC, e.g. --param learning_rate=1e-4:1e-1:log")
        base: dict[str, Any] = {}
        if options["base_config"]:
            try:
                base = json.loads(options["base_config"])
            except ValueError as exc:
                self.usage_error(f"error: --base-config is not valid JSON: {exc}")
            if not isinstance(base, dict):
                self.usage_error("error: --base-config must be a JSON object.")
        base.update(given_config(options))
        owner = self._owner(options["user"])
        try:
            sweep = services.sweep_create(
                owner=owner, name=options["name"], base_config=base, space=space, strategy=options["strategy"],
                budget=options["budget"], parallelism=options["parallelism"], pruner=options["pruner"],
                second_objective=options["second_objective"], seed=options["sweep_seed"],
                warm_start=options["warm_start"], diagnostic_pruning=options["diagnostic_pruning"])
        except services.SweepInvalid as exc:
            self.usage_error("error: invalid sweep:", *self._error_lines(exc.errors))
        except services.QuotaExceeded as exc:
            raise CommandError(exc.message, returncode=EXIT_FAILURE) from None

        self.stdout.write(f"Started sweep #{sweep.pk} ({sweep.name}) for {owner.get_username()}: {sweep.strategy}, "
                          f"budget {sweep.budget}, parallelism {sweep.parallelism}, pruner {sweep.pruner}, "
                          f"seed {sweep.seed}"
                          + (f", {len(sweep.warm_start_runs)} earlier runs imported" if sweep.warm_start else ""))
        if not options["follow"]:
            return
        try:
            self._follow(sweep, quiet=options["quiet"])
        except KeyboardInterrupt:
            self.stdout.write(f"\nStopped following. Sweep #{sweep.pk} goes on in the background "
                              f"(cancel it with POST /api/sweeps/{sweep.pk}/cancel/).")
            return
        self._print_table(sweep)

    @staticmethod
    def _error_lines(errors: dict[str, Any]) -> list[str]:
        lines = []
        for key, value in errors.items():
            where = "--param" if key == "space" else ("--base-config / flags" if key == "base_config"
                                                      else f"--{key.replace('_', '-')}")
            if isinstance(value, dict):
                for field, messages in value.items():
                    shown = config_flag(field) if key == "base_config" and field in FIELDS else field
                    lines.append(f"  {where} {shown}: {' '.join(messages)}")
            else:
                lines.append(f"  {where}: {' '.join(value)}")
        return lines

    def _owner(self, username: str | None):
        return resolve_owner(username, what="sweep")

    # ----------------------------------------------------------------------- follow

    def _follow(self, sweep: Sweep, *, quiet: bool) -> None:
        bar = None
        if not quiet:
            from tqdm import tqdm

            bar = tqdm(total=sweep.budget, unit="trial", file=self.stdout._out, dynamic_ncols=True,
                       desc=f"sweep #{sweep.pk}")
        try:
            while True:
                sweep.refresh_from_db()
                counts = selectors.sweep_counts(sweep=sweep)
                done = counts["total"] - counts["active"]
                best = (Experiment.objects.filter(pk=sweep.best_trial_id).values_list("trial_number",
                                                                                      "best_val_accuracy").first()
                        if sweep.best_trial_id else None)
                if best is None:
                    best_run = (selectors.sweep_trials(sweep=sweep).filter(status=Experiment.Status.SUCCEEDED)
                                .exclude(best_val_accuracy=None).order_by("-best_val_accuracy")
                                .values_list("trial_number", "best_val_accuracy").first())
                    best = best_run
                if bar is not None:
                    bar.total = max(sweep.budget, counts["total"])
                    bar.n = done
                    postfix = f"running {counts['running']}, pruned {counts['pruned']}"
                    if best:
                        postfix = f"best {best[1]:.4f} (#{best[0]}), " + postfix
                    bar.set_postfix_str(postfix, refresh=False)
                    bar.refresh()
                if sweep.status not in Sweep.ACTIVE_STATUSES and counts["active"] == 0:
                    return
                time.sleep(POLL_SECONDS)
        finally:
            if bar is not None:
                bar.close()

    def _print_table(self, sweep: Sweep) -> None:
        detail = selectors.sweep_detail(sweep=sweep)
        trials = sorted(detail["trials"], key=lambda t: (t["best_val_accuracy"] is None,
                                                         -(t["best_val_accuracy"] or 0), t["trial_number"]))
        names = list(detail["space"])
        header = ["#", "run", "status", "val_acc", "test_acc", "epochs", "seconds", *names]
        rows = []
        for trial in trials:
            rows.append([str(trial["trial_number"]), str(trial["id"]), trial["status"],
                         _pct(trial["best_val_accuracy"]), _pct(trial["test_accuracy"]), str(trial["epochs_done"]),
                         f"{trial['seconds']:.1f}", *(_value(trial["params"].get(n)) for n in names)])
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        self.stdout.write(f"Sweep #{sweep.pk}: {detail['status']}" + (f" ({detail['message']})" if detail["message"]
                                                                       else ""))
        self.stdout.write("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for row in rows:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if detail["pareto_front"]:
            self.stdout.write("Pareto front (runs): " + ", ".join(f"#{i}" for i in detail["pareto_front"]))
        if detail["importance"]:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(detail["importance"].items(), key=lambda kv: -kv[1]))
            self.stdout.write(f"Importance: {shown}")
        for warning in detail["warnings"]:
            self.stdout.write(f"Warning: {warning}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return str(value)
