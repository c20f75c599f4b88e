"""The MLLP listener over loopback sockets in front of the real intake and store: ACKs only after the
commit, many messages per connection and many connections, split frames, resends, bad input that
never stops the listener, oversize frames, idle connections, the source allowlist and TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import hl7
import pytest

from gateway.intake import Intake
from gateway.mllp.handler import ReferralHandler
from gateway.mllp.listener import MllpListener
from gateway.store import Store
from tests.hl7v2.messages import CUSTOM, HL7, IAPT, MSK, fresh, sample, with_field
from tests.mllp.conftest import END, VT, Sender, mllp_settings


def msa(ack: str) -> tuple[str, str]:
    segment = hl7.parse(ack.replace("\n", "\r")).segment("MSA")
    return str(segment[1]), str(segment[2])


def err_3(ack: str) -> str:
    return str(hl7.parse(ack).segment("ERR")[3][0][0])


def control_id(text: str) -> str:
    return text.split("\r")[0].split("|")[9]


async def test_a_referral_is_acknowledged_aa_once_it_is_stored(listener: MllpListener, store: Store) -> None:
    text = fresh(sample(MSK))
    sender = await Sender.open(listener.port)
    ack = await sender.send(text)
    await sender.close()
    assert msa(ack) == ("AA", control_id(text))
    stored = await store.message_referral("EMISWeb^A81001", control_id(text))
    assert stored is not None and stored.topic == "referrals.msk-pain" and stored.channel == "hl7v2-mllp"


async def test_many_messages_on_one_connection_are_answered_in_order(listener: MllpListener) -> None:
    texts = [fresh(sample(name)) for name in (MSK, IAPT, MSK)]
    sender = await Sender.open(listener.port)
    acks = [await sender.send(text) for text in texts]
    await sender.close()
    assert [msa(a) for a in acks] == [("AA", control_id(t)) for t in texts]


async def test_frames_sent_back_to_back_are_all_answered(listener: MllpListener) -> None:
    texts = [fresh(sample(MSK)) for _ in range(3)]
    sender = await Sender.open(listener.port)
    sender.writer.write(b"".join(VT + t.encode() + END for t in texts))
    acks = [await sender.ack() for _ in texts]
    await sender.close()
    assert [msa(a)[1] for a in acks] == [control_id(t) for t in texts]


async def test_a_frame_split_across_many_writes_is_one_message(listener: MllpListener) -> None:
    data = VT + fresh(sample(MSK)).encode() + END
    sender = await Sender.open(listener.port)
    for at in range(0, len(data), 7):
        sender.writer.write(data[at : at + 7])
        await sender.writer.drain()
        await asyncio.sleep(0.001)
    ack = await sender.ack()
    await sender.close()
    assert msa(ack)[0] == "AA"


async def test_a_resend_with_the_same_control_id_is_acknowledged_again_and_stored_once(
    listener: MllpListener, store: Store
) -> None:
    text = fresh(sample(MSK))
    first, second = await Sender.open(listener.port), await Sender.open(listener.port)
    acks = [await first.send(text), await second.send(text), await first.send(text)]
    await first.close()
    await second.close()
    assert [msa(a) for a in acks] == [("AA", control_id(text))] * 3
    nhs = text.split("PID|1||")[1].split("^")[0]
    assert len(await store.search({"nhs_number": nhs})) == 1


async def test_custom_encoding_characters_are_answered_in_kind(listener: MllpListener) -> None:
    sender = await Sender.open(listener.port)
    ack = await sender.send(sample(CUSTOM))
    await sender.close()
    assert ack.startswith("MSH*$!@%*") and "\rMSA*AA*VIS-0000771" in ack


async def test_bad_input_is_refused_and_the_connection_goes_on(listener: MllpListener) -> None:
    sender = await Sender.open(listener.port)
    garbage = await sender.send("this is not HL7 at all")
    bad_nhs = await sender.send(with_field(fresh(sample(MSK)), "PID", 3, "9434765918^^^NHS^NH"))
    wrong_type = await sender.send(with_field(fresh(sample(MSK)), "MSH", 9, "ADT^A01^ADT_A01"))
    good = await sender.send(fresh(sample(MSK)))
    await sender.close()
    assert msa(garbage) == ("AR", "") and err_3(garbage) == "100"
    assert msa(bad_nhs)[0] == "AE" and err_3(bad_nhs) == "102" and "ERR||PID^1^3|" in bad_nhs
    assert msa(wrong_type)[0] == "AR" and err_3(wrong_type) == "200"
    assert msa(good)[0] == "AA"


async def test_an_unroutable_referral_gets_ae(listener: MllpListener) -> None:
    sender = await Sender.open(listener.port)
    unknown_service = with_field(with_field(fresh(sample(MSK)), "PRD", 7, "ZZZ99^ODS", occurrence=2), "RF1", 3, "")
    ack = await sender.send(unknown_service)
    await sender.close()
    assert msa(ack)[0] == "AE" and "no service takes this referral" in ack


async def test_a_missing_required_segment_gets_ae_naming_it(listener: MllpListener) -> None:
    text = "\r".join(s for s in fresh(sample(MSK)).split("\r") if not s.startswith("PID"))
    sender = await Sender.open(listener.port)
    ack = await sender.send(text)
    await sender.close()
    assert msa(ack)[0] == "AE" and "ERR||PID^1|100^Segment sequence error^HL70357" in ack


async def test_enhanced_mode_gets_a_commit_ack_then_an_application_ack(listener: MllpListener) -> None:
    text = with_field(with_field(fresh(sample(MSK)), "MSH", 15, "AL"), "MSH", 16, "AL")
    sender = await Sender.open(listener.port)
    commit = await sender.send(text)
    application = await sender.ack()
    await sender.close()
    assert [msa(commit), msa(application)] == [("CA", control_id(text)), ("AA", control_id(text))]


async def test_fifty_concurrent_senders(listener: MllpListener, store: Store) -> None:
    async def one_sender() -> list[tuple[str, str]]:
        sender = await Sender.open(listener.port)
        texts = [fresh(sample(name)) for name in (MSK, IAPT)]
        answers = [msa(await sender.send(t)) == ("AA", control_id(t)) for t in texts]
        await sender.close()
        return [("ok" if a else "wrong", t) for a, t in zip(answers, texts, strict=True)]

    results = [r for batch in await asyncio.gather(*(one_sender() for _ in range(50))) for r in batch]
    assert [r[0] for r in results] == ["ok"] * 100
    assert len(await store.search({"channel": "hl7v2-mllp"}, limit=500)) == 100


async def test_an_oversize_frame_gets_ar_and_the_connection_is_closed(intake: Intake) -> None:
    settings = mllp_settings(max_frame_bytes=512)
    async with MllpListener(settings, ReferralHandler(intake, HL7), HL7) as listener:
        sender = await Sender.open(listener.port)
        sender.writer.write(VT + b"MSH|^~\\&|" + b"x" * 600)
        ack = await sender.ack()
        assert msa(ack)[0] == "AR" and "512 bytes" in ack
        assert await sender.closed_by_peer()
        await sender.close()


async def test_an_idle_connection_is_closed(intake: Intake) -> None:
    async with MllpListener(mllp_settings(idle_timeout_s=0.2), ReferralHandler(intake, HL7), HL7) as listener:
        sender = await Sender.open(listener.port)
        assert await sender.closed_by_peer(timeout=3)
        await sender.close()


async def test_a_source_outside_the_allowlist_is_refused(intake: Intake) -> None:
    settings = mllp_settings(allowed_sources=["10.0.0.0/8"])
    async with MllpListener(settings, ReferralHandler(intake, HL7), HL7) as listener:
        sender = await Sender.open(listener.port)
        sender.writer.write(VT + fresh(sample(MSK)).encode() + END)
        assert await sender.closed_by_peer()
        await sender.close()


async def test_a_source_in_the_allowlist_is_served(intake: Intake) -> None:
    settings = mllp_settings(allowed_sources=["10.0.0.0/8", "127.0.0.1"])
    async with MllpListener(settings, ReferralHandler(intake, HL7), HL7) as listener:
        sender = await Sender.open(listener.port)
        assert msa(await sender.send(fresh(sample(MSK))))[0] == "AA"
        await sender.close()


async def test_start_and_stop_are_idempotent_and_stop_closes_connections(intake: Intake) -> None:
    listener = MllpListener(mllp_settings(), ReferralHandler(intake, HL7), HL7)
    await listener.start()
    await listener.start()
    sender = await Sender.open(listener.port)
    await listener.stop()
    await listener.stop()
    assert await sender.closed_by_peer()
    await sender.close()
    with pytest.raises(OSError):
        await Sender.open(listener.port)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls(intake: Intake, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = mllp_settings(tls_certfile=cert, tls_keyfile=key)
    async with MllpListener(settings, ReferralHandler(intake, HL7), HL7) as listener:
        client = ssl.create_default_context(cafile=str(cert))
        client.check_hostname = False
        sender = await Sender.open(listener.port, ssl=client)
        assert msa(await sender.send(fresh(sample(MSK))))[0] == "AA"
        await sender.close()
        plain = await Sender.open(listener.port)
        plain.writer.write(VT + fresh(sample(MSK)).encode() + END)
        assert await plain.closed_by_peer(), "a sender without TLS gets no answer"
        await plain.close()
