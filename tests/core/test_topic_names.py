"""Topic names come from schemas/topics.json, by role, through the settings: none is written in the
code, a deployment's own SCHEMAS_DIR renames them, and a variable renames one alone."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from gateway.bus.topics import load_topics
from gateway.settings import SCHEMAS_DIR, DeliverySettings, Settings, TopicSettings, topic_roles

ROOT = Path(__file__).resolve().parents[2]


def test_every_topic_has_a_role_and_the_settings_name_each_role_from_the_file() -> None:
    roles = topic_roles(SCHEMAS_DIR)
    assert all(t.role for t in load_topics(SCHEMAS_DIR))
    settings = Settings()
    assert settings.delivery.topics == [*roles["referral"], *roles["status"]]
    assert settings.delivery.retry_topic == roles["retry"][0]
    assert settings.delivery.dead_letter_topic == roles["dead-letter"][0]
    assert settings.topics == TopicSettings(
        status=roles["status"][0], status_updates=roles["status-updates"][0], audit=roles["audit"][0]
    )


def test_no_topic_name_is_written_in_the_gateways_code() -> None:
    names = {t.name for t in load_topics(SCHEMAS_DIR)}
    found = []
    for path in [*(ROOT / "gateway").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert not found, found


@pytest.fixture
def renamed_schemas(tmp_path: Path) -> Path:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, schemas)
    data = json.loads((schemas / "topics.json").read_text())
    for topic in data["topics"]:
        topic["name"] = topic["name"].replace("referrals.", "area7.referrals.").replace("gateway.", "area7.")
    (schemas / "topics.json").write_text(json.dumps(data))
    return schemas


def test_a_deployments_own_schemas_dir_renames_every_topic(renamed_schemas: Path) -> None:
    settings = Settings(schemas_dir=renamed_schemas)
    named = [*settings.delivery.topics, settings.delivery.retry_topic, settings.delivery.dead_letter_topic]
    named += [settings.topics.status, settings.topics.status_updates, settings.topics.audit]
    assert all(name.startswith("area7.") for name in named), named
    assert set(named) == {t.name for t in load_topics(renamed_schemas)}


def test_a_variable_renames_one_topic_and_the_rest_follow_the_file(
    renamed_schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOPICS_STATUS_UPDATES", "receivers.task-updates")
    monkeypatch.setenv("DELIVERY_RETRY_TOPIC", "area7.retries")
    settings = Settings(schemas_dir=renamed_schemas)
    assert settings.topics.status_updates == "receivers.task-updates"
    assert settings.delivery.retry_topic == "area7.retries"
    assert settings.topics.status == "area7.referrals.status"
    assert DeliverySettings().retry_topic == topic_roles(SCHEMAS_DIR)["retry"][0]
