"""`python manage.py train [--hidden-layers 256 128 ...] [--user NAME] [--name NAME] [--follow] [--json]`

Queues a run exactly as the web app does (`services.experiment_create`), prints its id
and, with --follow, shows its progress live until it ends. Every TrainingConfig field
is a flag, built by `training.cli.add_config_arguments` as for `python -m training fit`.

Exit codes: 0 queued (or followed to `succeeded`); 1 quota exceeded, unknown user, or a
followed run that ended failed/diverged/cancelled; 2 invalid flags or values (every
field error is printed). Ctrl-C while following stops following only: the run goes on.

Following: a private channel joins the run's group, then the seq counter and the
database are read (the same snapshot protocol as the websocket, see
experiments/consumers.py); events with seq <= the snapshot's are dropped. The database
is polled every POLL_SECONDS as well, and re-read at once when a seq gap shows that
an event was lost, so a lost event delays the output but never loses an epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections

from experiments import events, services
from experiments.live import snapshot
from experiments.management.owners import resolve_owner
from experiments.models import Experiment
from training.cli import EXIT_FAILURE, EXIT_USAGE, add_config_arguments, config_error_lines, given_config

POLL_SECONDS = 2.0
STOP_MESSAGE_TYPE = "train.follow.stop"
STOP_TIMEOUT_SECONDS = 2.0
RECEIVE_ERROR_TYPE = "train.follow.receive_error"
RECEIVE_RETRY_SECONDS = 0.5
FINISHED = set(Experiment.FINISHED_STATUSES)


class Command(BaseCommand):
    help = "Queue a training run (as the web app does); with --follow, watch it until it ends."

    def add_arguments(self, parser):
        add_config_arguments(parser, under_heading=True)
        parser.add_argument("--user", help="owner of the run (default: the only superuser)")
        parser.add_argument("--name", default="", help="a name for the run")
        parser.add_argument("--follow", action="store_true",
                            help="show live progress until the run ends (Ctrl-C stops following only)")
        parser.add_argument("--json", action="store_true",
                            help="print the result as one JSON object on the last line of stdout")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        parser.add_argument("--stop-on-diagnosis", action="store_true",
                            help="stop the run at its first critical live diagnosis (divergence, not learning), "
                                 "with the reason in its message")

    # ----------------------------------------------------------------------- create

    def handle(self, *args, **options):
        self.json_output = options["json"]
        # Human-readable output goes to stderr with --json, so stdout is exactly one JSON line.
        self.out = self.stderr if self.json_output else self.stdout
        config = given_config(options)
        try:
            services.config_validate(config=config)  # usage errors first, before looking up anyone
            owner = self._owner(options["user"])
            experiment = services.experiment_create(owner=owner, config=config, name=options["name"],
                                                    stop_on_diagnosis=options["stop_on_diagnosis"])
        except services.ConfigInvalid as exc:
            for line in config_error_lines(exc.errors):
                self.stderr.write(line)
            raise SystemExit(EXIT_USAGE) from None
        except services.QuotaExceeded as exc:
            raise CommandError(exc.message, returncode=EXIT_FAILURE) from None

        self.out.write(f"Queued run #{experiment.pk} for {owner.get_username()}"
                       + (f" ({experiment.name})" if experiment.name else ""))
        if not options["follow"]:
            if self.json_output:
                self.stdout.write(json.dumps(self._result(experiment)))
            return
        self.quiet = options["quiet"]
        try:
            asyncio.run(self._follow(experiment.pk, owner))
        except KeyboardInterrupt:
            self.out.write(f"\nStopped following. Run #{experiment.pk} continues in the background "
                           f"(cancel it from the web app if you do not want it).")
            return
        experiment.refresh_from_db()
        self._print_summary(experiment)
        if self.json_output:
            self.stdout.write(json.dumps(self._result(experiment)))
        if experiment.status != Experiment.Status.SUCCEEDED:
            raise SystemExit(EXIT_FAILURE)

    def _owner(self, username: str | None):
        return resolve_owner(username, what="run")

    # ----------------------------------------------------------------------- follow

    async def _follow(self, experiment_id: int, owner) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        group = events.run_group(experiment_id)
        inbox: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            # One long-lived receiver, ended by a message to itself rather than by
            # cancellation: on Python 3.11 a cancel that lands while redis-py sends
            # a command is swallowed (asyncio.wait_for), and the receive then sits out
            # its 5 s BZPOPMIN. (wait_for(layer.receive()) per poll would hit that often.)
            while True:
                try:
                    message = await layer.receive(channel)
                except Exception as exc:  # noqa: BLE001 - the database poll covers the gap
                    # redis-py >= 8 times a read out after 5 s, as long as channels_redis's
                    # blocking pop, unless CHANNEL_LAYERS sets socket_timeout; a restarted
                    # Redis fails the same way. Either way: say so once, then try again.
                    inbox.put_nowait({"type": RECEIVE_ERROR_TYPE, "error": exc})
                    await asyncio.sleep(RECEIVE_RETRY_SECONDS)
                    continue
                if message.get("type") == STOP_MESSAGE_TYPE:
                    return
                inbox.put_nowait(message)

        await layer.group_add(group, channel)  # 1. join, 2. seq, 3. database (see consumers.py)
        receiver = asyncio.create_task(pump())
        view = _RunView(self, experiment_id)
        try:
            await self._resync(view, owner)
            next_poll = time.monotonic() + POLL_SECONDS
            while not view.finished:
                try:
                    message = await asyncio.wait_for(inbox.get(), max(0.0, next_poll - time.monotonic()))
                except TimeoutError:
                    await self._resync(view, owner)
                    next_poll = time.monotonic() + POLL_SECONDS
                    continue
                if message.get("type") == RECEIVE_ERROR_TYPE:
                    view.receive_failed(message["error"])
                    await self._resync(view, owner)
                    next_poll = time.monotonic() + POLL_SECONDS
                    continue
                event = message.get("event") or {}
                if view.handle(event):  # a gap in seq: an event was lost
                    await self._resync(view, owner)
                    next_poll = time.monotonic() + POLL_SECONDS
        finally:
            view.close()
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)
            if not receiver.done():
                with contextlib.suppress(Exception):
                    await layer.send(channel, {"type": STOP_MESSAGE_TYPE})
                await asyncio.wait({receiver}, timeout=STOP_TIMEOUT_SECONDS)
            if receiver.done():
                if not receiver.cancelled():
                    receiver.exception()  # retrieved: a dead layer was already handled by polling
            else:
                receiver.cancel()
            # The reads ran in asgiref's worker thread: leave no connection open there.
            await sync_to_async(connections.close_all)()

    async def _resync(self, view: _RunView, owner) -> None:
        data = await sync_to_async(_snapshot_closing)(owner, view.experiment_id)
        if data is None:
            raise CommandError(f"Run #{view.experiment_id} no longer exists.")
        view.apply_snapshot(data)

    # ----------------------------------------------------------------------- results

    def _print_summary(self, experiment: Experiment) -> None:
        lines = [f"Run #{experiment.pk}: {experiment.status}"
                 + (f" ({experiment.message})" if experiment.message else "")]
        if experiment.error_message:
            lines.append(f"  error: {experiment.error_message}")
        if experiment.best_val_accuracy is not None:
            lines.append(f"  best val accuracy: {experiment.best_val_accuracy:.4f} at epoch {experiment.best_epoch}")
        if experiment.test_accuracy is not None:
            lines.append(f"  test accuracy:     {experiment.test_accuracy:.4f}   test loss: {experiment.test_loss:.4f}")
        self.out.write("\n".join(lines))

    @staticmethod
    def _result(experiment: Experiment) -> dict[str, Any]:
        return {"id": experiment.pk, "name": experiment.name, "status": experiment.status,
                "epochs_done": experiment.epochs_done, "best_val_accuracy": experiment.best_val_accuracy,
                "best_epoch": experiment.best_epoch, "test_accuracy": experiment.test_accuracy,
                "test_loss": experiment.test_loss, "message": experiment.message,
                "error": experiment.error_message, "config": experiment.config}


def _snapshot_closing(owner, experiment_id: int):
    close_old_connections()
    try:
        return snapshot(user=owner, experiment_id=experiment_id)
    finally:
        close_old_connections()


class _RunView:
    """What the terminal shows of one run: a progress bar over epochs and one line per epoch."""

    def __init__(self, command: Command, experiment_id: int):
        self.command = command
        self.experiment_id = experiment_id
        self.seq = 0
        self.status = ""
        self.epochs = 0
        self.printed_epoch = 0
        self.finished = False
        self.events_lost = False
        self.bar = None

    # A TTY bar on the raw stream: Django's OutputWrapper appends a newline to every write.
    @property
    def stream(self):
        return self.command.out._out

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            self.command.out.write(line)

    def _ensure_bar(self, epochs: int) -> None:
        self.epochs = epochs or self.epochs
        if self.bar is None and not self.command.quiet and self.epochs:
            from tqdm import tqdm

            self.bar = tqdm(total=self.epochs, unit="epoch", file=self.stream, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.2f}/{total} [{elapsed}<{remaining}{postfix}]")

    def _set_status(self, status: str) -> None:
        if status and status != self.status:
            self.status = status
            if self.bar is not None and status in ("queued", "running"):
                self.bar.set_description(status if status == "queued" else f"epoch {self.printed_epoch + 1}/{self.epochs}")
        if status in FINISHED:
            self.finished = True

    def _epoch(self, m: dict[str, Any]) -> None:
        epoch = m["epoch"]
        if epoch <= self.printed_epoch:
            return  # already shown (snapshot and event overlap by design)
        self.printed_epoch = epoch
        self.write(f"epoch {epoch:3d}  loss {m['train_loss']:.4f}  acc {m['train_accuracy']:.4f}  "
                   f"val_loss {m['val_loss']:.4f}  val_acc {m['val_accuracy']:.4f}  "
                   f"lr {m['learning_rate']:.2e}  {m['samples_per_second']:,.0f} samples/s")
        if self.bar is not None:
            self.bar.n = epoch
            self.bar.set_postfix_str(f"val_acc {m['val_accuracy']:.4f}", refresh=False)
            self.bar.refresh()

    def apply_snapshot(self, data: dict[str, Any]) -> None:
        experiment = data["experiment"]
        self.seq = max(self.seq, data["seq"])
        self._ensure_bar((experiment.get("config") or {}).get("epochs") or 0)
        for m in data["metrics"]:
            self._epoch(m)
        self._set_status(experiment["status"])

    def handle(self, event: dict[str, Any]) -> bool:
        """Apply one event; True if a seq gap means the database must be re-read."""
        seq = event.get("seq") or 0
        if seq <= self.seq:
            return False  # already reflected by the snapshot or an earlier resync
        gap = seq > self.seq + 1
        self.seq = seq
        kind = event.get("type")
        if kind == "progress":
            self._ensure_bar(event.get("epochs") or 0)
            if self.bar is not None and event.get("batches"):
                self.bar.n = event["epoch"] - 1 + event["batch"] / event["batches"]
                self.bar.set_description(f"epoch {event['epoch']}/{self.epochs}", refresh=False)
                self.bar.refresh()
        elif kind == "epoch":
            self._ensure_bar(event.get("epochs") or 0)
            if event["epoch"] > self.printed_epoch + 1:
                gap = True  # an epoch event went missing: the database has it
            else:
                self._epoch(event)
        elif kind == "status":
            self._set_status(event.get("status", ""))
            gap = gap or self.finished  # the end: re-read so the last epochs are surely shown
        elif kind == "log":
            self.write(f"[{event.get('level', 'info')}] {event.get('message', '')}")
        elif kind == "finished":
            gap = True  # re-read so every epoch is printed before the summary
            self._set_status(event.get("status", ""))
        return gap

    def receive_failed(self, error: BaseException) -> None:
        if not self.events_lost:
            self.events_lost = True
            self.write(f"(live events interrupted: {type(error).__name__}: {error}; retrying, and reading "
                       f"the database every {POLL_SECONDS:g} s meanwhile)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

