"""A full disk under the store: the gateway refuses new referrals with a clear 503 OperationOutcome
(never a 500, never a half-written referral; reads the audit trail cannot record are refused the same
way), and takes referrals again once space is freed; every referral it accepted is still there and
the database is intact.

The store directory is a small ext4 file system on a loop device (needs root; skipped otherwise)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import Settings
from tests import samples
from tests.conftest import serve, shutdown

pytestmark = pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "24M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    if subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=False).returncode != 0:
        pytest.skip("no loop device to mount a small file system on")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Take every free block of the file system (a file grown until ENOSPC)."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


async def test_a_full_disk_refuses_clearly_and_loses_nothing(gateway_settings: Settings, small_disk: Path) -> None:
    gateway = await serve(gateway_settings.model_copy(update={"data_dir": small_disk}))
    accepted: list[str] = []
    try:
        async with gateway.client() as client:
            for _ in range(5):
                response = await client.post("/fhir/ServiceRequest", json=samples.service_request())
                assert response.status_code == 201, response.text
                accepted.append(response.json()["id"])
            filler = fill(small_disk)
            refused = 0
            for _ in range(20):  # the first may still fit in pages the database already holds
                response = await client.post(
                    "/fhir/ServiceRequest", json=samples.service_request(note=[{"text": uuid.uuid4().hex * 200}])
                )
                assert response.status_code in (201, 503), response.text
                assert response.json()["resourceType"] == (
                    "ServiceRequest" if response.status_code == 201 else "OperationOutcome"
                )
                if response.status_code == 201:
                    accepted.append(response.json()["id"])
                else:
                    refused += 1
            assert refused, "a full disk must refuse new referrals"
            # a read the audit trail cannot record is not disclosed: 503 too, until space is back
            unrecorded = await client.get(f"/fhir/ServiceRequest/{accepted[0]}")
            assert unrecorded.status_code in (200, 503) and unrecorded.json()["resourceType"] != "Bundle"
            filler.unlink()
            for referral_id in accepted:
                assert (await client.get(f"/fhir/ServiceRequest/{referral_id}")).status_code == 200
            again = await client.post("/fhir/ServiceRequest", json=samples.service_request())
            assert again.status_code == 201, again.text
            accepted.append(again.json()["id"])
    finally:
        await shutdown(gateway)
    with sqlite3.connect(small_disk / "gateway.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in conn.execute("SELECT id FROM referrals")}
    assert set(accepted) <= stored
    print(f"\ndisk full: {len(accepted)} accepted, {refused} refused with 503, integrity ok")
