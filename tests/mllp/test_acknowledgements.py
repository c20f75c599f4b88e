"""Honest acknowledgements over a real MLLP socket, in front of the real intake and SQLite store: in
enhanced mode a message the gateway did not take is never answered CA. A refusal gets CR with its
ERR whatever MSH-16 asks (a UK PAS asks MSH-15 AL, MSH-16 NE, so it would never hear of it
otherwise); a failure of the gateway's own (the store stopped) gets CE, and the resend, once the store
is back, CA."""

from __future__ import annotations

from adapters.hl7v2 import parser
from gateway.mllp.listener import MllpListener
from gateway.store import Store
from tests.hl7v2.messages import failing_check_digit, pas_ref_i12
from tests.mllp.conftest import END, VT, Sender
from tests.samples import valid_nhs_number


def control_id(text: str) -> str:
    return parser.parse(text).msh.text(10)


def answers(acks: list[str]) -> list[tuple[str, str]]:
    """MSA-1 and MSA-2 of each ACK."""
    return [(m.first("MSA").text(1), m.first("MSA").text(2)) for m in map(parser.parse, acks)]  # type: ignore[union-attr]


async def test_a_pas_referral_with_a_bad_nhs_number_asking_ne_gets_cr_with_err_at_pid_3(
    listener: MllpListener, store: Store
) -> None:
    text = pas_ref_i12(failing_check_digit(valid_nhs_number()), accept="AL", application="NE")
    sender = await Sender.open(listener.port)
    answer = parser.parse(await sender.send(text))
    msa, err = answer.first("MSA"), answer.first("ERR")
    assert msa is not None and (msa.text(1), msa.text(2)) == ("CR", control_id(text))
    # v2.4, as the PAS sends: ERR-1 is SEG^sequence^field^code&text&HL70357
    assert err is not None and [err.text(1, c) for c in (1, 2, 3, 4)] == ["PID", "1", "3", "102"]
    assert msa.text(3) == "the NHS number is not valid"
    ok = pas_ref_i12(valid_nhs_number())  # the connection goes on: the next message is answered CA
    assert answers([await sender.send(ok)]) == [("CA", control_id(ok))]
    await sender.close()
    assert await store.message_referral("PAS^RX1", control_id(text)) is None, "nothing was kept of it"


async def test_a_refused_message_gets_one_cr_and_no_application_ack_after_it(listener: MllpListener) -> None:
    text = pas_ref_i12(failing_check_digit(valid_nhs_number()), accept="AL", application="AL")
    ok = pas_ref_i12(valid_nhs_number(), accept="AL", application="AL")
    sender = await Sender.open(listener.port)
    sender.writer.write(b"".join(VT + t.encode() + END for t in (text, ok)))
    acks = [await sender.ack() for _ in range(3)]
    await sender.close()
    assert answers(acks) == [("CR", control_id(text)), ("CA", control_id(ok)), ("AA", control_id(ok))]


async def test_a_store_that_is_down_gets_ce_and_the_resend_once_it_is_back_ca(
    listener: MllpListener, store: Store
) -> None:
    text = pas_ref_i12(valid_nhs_number())
    await store.stop()  # the store is really gone: nothing can commit
    sender = await Sender.open(listener.port)
    down = parser.parse(await sender.send(text))
    assert (down.first("MSA").text(1), down.first("MSA").text(2)) == ("CE", control_id(text))  # type: ignore[union-attr]
    assert down.first("ERR") is not None and "store" in down.first("MSA").text(3)  # type: ignore[union-attr]
    await store.start()
    again = await sender.send(text)
    await sender.close()
    assert answers([again]) == [("CA", control_id(text))]
    assert await store.message_referral("PAS^RX1", control_id(text)) is not None
