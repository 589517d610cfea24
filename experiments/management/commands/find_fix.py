"""`python manage.py find_fix RUN_ID [--wait] [--timeout S] [--user NAME]`

Find the fix, as the run page's button and `POST /api/experiments/<id>/find-fix/` do
(`experiment_find_fix`): the run's advice becomes 2-4 candidate changes, trained as a small sweep
on the run's seed and data by the workers. Asking again while that sweep runs follows the same one.
With --wait, polls the database every second until the verdict is stored, then prints each
candidate's measured gain over the run and the verdict (the recommendation written on the run).

Exit codes: 0 queued (or followed to its verdict); 1 refused (no such run, not finished, nothing to
try, storage full) or --timeout reached.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from experiments import selectors
from experiments.errors import ServiceError
from experiments.management.owners import resolve_owner
from experiments.models import Recommendation, Sweep
from experiments.services.fixes import experiment_find_fix
from training.cli import EXIT_FAILURE

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = "Find the fix of a finished run: try its advice as 2-4 candidates on its seed; --wait for the verdict."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int, help="the finished run to fix")
        parser.add_argument("--user", help="the run's owner (default: the only superuser)")
        parser.add_argument("--wait", action="store_true", help="follow the fix sweep until its verdict")
        parser.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits (default 1800)")

    def handle(self, *args, **options):
        owner = resolve_owner(options["user"], what="fix sweep")
        experiment = selectors.experiment_get(user=owner, experiment_id=options["run_id"])
        if experiment is None:
            raise CommandError(f"{owner.get_username()} has no run #{options['run_id']}.", returncode=EXIT_FAILURE)
        try:
            sweep, created = experiment_find_fix(experiment=experiment, owner=owner)
        except ServiceError as exc:
            raise CommandError(exc.message, returncode=EXIT_FAILURE) from None
        verb = "Queued" if created else "Following the active"
        self.stdout.write(f"{verb} fix sweep #{sweep.pk} for run #{experiment.pk}: {len(sweep.candidates)} "
                          f"candidates on seed {experiment.config.get('seed')}, "
                          f"{experiment.config.get('train_size') or 'all'} training images")
        for number, candidate in enumerate(sweep.candidates, start=1):
            self.stdout.write(f"  {number}. {candidate['title']}  {candidate['changes']}")
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while True:
            sweep = Sweep.objects.select_related("fix_of").get(pk=sweep.pk)
            if sweep.fix_result is not None:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"Timed out after {options['timeout']:.0f} s; fix sweep #{sweep.pk} goes on "
                                   f"(GET /api/experiments/{experiment.pk}/fixes/).", returncode=EXIT_FAILURE)
            time.sleep(POLL_SECONDS)
        self._print_verdict(sweep)

    def _print_verdict(self, sweep: Sweep) -> None:
        payload = selectors.fix_sweep_payload(sweep=sweep)
        parent_best = payload["parent_best_val_accuracy"]
        self.stdout.write(f"Run #{payload['parent']} best val {_pct(parent_best)}; fix sweep #{sweep.pk} "
                          f"{payload['status']}")
        header = ["#", "run", "status", "val_acc", "gain", "changes"]
        rows = []
        for index, candidate in enumerate(payload["candidates"]):
            gain = candidate["gain_points"]
            mark = " *" if index == payload["winner"] else ""
            rows.append([str(candidate["number"]), str(candidate["trial"] or "-"), candidate["status"],
                         _pct(candidate["best_val_accuracy"]), "-" if gain is None else f"{gain:+.1f}{mark}",
                         ", ".join(f"{k}={v}" for k, v in candidate["changes"].items())])
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        self.stdout.write("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "   (gain in points)")
        for row in rows:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        advice = Recommendation.objects.filter(pk=payload["recommendation"]).first()
        if advice is not None:
            self.stdout.write(advice.title)
            if advice.kind == "verified_fix":
                self.stdout.write(f"Apply & Run: POST /api/recommendations/{advice.pk}/apply/")
        else:
            self.stdout.write("No verdict: the fix sweep was cancelled.")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"
