"""Delete run files nothing needs any more and make the recorded sizes match the disk.

In checkpoints/ and weights/ of the artifact storage (TUNER_ARTIFACT_DIR or the S3 bucket): files of runs whose row is gone,
checkpoints of runs that already ended, `*.tmp*` leftovers older than an hour. Every run's
`checkpoint_bytes` / `weights_bytes` (what the per-user storage limit adds up) is then set
from its files. Safe while workers run; other directories (a dataset cache) are never touched.

    python manage.py prune_artifacts --dry-run    # what would go, and the bytes it would free
    python manage.py prune_artifacts
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from experiments import services
from experiments.services.artifacts import human_bytes


class Command(BaseCommand):
    help = ("Delete orphan run files, checkpoints of ended runs and old temporaries in the artifact storage; "
            "re-measure the stored sizes of every run.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="Only print what would be deleted and corrected; change nothing.")

    def handle(self, *args, **options):
        dry_run = options["dry_run"]
        report = services.artifacts_prune(dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        for path, size, reason in report.deleted:
            self.stdout.write(f"{verb} {path} ({human_bytes(size)}): {reason}")
        for run_id, changes in report.corrected:
            self.stdout.write(f"run #{run_id}: " + ", ".join(
                f"{name} {old:,} -> {new:,}" for name, (old, new) in changes.items()))
        freed = report.freed_bytes
        self.stdout.write(
            f"{'would free' if dry_run else 'freed'} {freed:,} bytes ({human_bytes(freed)}) in "
            f"{len(report.deleted)} file(s); {len(report.corrected)} run(s) "
            f"{'to correct' if dry_run else 'corrected'}")
