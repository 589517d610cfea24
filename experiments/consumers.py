"""Websocket consumers: live events of one run or one sweep, and the status stream of a user's runs.

Thin by design: they check access and read through selectors (in a thread, via
`database_sync_to_async`), join the channel-layer groups `experiments.events`
publishes to, and forward those events unchanged. Schema: README "Live events".

Closing codes. A refused socket is *accepted and then closed* with the code:
closing before the handshake makes Daphne answer HTTP 403 and the browser only
ever sees 1006, so the code would be lost.

    4401  not logged in (both endpoints)
    4404  the run (sweep) does not exist *or* is not yours (one code, so a socket
          never tells a stranger which ids exist)

Ordering of a run socket's snapshot (what makes "snapshot + events" lossless):

    1. join the run's group        -> every event published from now on reaches us
    2. read the run's seq counter  -> S
    3. read the database           -> the snapshot, sent as {"type": "snapshot", "seq": S, ...}
    4. forward group events        -> queued ones are sent after the snapshot

An event's database write commits before its seq is taken (`events.publish` runs
after the write), so everything with seq <= S is already in the snapshot: clients
drop those events. An event with seq > S took its number after step 2, hence was
sent after step 1 and reaches us; it may *also* be in the snapshot (its write
landed between 2 and 3), so applying events must be idempotent (epoch events are
keyed by `epoch`, status events carry the whole state).

A sweep socket (ws/sweeps/<id>/) follows the same four steps with the sweep's group and
seq counter; its events carry whole trial rows or every sweep-level field, so applying
them is idempotent too (experiments/live_sweeps.py).
"""

from __future__ import annotations

import logging
import math
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from experiments import events, live, live_sweeps, selectors
from tuner_site import json_limits

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
MAX_CLIENT_MESSAGE_BYTES = 4096
# Per connection (token buckets): messages of any kind, and resyncs (each one a snapshot read on
# the consumers' shared database thread). Beyond them: an `error` event "too many ...; wait N s".
MESSAGE_BURST, MESSAGE_RATE = 20, 10.0  # 10 a second, bursts of 20; then one error a second
RESYNC_BURST, RESYNC_WINDOW_SECONDS = 3, 10.0  # 3 per 10 s (the snapshot on connect is free)


class TokenBucket:
    """`capacity` tokens, `rate` of them back per second."""

    clock = staticmethod(time.monotonic)  # tests replace it

    def __init__(self, capacity: int, rate: float):
        self.capacity, self.rate = capacity, rate
        self.tokens, self.updated = float(capacity), self.clock()

    def take(self) -> float:
        """0 when a token was taken; else the seconds until one is back (nothing taken)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# --------------------------------------------------------------------------- consumers


class _EventStreamConsumer(AsyncJsonWebsocketConsumer):
    """Shared client protocol: ping/pong, errors for anything not understood, rate limits."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.message_budget = TokenBucket(MESSAGE_BURST, MESSAGE_RATE)
        self.flood_reported_at = -math.inf

    async def refuse(self, code: int) -> None:
        # Accept first so the client sees the code (see the module docstring).
        await self.accept()
        await self.close(code=code)

    async def join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups.append(group)  # the base class discards self.groups on disconnect

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        wait = self.message_budget.take()
        if wait:  # dropped unread; said at most once a second
            if self.message_budget.clock() - self.flood_reported_at >= 1.0:
                self.flood_reported_at = self.message_budget.clock()
                await self.send_error(f"too many messages; wait {math.ceil(wait)} s")
            return
        if text_data is None:
            await self.send_error("Binary frames are not supported; send JSON text.")
            return
        if len(text_data.encode("utf-8")) > MAX_CLIENT_MESSAGE_BYTES:
            await self.send_error(f"Message too large (limit {MAX_CLIENT_MESSAGE_BYTES} bytes).")
            return
        try:
            content = json_limits.loads(text_data)  # depth limit, finite numbers
        except json_limits.JSONLimitError as exc:
            await self.send_error(str(exc))
            return
        except ValueError:
            await self.send_error("Invalid JSON.")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error('Expected a JSON object with a "type".')
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        handler = self.client_handlers().get(content["type"])
        if handler is None:
            known = ", ".join(sorted(self.client_handlers()))
            await self.send_error(f"Unknown message type {content['type'][:40]!r}; known types: {known}.")
            return
        await handler(content)

    def client_handlers(self):
        return {"ping": self.on_ping}

    async def on_ping(self, content) -> None:
        await self.send_json({"type": "pong"})

    async def send_error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message})

    async def run_event(self, message) -> None:
        """A group message from `events.publish`: forward its event as is."""
        await self.send_json(message["event"])

    async def sweep_event(self, message) -> None:
        """A group message from `events.publish_sweep`: forward its event as is."""
        await self.send_json(message["event"])


class _SnapshotConsumer(_EventStreamConsumer):
    """One object's snapshot, then its group's events; `resync` sends a fresh snapshot.

    Subclasses name the URL kwarg, the access check, the group and the snapshot reader.
    """

    id_kwarg = ""
    gone_message = ""

    def visible(self, user, object_id: int):
        raise NotImplementedError

    def group(self, object_id: int) -> str:
        raise NotImplementedError

    def read_snapshot(self, user, object_id: int) -> dict | None:
        raise NotImplementedError

    async def connect(self):
        user = self.scope.get("user")
        self.object_id = self.scope["url_route"]["kwargs"][self.id_kwarg]
        if not getattr(user, "is_authenticated", False):
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        if await database_sync_to_async(self.visible)(user, self.object_id) is None:
            await self.refuse(CLOSE_NOT_FOUND)
            return
        await self.accept()
        self.resync_budget = TokenBucket(RESYNC_BURST, RESYNC_BURST / RESYNC_WINDOW_SECONDS)
        await self.join(self.group(self.object_id))
        await self.send_snapshot()

    def client_handlers(self):
        return {**super().client_handlers(), "resync": self.on_resync}

    async def on_resync(self, content) -> None:
        wait = self.resync_budget.take()
        if wait:
            await self.send_error(f"too many resyncs; wait {math.ceil(wait)} s")
            return
        await self.send_snapshot()

    async def send_snapshot(self) -> None:
        data = await database_sync_to_async(self.read_snapshot)(self.scope["user"], self.object_id)
        if data is None:  # deleted (or access lost) since the socket opened
            await self.send_error(self.gone_message)
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json(data)


class ExperimentConsumer(_SnapshotConsumer):
    """ws/experiments/<id>/: one run's snapshot, then its events (status, progress, epoch, log, finished)."""

    id_kwarg = "experiment_id"
    gone_message = "This run no longer exists."

    def visible(self, user, object_id):
        return selectors.visible_run(user=user, experiment_id=object_id)

    def group(self, object_id):
        return events.run_group(object_id)

    def read_snapshot(self, user, object_id):
        return live.snapshot(user=user, experiment_id=object_id)


class SweepConsumer(_SnapshotConsumer):
    """ws/sweeps/<id>/: one sweep's snapshot (= GET /api/sweeps/<id>/), then its events (trial_started,
    trial_epoch, trial_ended, best_changed, sweep_status, sweep_finished)."""

    id_kwarg = "sweep_id"
    gone_message = "This sweep no longer exists."

    def visible(self, user, object_id):
        return selectors.visible_sweep(user=user, sweep_id=object_id)

    def group(self, object_id):
        return events.sweep_group(object_id)

    def read_snapshot(self, user, object_id):
        return live_sweeps.snapshot(user=user, sweep_id=object_id)


class UserExperimentsConsumer(_EventStreamConsumer):
    """ws/experiments/: the status events of every run the user owns."""

    async def connect(self):
        user = self.scope.get("user")
        if not getattr(user, "is_authenticated", False):
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        await self.accept()
        await self.join(events.user_group(user.pk))
