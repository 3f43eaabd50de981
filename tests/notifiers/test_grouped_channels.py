"""A grouped message names its alerts (capped, "and N more") on Discord, Teams, Telegram, ntfy."""

from __future__ import annotations

import json

import pytest

from hookwatch.notifiers import discord, ntfy, teams, telegram
from hookwatch.notifiers.message import GROUP_LISTED, AlertMessage, GroupEntry, GroupInfo
from tests.notifiers.helpers import alert


def grouped(total: int) -> AlertMessage:
    entries = [GroupEntry(rule="model-error-rate", scope="model", name=f"acme/model-{i:03d}",
                          severity="critical", state="firing") for i in range(total)]
    group = GroupInfo(key="g:model-error-rate", label="rule=model-error-rate",
                      firing=total, resolved=0, entries=entries[:GROUP_LISTED])
    return alert("trigger", group=group)


RENDER = {
    "discord": lambda m: json.dumps(discord.build_body(m)),
    "teams": lambda m: json.dumps(teams.build_body(m)),
    "telegram": telegram.build_text,
    "ntfy": ntfy.build_body,
}


@pytest.mark.parametrize("channel", sorted(RENDER))
def test_the_group_is_counted_and_named(channel: str) -> None:
    text = RENDER[channel](grouped(100))
    assert "100 alerts in this group" in text
    assert "acme/model-000" in text and f"acme/model-{GROUP_LISTED - 1:03d}" in text
    assert f"acme/model-{GROUP_LISTED:03d}" not in text  # capped
    assert f"and {100 - GROUP_LISTED} more" in text


@pytest.mark.parametrize("channel", sorted(RENDER))
def test_a_lone_alert_has_no_group_list(channel: str) -> None:
    assert "alerts in this group" not in RENDER[channel](alert("trigger"))
