"""Store the misclassified test images of runs that ended before the worker stored them.

Since then a run's list is computed once, by the worker, when the run succeeds; the API answers
409 for older runs. This runs their stored networks over the test set, one run at a time (a
fraction of a second each), in this process: run it where the dataset is, e.g. a worker container.

    python manage.py store_misclassified
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from experiments.services import inspection


class Command(BaseCommand):
    help = "Compute and store the misclassified test images of succeeded runs that have none yet."

    def handle(self, *args, **options):
        stored, skipped = inspection.misclassified_backfill()
        self.stdout.write(f"stored the list of {len(stored)} run(s)"
                          + (f"; no list for {len(skipped)} (weights missing or unusable): {skipped}" if skipped
                             else ""))
