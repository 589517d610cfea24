"""Websocket control messages are rate-limited per connection: resyncs (each one a database read
on the consumers' shared database thread) and messages overall. Beyond a limit the client gets an
`error` event saying how long to wait, nothing else happens, and the socket stays up."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync

from experiments import consumers
from tests.experiments.test_consumers import open_socket
from tests.security.conftest import make_run

pytestmark = pytest.mark.django_db(transaction=True)


async def _drain(communicator, quiet: float = 0.5) -> list[dict]:
    """Every message until none arrives for `quiet` seconds."""
    received = []
    while not await communicator.receive_nothing(timeout=quiet):
        received.append(await communicator.receive_json_from(timeout=5))
    return received


def test_resyncs_beyond_the_budget_get_an_error_saying_how_long_to_wait_and_no_snapshot(user):
    run = make_run(user)

    async def body():
        socket = await open_socket(f"/ws/experiments/{run.pk}/", user)
        assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"  # on connect: free
        replies = []
        for _ in range(consumers.RESYNC_BURST + 2):
            await socket.send_json_to({"type": "resync"})
            replies.append(await socket.receive_json_from(timeout=5))
        await socket.send_json_to({"type": "ping"})
        replies.append(await socket.receive_json_from(timeout=5))
        await socket.disconnect()
        return replies

    replies = async_to_sync(body)()
    kinds = [reply["type"] for reply in replies]
    assert kinds == ["snapshot"] * consumers.RESYNC_BURST + ["error", "error", "pong"]
    wait = consumers.RESYNC_WINDOW_SECONDS / consumers.RESYNC_BURST
    for refused in replies[consumers.RESYNC_BURST:-1]:
        match = re.fullmatch(r"too many resyncs; wait (\d+) s", refused["message"])
        assert match, refused
        assert 1 <= int(match.group(1)) <= wait + 1


def test_the_resync_budget_refills_over_time(user, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(consumers.TokenBucket, "clock", staticmethod(lambda: now[0]))
    run = make_run(user)
    per_resync = consumers.RESYNC_WINDOW_SECONDS / consumers.RESYNC_BURST

    async def resync(socket) -> dict:
        await socket.send_json_to({"type": "resync"})
        return await socket.receive_json_from(timeout=5)

    async def body():
        socket = await open_socket(f"/ws/experiments/{run.pk}/", user)
        await socket.receive_json_from(timeout=5)
        kinds = [(await resync(socket))["type"] for _ in range(consumers.RESYNC_BURST)]
        now[0] += per_resync * 0.9
        refused = await resync(socket)
        now[0] += per_resync * 0.1
        kinds += [refused["type"], (await resync(socket))["type"], (await resync(socket))["type"]]
        await socket.disconnect()
        return kinds, refused["message"]

    kinds, message = async_to_sync(body)()
    assert kinds == ["snapshot"] * consumers.RESYNC_BURST + ["error", "snapshot", "error"]
    assert message == "too many resyncs; wait 1 s"  # 0.1 of the 3.3 s a resync takes to come back


def test_each_connection_has_its_own_resync_budget(user):
    run = make_run(user)

    async def body():
        first = await open_socket(f"/ws/experiments/{run.pk}/", user)
        second = await open_socket(f"/ws/experiments/{run.pk}/", user)
        for socket in (first, second):
            await socket.receive_json_from(timeout=5)
        for _ in range(consumers.RESYNC_BURST):
            await first.send_json_to({"type": "resync"})
            await first.receive_json_from(timeout=5)
        await second.send_json_to({"type": "resync"})
        reply = await second.receive_json_from(timeout=5)
        await first.disconnect()
        await second.disconnect()
        return reply

    assert async_to_sync(body)()["type"] == "snapshot"


@pytest.mark.parametrize("route", ["run", "user"])
def test_a_message_flood_is_dropped_with_one_error_per_second_and_the_socket_stays_up(user, route, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(consumers.TokenBucket, "clock", staticmethod(lambda: now[0]))
    path = f"/ws/experiments/{make_run(user).pk}/" if route == "run" else "/ws/experiments/"

    async def flood(socket, count: int) -> list[dict]:
        for _ in range(count):
            await socket.send_json_to({"type": "ping"})
        return await _drain(socket)

    async def body():
        socket = await open_socket(path, user)
        if route == "run":
            await socket.receive_json_from(timeout=5)
        first = await flood(socket, consumers.MESSAGE_BURST * 5)
        now[0] += 0.5  # half a second: 5 messages' worth, but no second error yet
        second = await flood(socket, 10)
        now[0] += 0.6
        third = await flood(socket, 10)
        await socket.disconnect()
        return first, second, third

    first, second, third = async_to_sync(body)()
    assert first == [{"type": "pong"}] * consumers.MESSAGE_BURST + [
        {"type": "error", "message": "too many messages; wait 1 s"}]
    assert second == [{"type": "pong"}] * 5
    assert third == [{"type": "pong"}] * 6 + [{"type": "error", "message": "too many messages; wait 1 s"}]
