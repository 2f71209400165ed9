"""import_triggers and export_triggers: the trigger file of INTERFACE.md."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import InstagramAccountFactory, TriggerFactory, WorkspaceFactory
from triggers.models import Trigger

pytestmark = pytest.mark.django_db

# Verbatim from INTERFACE.md, "Trigger file (JSON)".
INTERFACE_SAMPLE = """{"triggers": [{
  "account": "acme.studio",
  "name": "Guide giveaway",
  "event": "comment",
  "match": "contains",
  "keywords": ["guide", "send guide"],
  "media_ids": [],
  "public_replies": ["Sent! Check your DMs", "On its way to your inbox"],
  "messages": [{"text": "Here is the guide: https://example.com/guide"}],
  "enabled": true,
  "priority": 0
}]}"""


def trigger_entry(account, /, **overrides) -> dict:
    entry = {
        "account": account.username,
        "name": "Guide giveaway",
        "event": "comment",
        "match": "contains",
        "keywords": ["guide"],
        "media_ids": [],
        "public_replies": ["Sent! Check your DMs"],
        "messages": [{"text": "Here is the guide: https://example.com/guide"}],
        "enabled": True,
        "priority": 0,
    }
    entry.update(overrides)
    return entry


def write_file(tmp_path, data) -> str:
    path = tmp_path / "triggers.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def import_triggers(path: str) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_triggers", path, stdout=stdout, stderr=stderr)
    return stdout.getvalue()


def export_triggers(*args: str) -> dict:
    stdout = io.StringIO()
    call_command("export_triggers", *args, stdout=stdout)
    return json.loads(stdout.getvalue())


def trigger_rows() -> list[tuple]:
    """Everything an import could write, to compare before and after."""
    return list(
        Trigger.objects.order_by("pk").values_list(
            "pk", "account_id", "name", "event", "match", "keywords", "media_ids",
            "public_replies", "messages", "enabled", "priority", "extra",
        )
    )  # fmt: skip


# --- import -------------------------------------------------------------------------------------
def test_import_the_interface_sample(tmp_path):
    account = InstagramAccountFactory(username="acme.studio")

    output = import_triggers(write_file(tmp_path, INTERFACE_SAMPLE))

    trigger = Trigger.objects.get()
    assert trigger.account == account
    assert trigger.name == "Guide giveaway"
    assert trigger.event == "comment"
    assert trigger.match == "contains"
    assert trigger.keywords == ["guide", "send guide"]
    assert trigger.media_ids == []
    assert trigger.public_replies == ["Sent! Check your DMs", "On its way to your inbox"]
    assert trigger.messages == [{"text": "Here is the guide: https://example.com/guide"}]
    assert trigger.enabled is True
    assert trigger.priority == 0
    assert "1 created" in output


def test_import_from_stdin(monkeypatch):
    InstagramAccountFactory(username="acme.studio")
    monkeypatch.setattr("sys.stdin", io.StringIO(INTERFACE_SAMPLE))

    output = import_triggers("-")

    assert Trigger.objects.get().name == "Guide giveaway"
    assert "1 created" in output


def test_import_applies_defaults_for_optional_fields(tmp_path):
    account = InstagramAccountFactory()
    entry = {
        "account": account.username,
        "name": "Minimal",
        "event": "comment",
        "keywords": ["guide"],
        "messages": [{"text": "Hi"}],
    }

    import_triggers(write_file(tmp_path, {"triggers": [entry]}))

    trigger = Trigger.objects.get()
    assert trigger.match == "contains"
    assert trigger.enabled is True
    assert trigger.priority == 0
    assert trigger.media_ids == []
    assert trigger.public_replies == []


@pytest.mark.parametrize(
    "reference",
    [
        lambda account: account.username,
        lambda account: f"@{account.username}",
        lambda account: account.ig_user_id,
    ],
    ids=["username", "@username", "id"],
)
def test_import_names_the_account_by_username_or_id(tmp_path, reference):
    account = InstagramAccountFactory()
    InstagramAccountFactory()  # another account that must not receive it

    import_triggers(
        write_file(tmp_path, {"triggers": [trigger_entry(account, account=reference(account))]})
    )

    assert Trigger.objects.get().account == account


def test_import_twice_changes_nothing(tmp_path):
    account = InstagramAccountFactory()
    path = write_file(
        tmp_path,
        {"triggers": [trigger_entry(account, name="A"), trigger_entry(account, name="B")]},
    )
    import_triggers(path)
    before = list(Trigger.objects.order_by("pk").values_list("pk", "updated_at"))

    output = import_triggers(path)

    assert "0 created" in output
    assert "0 updated" in output
    assert "2 unchanged" in output
    assert list(Trigger.objects.order_by("pk").values_list("pk", "updated_at")) == before


def test_import_updates_a_changed_trigger_in_place(tmp_path):
    account = InstagramAccountFactory()
    import_triggers(write_file(tmp_path, {"triggers": [trigger_entry(account, priority=0)]}))
    original = Trigger.objects.get()

    output = import_triggers(
        write_file(tmp_path, {"triggers": [trigger_entry(account, priority=7)]})
    )

    updated = Trigger.objects.get()
    assert updated.pk == original.pk
    assert updated.priority == 7
    assert "0 created" in output
    assert "1 updated" in output


def test_same_name_on_two_accounts_is_two_triggers(tmp_path):
    first, second = InstagramAccountFactory(), InstagramAccountFactory()

    import_triggers(
        write_file(tmp_path, {"triggers": [trigger_entry(first), trigger_entry(second)]})
    )

    assert Trigger.objects.filter(name="Guide giveaway").count() == 2


def test_import_keeps_unknown_fields(tmp_path):
    account = InstagramAccountFactory()

    import_triggers(
        write_file(tmp_path, {"triggers": [trigger_entry(account, cooldown_minutes=30)]})
    )

    assert Trigger.objects.get().extra == {"cooldown_minutes": 30}


def test_import_warns_when_later_messages_of_a_comment_trigger_need_a_reply(tmp_path):
    account = InstagramAccountFactory()
    entry = trigger_entry(account, messages=[{"text": "Here it is"}, {"text": "And a bonus"}])
    stderr = io.StringIO()

    call_command(
        "import_triggers",
        write_file(tmp_path, {"triggers": [entry]}),
        stdout=io.StringIO(),
        stderr=stderr,
    )

    assert Trigger.objects.filter(name="Guide giveaway").exists()
    assert "warning" in stderr.getvalue()
    assert "quick reply" in stderr.getvalue()


def test_dm_triggers_import_without_warnings(tmp_path):
    account = InstagramAccountFactory()
    entry = trigger_entry(account, event="dm", public_replies=[])
    stderr = io.StringIO()

    call_command(
        "import_triggers",
        write_file(tmp_path, {"triggers": [entry]}),
        stdout=io.StringIO(),
        stderr=stderr,
    )

    assert Trigger.objects.filter(event="dm").exists()
    assert stderr.getvalue() == ""


def test_message_text_of_exactly_the_limit_is_accepted(tmp_path):
    account = InstagramAccountFactory()
    entry = trigger_entry(account, messages=[{"text": "x" * 1000}])

    import_triggers(write_file(tmp_path, {"triggers": [entry]}))

    assert Trigger.objects.get().messages == [{"text": "x" * 1000}]


# --- export and round trip ----------------------------------------------------------------------
def test_export_prints_the_trigger_file():
    trigger = TriggerFactory(keywords=["guide"], priority=3, extra={"cooldown_minutes": 30})

    data = export_triggers()

    assert data == {
        "triggers": [
            {
                "account": trigger.account.username,
                "name": trigger.name,
                "event": "comment",
                "match": "contains",
                "keywords": ["guide"],
                "examples": [],
                "media_ids": [],
                "public_replies": trigger.public_replies,
                "messages": trigger.messages,
                "enabled": True,
                "priority": 3,
                "cooldown_minutes": 30,
            }
        ]
    }


def test_export_then_import_changes_nothing(tmp_path):
    account = InstagramAccountFactory()
    import_triggers(
        write_file(
            tmp_path,
            {
                "triggers": [
                    trigger_entry(account, name="Giveaway", cooldown_minutes=30),
                    trigger_entry(account, name="Post", media_ids=["17900000000000001"]),
                    trigger_entry(account, name="DM", event="dm", match="fuzzy", public_replies=[]),
                    trigger_entry(account, name="Off", enabled=False, priority=-2),
                ]
            },
        )
    )
    TriggerFactory(match="exact", keywords=["LINK"])  # another account, made without a file
    before = trigger_rows()
    exported = export_triggers()

    output = import_triggers(write_file(tmp_path, exported))

    assert "0 created" in output
    assert "0 updated" in output
    assert "5 unchanged" in output
    assert trigger_rows() == before
    assert exported == export_triggers()
    assert {"name": "Giveaway", "cooldown_minutes": 30}.items() <= next(
        t for t in exported["triggers"] if t["name"] == "Giveaway"
    ).items()


def test_export_of_nothing_is_an_empty_trigger_file():
    assert export_triggers() == {"triggers": []}


def test_export_filters_by_workspace():
    acme = WorkspaceFactory(name="Acme")
    TriggerFactory(name="Acme trigger", account=InstagramAccountFactory(workspace=acme))
    TriggerFactory(name="Other trigger")

    data = export_triggers("--workspace", "Acme")

    assert [t["name"] for t in data["triggers"]] == ["Acme trigger"]


def test_export_of_an_unknown_workspace_is_an_error():
    TriggerFactory()

    with pytest.raises(CommandError, match="Nowhere"):
        export_triggers("--workspace", "Nowhere")


# --- validation: a bad file writes nothing ------------------------------------------------------
def _set(**fields):
    def mutate(entry):
        entry.update(fields)

    return mutate


def _drop(field):
    def mutate(entry):
        entry.pop(field)

    return mutate


BAD_ENTRIES = {
    "unknown account": (_set(account="nobody.here"), "account"),
    "no account": (_drop("account"), "account"),
    "no name": (_drop("name"), "name"),
    "blank name": (_set(name="   "), "name"),
    "bad event": (_set(event="like"), "event"),
    "no event": (_drop("event"), "event"),
    "bad match": (_set(match="regex"), "match"),
    "contains without keywords": (_set(keywords=[]), "keywords"),
    "exact without keywords": (_set(match="exact", keywords=[]), "keywords"),
    "fuzzy without keywords": (_drop("keywords"), "keywords"),
    "keywords not a list": (_set(keywords="guide"), "keywords"),
    "empty keyword": (_set(keywords=["guide", " "]), "keywords"),
    "media_ids on a dm": (_set(event="dm", public_replies=[], media_ids=["1"]), "media_ids"),
    "public_replies on a dm": (_set(event="dm"), "public_replies"),
    "non-numeric media id": (_set(media_ids=["17900000000000001", "abc"]), "media_ids"),
    "numeric media id as a number": (_set(media_ids=[17900000000000001]), "media_ids"),
    "message text over 1000": (_set(messages=[{"text": "x" * 1001}]), "1,000 bytes"),
    # Meta counts UTF-8 bytes: 500 emoji are 500 characters but 2,000 bytes.
    "emoji text over 1000 bytes": (_set(messages=[{"text": "🎁" * 500}]), "1,000 over"),
    "message without text": (_set(messages=[{}]), "messages"),
    # User Profile API: whether someone follows is known only after they message or tap.
    "follow gate on a comment's private reply": (
        _set(messages=[{"text": "Here it is", "follow_gate": True}]),
        "follow_gate cannot be on the first message of a comment trigger",
    ),
    "button text over 640 characters": (
        _set(messages=[{"text": "y" * 641, "buttons": [{"title": "Open", "url": "https://e.x"}]}]),
        "640 characters",
    ),
    "message not an object": (_set(messages=["hello"]), "messages"),
    "sends nothing": (_set(messages=[], public_replies=[]), "send"),
    "enabled not bool": (_set(enabled="yes"), "enabled"),
    "enabled as 1": (_set(enabled=1), "enabled"),
    "priority a string": (_set(priority="1"), "priority"),
    "priority a float": (_set(priority=1.5), "priority"),
    "priority a bool": (_set(priority=True), "priority"),
    "intent without examples": (_set(match="intent", keywords=[]), "intent"),
    # Flows and options (docs/triggers.md).
    "quick reply to a missing step": (
        _set(messages=[{"text": "Want it?", "quick_replies": [{"title": "Yes", "next": "nope"}]}]),
        "no step 'nope'",
    ),
    "quick reply title over 20": (
        _set(
            messages=[{"text": "?", "quick_replies": [{"title": "x" * 21, "next": "a"}]}],
            steps={"a": [{"text": "a"}]},
        ),
        "20",
    ),
    "14 quick replies": (
        _set(
            messages=[{"text": "?", "quick_replies": [{"title": "t", "next": "a"}] * 14}],
            steps={"a": [{"text": "a"}]},
        ),
        "13",
    ),
    "button with url and next": (
        _set(
            messages=[
                {"text": "?", "buttons": [{"title": "t", "url": "https://x.io", "next": "a"}]}
            ],
            steps={"a": [{"text": "a"}]},
        ),
        "either",
    ),
    "four buttons": (
        _set(messages=[{"text": "?", "buttons": [{"title": "t", "url": "https://x.io"}] * 4}]),
        "buttons",
    ),
    "button link not a URL": (
        _set(messages=[{"text": "?", "buttons": [{"title": "t", "url": "example"}]}]),
        "url",
    ),
    "text over 640 with buttons": (
        _set(messages=[{"text": "x" * 641, "buttons": [{"title": "t", "url": "https://x.io"}]}]),
        "640",
    ),
    "text and image together": (
        _set(messages=[{"text": "hi", "image": "https://x.io/a.jpg"}]),
        "two messages",
    ),
    "misspelt message field": (
        _set(messages=[{"text": "hi", "quick_reply": []}]),
        "unknown field",
    ),
    "negative delay": (_set(messages=[{"text": "hi", "delay_seconds": -1}]), "delay_seconds"),
    "delay over a week": (
        _set(messages=[{"text": "hi", "delay_seconds": 8 * 86400}]),
        "delay_seconds",
    ),
    "steps not an object": (_set(steps=["a"]), "steps"),
    "empty step": (_set(steps={"a": []}), "steps.a"),
    "bad fires_on": (_set(fires_on="sometimes"), "fires_on"),
    "default reply on comments": (_set(fires_on="no_match"), "dm triggers"),
    "bad scope": (_set(scope="last_post"), "scope"),
    "next post with media ids": (
        _set(scope="next_post", media_ids=["17900000000000001"]),
        "next_post",
    ),
    "include_replies on a dm": (
        _set(event="dm", public_replies=[], include_replies=True),
        "comment",
    ),
    "cooldown negative": (_set(cooldown_seconds=-5), "cooldown_seconds"),
    "fuzzy threshold over 100": (_set(match="fuzzy", fuzzy_threshold=101), "fuzzy_threshold"),
    "follow gate button too long": (_set(follow_gate={"button": "x" * 30}), "follow_gate.button"),
    "story mention with keywords": (
        _set(event="story_mention", public_replies=[], match="contains"),
        "match",
    ),
}


@pytest.mark.parametrize(("mutate", "fragment"), BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_one_bad_trigger_among_good_ones_writes_nothing(tmp_path, mutate, fragment):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, name="Existing", priority=0)
    bad = trigger_entry(account, name="Bad")
    mutate(bad)
    data = {
        "triggers": [
            trigger_entry(account, name="New"),
            trigger_entry(account, name="Existing", priority=9),  # would be an update
            bad,
        ]
    }
    before = trigger_rows()

    with pytest.raises(CommandError) as excinfo:
        import_triggers(write_file(tmp_path, data))

    assert trigger_rows() == before
    message = str(excinfo.value)
    assert "\n" not in message
    assert fragment in message


def test_a_follow_gate_after_a_tap_or_on_a_dm_trigger_is_accepted(tmp_path):
    account = InstagramAccountFactory()
    gated_step = trigger_entry(
        account,
        name="Gated step",
        messages=[{"text": "Want it?", "quick_replies": [{"title": "Yes", "next": "link"}]}],
        steps={"link": [{"text": "Here it is", "follow_gate": True}]},
    )
    gated_dm = trigger_entry(
        account,
        name="Gated DM",
        event="dm",
        public_replies=[],
        messages=[{"text": "Here it is", "follow_gate": True}],
    )
    import_triggers(write_file(tmp_path, {"triggers": [gated_step, gated_dm]}))
    assert Trigger.objects.count() == 2


def test_duplicate_name_in_the_file_writes_nothing(tmp_path):
    account = InstagramAccountFactory()
    data = {
        "triggers": [
            trigger_entry(account, name="Twice"),
            trigger_entry(account, name="Other"),
            trigger_entry(account, name="Twice", keywords=["link"]),
        ]
    }

    with pytest.raises(CommandError, match="twice"):
        import_triggers(write_file(tmp_path, data))

    assert Trigger.objects.count() == 0


def test_duplicate_name_through_two_account_references_writes_nothing(tmp_path):
    account = InstagramAccountFactory()
    data = {
        "triggers": [
            trigger_entry(account, name="Twice"),
            trigger_entry(account, name="Twice", account=account.ig_user_id),
        ]
    }

    with pytest.raises(CommandError):
        import_triggers(write_file(tmp_path, data))

    assert Trigger.objects.count() == 0


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "[]",
        '"triggers"',
        '{"triggers": {}}',
        '{"rules": []}',
        '{"triggers": ["Guide giveaway"]}',
    ],
    ids=["bad json", "empty", "array", "string", "triggers not a list", "no triggers", "item"],
)
def test_a_file_that_is_not_a_trigger_file_writes_nothing(tmp_path, text):
    TriggerFactory(name="Existing")
    before = trigger_rows()

    with pytest.raises(CommandError) as excinfo:
        import_triggers(write_file(tmp_path, text))

    assert trigger_rows() == before
    assert "\n" not in str(excinfo.value)


def test_a_file_that_is_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "triggers.json"
    path.write_bytes(b'{"triggers": [], "x": "\xff"}')

    with pytest.raises(CommandError, match="UTF-8"):
        import_triggers(str(path))


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        import_triggers(str(tmp_path / "missing.json"))


def test_every_problem_is_listed_on_stderr(tmp_path):
    account = InstagramAccountFactory()
    data = {"triggers": [trigger_entry(account, event="like", priority="high")]}
    stderr = io.StringIO()

    with pytest.raises(CommandError):
        call_command(
            "import_triggers", write_file(tmp_path, data), stdout=io.StringIO(), stderr=stderr
        )

    assert "event" in stderr.getvalue()
    assert "priority" in stderr.getvalue()


def test_a_name_too_long_for_the_database_is_a_validation_error(tmp_path):
    account = InstagramAccountFactory()

    with pytest.raises(CommandError, match="name"):
        import_triggers(
            write_file(tmp_path, {"triggers": [trigger_entry(account, name="x" * 151)]})
        )

    assert Trigger.objects.count() == 0


@pytest.mark.parametrize("command", ["import_triggers", "export_triggers"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as excinfo:
        call_command(command, "--help")

    assert excinfo.value.code == 0
    assert "trigger file" in capsys.readouterr().out.lower()


FLOW_ENTRY = {
    "event": "comment",
    "match": "fuzzy",
    "keywords": ["guide"],
    "fuzzy_threshold": 85,
    "public_replies": ["Check your DMs"],
    "messages": [
        {
            "text": "Want the guide?",
            "quick_replies": [{"title": "Send me the link", "next": "link"}],
        }
    ],
    "steps": {
        "link": [
            {"text": "Here it is: https://example.com/guide", "follow_gate": True},
            {"image": "https://example.com/cover.jpg", "delay_seconds": 60},
            {
                "text": "More?",
                "buttons": [
                    {"title": "Shop", "url": "https://example.com/shop"},
                    {"title": "Yes", "next": "more"},
                ],
            },
        ],
        "more": [{"text": "Bonus: https://example.com/bonus"}],
    },
    "follow_gate": {"text": "Follow @{username} first", "button": "I follow now"},
    "cooldown_seconds": 3600,
    "include_replies": True,
    "scope": "next_post",
}


def test_a_flow_trigger_round_trips_unchanged(tmp_path):
    account = InstagramAccountFactory()
    entry = trigger_entry(account, examples=[], **FLOW_ENTRY)
    import_triggers(write_file(tmp_path, {"triggers": [entry]}))

    exported = export_triggers()

    assert exported == {"triggers": [entry]}
    before = trigger_rows()
    assert "unchanged" in import_triggers(write_file(tmp_path, exported))
    assert trigger_rows() == before


def test_default_and_welcome_replies_need_no_keywords(tmp_path):
    account = InstagramAccountFactory()
    entries = [
        trigger_entry(account, name="Default", event="dm", public_replies=[], match="any",
                      keywords=[], fires_on="no_match"),
        trigger_entry(account, name="Welcome", event="dm", public_replies=[], keywords=[],
                      fires_on="first_message", cooldown_seconds=0),
        trigger_entry(account, name="Mention", event="story_mention", public_replies=[],
                      match="any", keywords=[]),
    ]  # fmt: skip
    import_triggers(write_file(tmp_path, {"triggers": entries}))
    assert Trigger.objects.count() == 3
