"""The MLLP connection as a pure object: bytes in, frames out, framed bytes to send, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.mllp.connection import (
    END_BLOCK,
    NEED_DATA,
    START_BLOCK,
    ConnectionBroken,
    FrameTooLarge,
    MllpConnection,
    Unframable,
)
from gateway.errors import MalformedInput

VT, END = b"\x0b", b"\x1c\x0d"


def frames_of(framer: MllpConnection) -> list[bytes]:
    out = []
    while (frame := framer.next_frame()) is not NEED_DATA:
        assert isinstance(frame, bytes)
        out.append(frame)
    return out


def test_one_frame() -> None:
    framer = MllpConnection(1024)
    framer.receive_data(VT + b"MSH|^~\\&|A\rPID|1" + END)
    assert frames_of(framer) == [b"MSH|^~\\&|A\rPID|1"]
    assert framer.buffered == 0


def test_nothing_yet_needs_data() -> None:
    framer = MllpConnection(1024)
    assert framer.next_frame() is NEED_DATA
    framer.receive_data(VT + b"MSH|")
    assert framer.next_frame() is NEED_DATA


def test_a_frame_split_byte_by_byte_across_reads() -> None:
    framer = MllpConnection(1024)
    found: list[bytes] = []
    for byte in VT + b"MSH|^~\\&|A" + END:
        framer.receive_data(bytes([byte]))
        found += frames_of(framer)
    assert found == [b"MSH|^~\\&|A"]


def test_the_end_block_split_between_its_two_bytes() -> None:
    framer = MllpConnection(1024)
    framer.receive_data(VT + b"MSH|A\x1c")
    assert framer.next_frame() is NEED_DATA
    framer.receive_data(b"\x0d")
    assert frames_of(framer) == [b"MSH|A"]


def test_many_frames_in_one_read_in_order() -> None:
    framer = MllpConnection(1024)
    framer.receive_data(b"".join(VT + f"MSH|{i}".encode() + END for i in range(5)))
    assert frames_of(framer) == [f"MSH|{i}".encode() for i in range(5)]


def test_noise_between_frames_is_dropped() -> None:
    framer = MllpConnection(1024)
    framer.receive_data(b"\r\n" + VT + b"MSH|1" + END + b"\r\n\r\n" + VT + b"MSH|2" + END + b"\n")
    assert frames_of(framer) == [b"MSH|1", b"MSH|2"]
    assert framer.buffered == 0


def test_an_abandoned_frame_is_dropped_for_the_one_that_follows() -> None:
    framer = MllpConnection(1024)
    framer.receive_data(VT + b"MSH|half" + VT + b"MSH|whole" + END)
    assert frames_of(framer) == [b"MSH|whole"]


def test_a_lone_fs_inside_a_frame_does_not_end_it() -> None:
    framer = MllpConnection(1024)
    framer.receive_data(VT + b"MSH|a\x1cb" + END)
    assert frames_of(framer) == [b"MSH|a\x1cb"]


def test_an_oversize_frame_raises() -> None:
    framer = MllpConnection(10)
    framer.receive_data(VT + b"x" * 11 + END)
    with pytest.raises(FrameTooLarge) as refused:
        framer.next_frame()
    assert isinstance(refused.value, MalformedInput) and "10 bytes" in refused.value.message


def test_an_oversize_frame_raises_before_it_ends() -> None:
    framer = MllpConnection(10)
    framer.receive_data(VT + b"x" * 8)
    assert framer.next_frame() is NEED_DATA
    framer.receive_data(b"x" * 8)
    with pytest.raises(FrameTooLarge):
        framer.next_frame()
    assert framer.buffered == 0


def test_a_frame_of_exactly_the_limit_is_taken() -> None:
    framer = MllpConnection(10)
    framer.receive_data(VT + b"x" * 10 + END)
    assert frames_of(framer) == [b"x" * 10]


def test_a_frame_of_exactly_the_limit_is_taken_when_its_end_block_arrives_split() -> None:
    framer = MllpConnection(10)
    framer.receive_data(VT + b"x" * 10 + b"\x1c")
    assert framer.next_frame() is NEED_DATA
    framer.receive_data(b"\x0d")
    assert frames_of(framer) == [b"x" * 10]


def test_past_an_oversize_frame_the_connection_reads_no_more_but_can_still_answer() -> None:
    framer = MllpConnection(10)
    framer.receive_data(VT + b"x" * 11)
    with pytest.raises(FrameTooLarge):
        framer.next_frame()
    assert framer.broken
    with pytest.raises(ConnectionBroken):
        framer.receive_data(VT + b"MSH|1" + END)
    with pytest.raises(ConnectionBroken):
        framer.next_frame()
    assert framer.send(b"MSH|AR") == VT + b"MSH|AR" + END


def test_send_frames_a_message_the_other_side_reads_back_whole() -> None:
    sender, receiver = MllpConnection(1024), MllpConnection(1024)
    for message in (b"MSH|^~\\&|A\rPID|1", b"MSH|2"):
        receiver.receive_data(sender.send(message))
    assert frames_of(receiver) == [b"MSH|^~\\&|A\rPID|1", b"MSH|2"]


def test_the_block_characters_are_the_mllp_ones() -> None:
    assert (START_BLOCK, END_BLOCK) == (b"\x0b", b"\x1c\r")


@pytest.mark.parametrize("inside", [b"\x0b", b"\x1c", b"\x1c\r"])
def test_send_refuses_a_message_that_would_end_or_restart_its_frame(inside: bytes) -> None:
    with pytest.raises(Unframable):
        MllpConnection(1024).send(b"MSH|a" + inside + b"b")


payloads = st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")), max_size=8)


@given(messages=payloads, cuts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
def test_any_messages_cut_anywhere_come_out_whole_and_in_order(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(VT + m + END for m in messages)
    framer = MllpConnection(1024)
    found: list[bytes] = []
    at, i = 0, 0
    while at < len(stream):
        step = cuts[i % len(cuts)]
        framer.receive_data(stream[at : at + step])
        found += frames_of(framer)
        at, i = at + step, i + 1
    assert found == messages
