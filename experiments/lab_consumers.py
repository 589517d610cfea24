"""ws/lab/: the staff-only push channel of the lab status page (/lab/).

Forwards the nudges of experiments/lab_events.py (`{"type": "lab_changed", "reason", ...}`: a run
changed status, a worker appeared or stopped); the page then re-reads GET /api/lab/status/. It
answers `{"type": "ping"}` like the run sockets (the client protocol of experiments/consumers.py).

    4401  not logged in
    4403  logged in but not staff
"""

from __future__ import annotations

from experiments import lab_events
from experiments.consumers import CLOSE_UNAUTHENTICATED, _EventStreamConsumer

CLOSE_NOT_STAFF = 4403


class LabStatusConsumer(_EventStreamConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if not getattr(user, "is_authenticated", False):
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        if not user.is_staff:
            await self.refuse(CLOSE_NOT_STAFF)
            return
        await self.accept()
        await self.join(lab_events.LAB_GROUP)
        await self.send_json({"type": "hello", "group": lab_events.LAB_GROUP})

    async def lab_event(self, message) -> None:
        await self.send_json(message["event"])
