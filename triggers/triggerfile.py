"""The trigger file (see docs/triggers.md): validation, import and export.

Validation collects every problem before anything is written, so a file either loads whole
or not at all, and each error names the trigger and field to fix.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from accounts.audit import audit_record, diff, snapshot
from accounts.models import InstagramAccount
from accounts.selectors import account_by_reference
from meta import messages as meta_messages
from triggers.models import FiresOn, MatchMode, Trigger, TriggerEvent

logger = logging.getLogger(__name__)

KNOWN_FIELDS = (
    "account",
    "name",
    "event",
    "match",
    "keywords",
    "examples",
    "media_ids",
    "public_replies",
    "messages",
    "enabled",
    "priority",
)
NAME_MAX_LENGTH = Trigger._meta.get_field("name").max_length
STEP_NAME_MAX_LENGTH = 100
CHOICE_TITLE_LIMIT = 20
MAX_QUICK_REPLIES = 13
MAX_BUTTONS = 3
MAX_DELAY_SECONDS = 7 * 86400
MESSAGE_FIELDS = {
    "text",
    "image",
    "attachment",
    "buttons",
    "quick_replies",
    "delay_seconds",
    "follow_gate",
}
# Options beyond INTERFACE.md's fields (docs/triggers.md), kept in Trigger.extra.
COMMENT_ONLY_OPTIONS = ("scope", "include_replies", "include_live")


class TriggerFileError(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass
class TriggerSpec:
    account: InstagramAccount
    values: dict
    extra: dict = field(default_factory=dict)


def _string_list(value, where: str, errors: list[str], *, digits: bool = False) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.append(f"{where}: must be a list of strings.")
        return []
    if any(not item.strip() for item in value):
        errors.append(f"{where}: must not contain empty strings.")
    if digits and any(not item.isdigit() for item in value):
        errors.append(f"{where}: Instagram media ids are numeric.")
    return value


def _is_url(value) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://")) and " " not in value


def _title(value, where: str, errors: list[str]) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{where}: must be a non-empty string.")
    elif len(value) > CHOICE_TITLE_LIMIT:
        errors.append(f"{where}: {len(value)} characters; Meta shows at most {CHOICE_TITLE_LIMIT}.")


def _next(item: dict, where: str, errors: list[str], steps: set[str]) -> None:
    target = item.get("next")
    if not isinstance(target, str) or not target.strip():
        errors.append(f'{where}.next: names the step a tap leads to, e.g. "next": "link".')
    elif target not in steps:
        known = ", ".join(sorted(steps)) or "none defined"
        errors.append(f"{where}.next: no step {target!r} in this trigger's steps ({known}).")


def _message(message, here: str, errors: list[str], steps: set[str]) -> None:
    if not isinstance(message, dict):
        errors.append(f'{here}: must be an object like {{"text": "..."}}.')
        return
    unknown = sorted(set(message) - MESSAGE_FIELDS)
    if unknown:
        errors.append(
            f"{here}: unknown field(s) {', '.join(unknown)}; "
            f"a message takes {', '.join(sorted(MESSAGE_FIELDS))}."
        )
    text, image = message.get("text"), message.get("image")
    buttons, quick = message.get("buttons"), message.get("quick_replies")
    if text is None and image is None and "attachment" not in message:
        errors.append(f'{here}: needs "text", "image" or "attachment".')
    if text is not None and image is not None:
        errors.append(f"{here}: Meta sends text and an image as two messages; split them.")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        errors.append(f"{here}.text: must be a non-empty string.")
    elif isinstance(text, str):
        problem = meta_messages.text_limit_problem(text, with_buttons=bool(buttons))
        if problem:
            errors.append(f"{here}.text: {problem}")
    if image is not None and not _is_url(image):
        errors.append(f"{here}.image: must be an http(s) URL of a png or jpeg image.")
    if buttons is not None:
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
            errors.append(f"{here}.buttons: a list of 1 to {MAX_BUTTONS} buttons.")
        else:
            if not isinstance(text, str):
                errors.append(f"{here}.buttons: buttons need the message's text.")
            for index, button in enumerate(buttons):
                where = f"{here}.buttons[{index}]"
                if not isinstance(button, dict):
                    errors.append(f'{where}: {{"title", "url"}} or {{"title", "next"}}.')
                    continue
                _title(button.get("title"), f"{where}.title", errors)
                if ("url" in button) == ("next" in button):
                    errors.append(f'{where}: give either "url" (a link) or "next" (a step).')
                elif "url" in button and not _is_url(button["url"]):
                    errors.append(f"{where}.url: must be an http(s) URL.")
                elif "next" in button:
                    _next(button, where, errors, steps)
    if quick is not None:
        if not isinstance(quick, list) or not 1 <= len(quick) <= MAX_QUICK_REPLIES:
            errors.append(f"{here}.quick_replies: a list of 1 to {MAX_QUICK_REPLIES} options.")
        else:
            for index, option in enumerate(quick):
                where = f"{here}.quick_replies[{index}]"
                if not isinstance(option, dict):
                    errors.append(f'{where}: must be an object {{"title", "next"}}.')
                    continue
                _title(option.get("title"), f"{where}.title", errors)
                _next(option, where, errors, steps)
    delay = message.get("delay_seconds")
    if delay is not None and (
        not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_SECONDS
    ):
        errors.append(f"{here}.delay_seconds: whole seconds from 0 to {MAX_DELAY_SECONDS}.")
    if "follow_gate" in message and not isinstance(message["follow_gate"], bool):
        errors.append(f"{here}.follow_gate: must be true or false.")


GATE_BEFORE_CONSENT = (
    "follow_gate cannot be on the first message of a comment trigger: that message goes as "
    "the private reply, before the person has written to the account, and Meta tells whether "
    "someone follows only after they message the account or tap a button. Give the first "
    "message a quick reply and put the gate on the message its step sends."
)


def _no_gate_before_consent(messages: list, where: str, errors: list[str]) -> None:
    """A comment's first message is the private reply: no consent yet (meta-api.md 3)."""
    first = messages[0] if messages else None
    if isinstance(first, dict) and first.get("follow_gate") is True:
        errors.append(f"{where}.follow_gate: {GATE_BEFORE_CONSENT}")


def _messages(value, where: str, errors: list[str], steps: set[str] = frozenset()) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list of message objects.")
        return []
    for index, message in enumerate(value):
        _message(message, f"{where}[{index}]", errors, steps)
    return value


def _steps(value, where: str, errors: list[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f'{where}: must map step names to message lists, e.g. {{"link": [...]}}.')
        return {}
    names = {name for name in value if isinstance(name, str)}
    for name, messages in value.items():
        if not name.strip() or len(name) > STEP_NAME_MAX_LENGTH:
            errors.append(f"{where}: step names are 1 to {STEP_NAME_MAX_LENGTH} characters.")
            continue
        if not isinstance(messages, list) or not messages:
            errors.append(f"{where}.{name}: must be a non-empty list of messages.")
            continue
        _messages(messages, f"{where}.{name}", errors, names)
    return value


def _number(value, where: str, errors: list[str], low: float, high: float) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        errors.append(f"{where}: a number from {low:g} to {high:g}.")


def _options(item: dict, event, where: str, errors: list[str]) -> str:
    """Validate the options beyond INTERFACE.md's fields; returns fires_on."""
    fires_on = item.get("fires_on", FiresOn.MATCH)
    if fires_on not in FiresOn.values:
        errors.append(f"{where}.fires_on: must be one of {', '.join(FiresOn.values)}.")
    elif fires_on != FiresOn.MATCH and event != TriggerEvent.DM:
        errors.append(f"{where}.fires_on: default and welcome replies are dm triggers.")
    if event != TriggerEvent.COMMENT:
        for name in COMMENT_ONLY_OPTIONS:
            if name in item:
                errors.append(f"{where}.{name}: applies to comment triggers only.")
    scope = item.get("scope")
    if scope is not None and scope != "next_post":
        errors.append(f'{where}.scope: the only scope is "next_post" (use media_ids for posts).')
    if scope == "next_post" and item.get("media_ids"):
        errors.append(f'{where}.scope: "next_post" waits for a new post; leave media_ids empty.')
    for name in ("include_replies", "include_live"):
        if name in item and not isinstance(item[name], bool):
            errors.append(f"{where}.{name}: must be true or false.")
    cooldown = item.get("cooldown_seconds")
    if cooldown is not None and (
        not isinstance(cooldown, int) or isinstance(cooldown, bool) or cooldown < 0
    ):
        errors.append(f"{where}.cooldown_seconds: whole seconds, 0 or more.")
    _number(item.get("fuzzy_threshold"), f"{where}.fuzzy_threshold", errors, 50, 100)
    _number(item.get("intent_threshold"), f"{where}.intent_threshold", errors, 0, 100)
    gate = item.get("follow_gate")
    if gate is not None:
        if not isinstance(gate, dict) or set(gate) - {"text", "button"}:
            errors.append(f'{where}.follow_gate: an object {{"text": "...", "button": "..."}}.')
        else:
            if "text" in gate and (not isinstance(gate["text"], str) or not gate["text"].strip()):
                errors.append(f"{where}.follow_gate.text: must be a non-empty string.")
            if "button" in gate:
                _title(gate["button"], f"{where}.follow_gate.button", errors)
    return fires_on


def _stored_options(item: dict, where: str, errors: list[str]) -> None:
    """Options the product writes into a trigger itself (a "next post" trigger's arming and
    binding), checked so a hand-edited value cannot break processing."""
    armed_at = item.get("armed_at")
    if armed_at is not None:
        try:
            parsed = datetime.fromisoformat(armed_at) if isinstance(armed_at, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            errors.append(
                f"{where}.armed_at: a date and time with its UTC offset, e.g. "
                '"2026-11-25T10:00:00+00:00".'
            )
    bound = item.get("bound_from_scope")
    if bound is not None and bound != "next_post":
        errors.append(f'{where}.bound_from_scope: only "next_post" (the product sets it).')


def _parse_item(
    item: object, index: int, errors: list[str], seen: set[tuple[int, str]]
) -> tuple[str, TriggerSpec | None]:
    """Validate one trigger of the file; returns (the label its errors start with, its spec
    or None when it cannot be loaded)."""
    where = f"triggers[{index}]"
    if not isinstance(item, dict):
        errors.append(f"{where}: must be an object.")
        return where, None
    name = item.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{where} ({name[:40]})"
        if len(name.strip()) > NAME_MAX_LENGTH:
            errors.append(f"{where}.name: at most {NAME_MAX_LENGTH} characters.")
    else:
        errors.append(f"{where}.name: required, a non-empty string.")
    reference = item.get("account")
    account = account_by_reference(str(reference)) if reference else None
    if account is None:
        errors.append(
            f"{where}.account: {reference!r} is not a connected account (username or id)."
        )
    event = item.get("event")
    if event not in TriggerEvent.values:
        errors.append(f"{where}.event: must be one of {', '.join(TriggerEvent.values)}.")
    match = item.get("match", MatchMode.CONTAINS)
    if match not in MatchMode.values:
        errors.append(f"{where}.match: must be one of {', '.join(MatchMode.values)}.")
    keywords = _string_list(item.get("keywords"), f"{where}.keywords", errors)
    examples = _string_list(item.get("examples"), f"{where}.examples", errors)
    fires_on = _options(item, event, where, errors)
    _stored_options(item, where, errors)
    if event == TriggerEvent.STORY_MENTION and match != MatchMode.ANY:
        errors.append(f'{where}.match: a story mention has no text; use "match": "any".')
    if fires_on != FiresOn.MATCH:
        pass  # default and welcome replies answer whatever was said
    elif match in (MatchMode.EXACT, MatchMode.CONTAINS, MatchMode.FUZZY) and not keywords:
        errors.append(f"{where}.keywords: match {match!r} needs at least one keyword.")
    elif match == MatchMode.INTENT and not (keywords or examples):
        errors.append(f"{where}: an intent trigger needs keywords or examples.")
    media_ids = _string_list(item.get("media_ids"), f"{where}.media_ids", errors, digits=True)
    public_replies = _string_list(item.get("public_replies"), f"{where}.public_replies", errors)
    if event != TriggerEvent.COMMENT and (media_ids or public_replies):
        errors.append(f"{where}: media_ids and public_replies apply to comment triggers only.")
    steps = _steps(item.get("steps"), f"{where}.steps", errors)
    messages = _messages(item.get("messages"), f"{where}.messages", errors, set(steps))
    if event == TriggerEvent.COMMENT:
        _no_gate_before_consent(messages, f"{where}.messages[0]", errors)
    if not messages and not public_replies:
        errors.append(f"{where}: needs messages or public_replies, or it would send nothing.")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(f"{where}.enabled: must be true or false.")
    priority = item.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        errors.append(f"{where}.priority: must be a whole number.")
    if account is not None and isinstance(name, str):
        key = (account.pk, name.strip())
        if key in seen:
            errors.append(f"{where}: the name is used twice for account @{account.username}.")
        seen.add(key)
    if account is None or not isinstance(name, str):
        return where, None
    spec = TriggerSpec(
        account=account,
        values={
            "name": name.strip(),
            "event": event,
            "match": match,
            "keywords": keywords,
            "examples": examples,
            "media_ids": media_ids,
            "public_replies": public_replies,
            "messages": messages,
            "enabled": enabled,
            "priority": priority,
        },
        extra={key: value for key, value in item.items() if key not in KNOWN_FIELDS},
    )
    return where, spec


def parse_trigger_file(data: object) -> list[TriggerSpec]:
    """Validate a parsed trigger file; raises TriggerFileError listing every problem."""
    if not isinstance(data, dict) or not isinstance(data.get("triggers"), list):
        raise TriggerFileError(['The file must be a JSON object with a "triggers" list.'])
    errors: list[str] = []
    specs: list[TriggerSpec] = []
    seen: set[tuple[int, str]] = set()
    for index, item in enumerate(data["triggers"]):
        _, spec = _parse_item(item, index, errors, seen)
        if spec is not None:
            specs.append(spec)
    if errors:
        raise TriggerFileError(errors)
    return specs


def trigger_errors(item: dict) -> dict[str, list[str]]:
    """Validate one trigger, given in the file's shape, exactly as import does: every stored
    trigger must be one the file could load. Returns the problems by field ("account",
    "messages", ... and for the options beyond those, their own name; "" for the trigger as a
    whole), each saying what is wrong where, e.g. "messages[0].text: 1200 characters; ..."."""
    errors: list[str] = []
    where, _ = _parse_item(item, 0, errors, set())
    by_field: dict[str, list[str]] = {}
    for error in errors:
        rest = error[len(where) :] if error.startswith(where) else error
        field_match = re.match(r"\.([A-Za-z_]+)", rest)
        field_name = field_match.group(1) if field_match else ""
        by_field.setdefault(field_name, []).append(rest.lstrip(".: ") or error)
    return by_field


def _warnings(spec: TriggerSpec, label: str) -> list[str]:
    """Valid but probably not what the marketer meant."""
    from triggers import intent

    warnings = []
    values = spec.values
    if values["match"] == MatchMode.INTENT and not intent.intent_available():
        warnings.append(
            f"{label}: intent matching is unavailable here ({intent.intent_unavailable_reason()});"
            " the trigger will not match until it is installed."
        )
    messages = values["messages"]
    first = messages[0] if messages else {}
    if (
        values["event"] == TriggerEvent.COMMENT
        and len(messages) > 1
        and not (first.get("quick_replies") or any("next" in b for b in first.get("buttons", [])))
    ):
        warnings.append(
            f"{label}: only the first message can go as the private reply; the rest need the "
            "person to write back (24-hour window). Add a quick reply to the first message."
        )
    return warnings


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)


@transaction.atomic
def triggers_import(
    specs: list[TriggerSpec], *, actor=None, actor_label: str = "import_triggers"
) -> ImportSummary:
    """Create or update triggers by (account, name); an equal trigger is left untouched.

    Each trigger created or changed gets an audit entry with what changed: the actor is the
    person the import runs as, else ``actor_label`` names the command.
    """
    summary = ImportSummary()
    label = "" if actor is not None else actor_label
    for spec in specs:
        values = {**spec.values, "extra": spec.extra}
        trigger = Trigger.objects.filter(account=spec.account, name=values["name"]).first()
        if trigger is None:
            trigger = Trigger.objects.create(account=spec.account, **values)
            audit_record(
                action="created",
                obj=trigger,
                actor=actor,
                actor_label=label,
                changes=diff(None, snapshot(trigger)),
                note=actor_label,
            )
            summary.created += 1
        elif any(getattr(trigger, key) != value for key, value in values.items()):
            before = snapshot(trigger)
            for key, value in values.items():
                setattr(trigger, key, value)
            trigger.save()
            audit_record(
                action="changed",
                obj=trigger,
                actor=actor,
                actor_label=label,
                changes=diff(before, snapshot(trigger)),
                note=actor_label,
            )
            summary.updated += 1
        else:
            summary.unchanged += 1
        summary.warnings += _warnings(spec, f"{values['name']} (@{spec.account.username})")
    return summary


def trigger_as_dict(trigger: Trigger) -> dict:
    data = {
        "account": trigger.account.username,
        "name": trigger.name,
        "event": trigger.event,
        "match": trigger.match,
        "keywords": trigger.keywords,
        "examples": trigger.examples,
        "media_ids": trigger.media_ids,
        "public_replies": trigger.public_replies,
        "messages": trigger.messages,
        "enabled": trigger.enabled,
        "priority": trigger.priority,
    }
    data.update(trigger.extra)
    return data


def triggers_export(*, workspace_name: str | None = None) -> dict:
    queryset = Trigger.objects.select_related("account").order_by("account__username", "name")
    if workspace_name is not None:
        queryset = queryset.filter(account__workspace__name=workspace_name)
    return {"triggers": [trigger_as_dict(trigger) for trigger in queryset]}
