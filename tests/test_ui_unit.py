"""Pieces of the chat page that are clearer tested without a browser."""

from __future__ import annotations

import threading
import time

import pytest

from rag.errors import InputError
from rag.serve import check_bind, is_loopback


def test_waiting_room_serialises_and_turns_away_the_overflow() -> None:
    from ui.app import WaitingRoom

    room = WaitingRoom(max_waiting=1)
    assert room.enter()  # working
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(room.enter()))
    waiter.start()
    time.sleep(0.2)
    assert results == []  # the second one waits for the first
    assert room.enter() is False  # a third has no room
    room.leave()
    waiter.join(timeout=5)
    assert results == [True]
    room.leave()
    assert room.waiting == 0


def test_bind_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("0.0.0.0", "ann:s3cret") == ("ann", "s3cret")
    with pytest.raises(InputError, match="authentication"):
        check_bind("0.0.0.0", None)
