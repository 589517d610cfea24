"""manage.py autotune --minutes N [--fixed field=value ...] [--wait]: Tune for me from the command line.

Starts an autotune exactly as POST /api/autotune/ does (services.autotune.autotune_create); with
--wait, polls the sweep until it ends and prints the winner's test accuracy. Values of --fixed are
JSON when they parse as JSON (numbers, lists), else strings: --fixed activation=tanh
--fixed hidden_layers=[512,256].
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from experiments.errors import ServiceError, SweepInvalid
from experiments.management.owners import resolve_owner
from experiments.models import Sweep


def parse_fixed(items: list[str]) -> dict:
    fixed = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--fixed takes field=value, got {item!r}")
        try:
            fixed[name] = json.loads(raw)
        except json.JSONDecodeError:
            fixed[name] = raw
    return fixed


class Command(BaseCommand):
    help = "Tune for me: the best network the lab finds in --minutes of wall time (an ordinary sweep)."

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget (1-1440)")
        parser.add_argument("--fixed", action="append", default=[], metavar="FIELD=VALUE",
                            help="keep a field as given (repeatable)")
        parser.add_argument("--owner", default=None, help="the user the sweep belongs to")
        parser.add_argument("--parallelism", type=int, default=2)
        parser.add_argument("--wait", action="store_true", help="wait for the end and print the result")

    def handle(self, *args, **options):
        from experiments.services.autotune import autotune_create

        owner = resolve_owner(options["owner"], what="autotune")
        try:
            sweep = autotune_create(owner=owner, minutes=options["minutes"], fixed=parse_fixed(options["fixed"]),
                                    parallelism=options["parallelism"])
        except SweepInvalid as exc:
            raise CommandError("invalid autotune: " + json.dumps(exc.errors)) from None
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"autotune sweep #{sweep.pk} started ({options['minutes']:g} min)")
        if not options["wait"]:
            return
        while sweep.status in Sweep.ACTIVE_STATUSES:
            time.sleep(2)  # polling a remote process's progress: nothing to wait on locally
            sweep.refresh_from_db()
        self.stdout.write(f"sweep #{sweep.pk} {sweep.status}: {sweep.message}")
