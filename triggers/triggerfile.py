"""The trigger file (see docs/triggers.md): validation, import and export.

Validation collects every problem before anything is written, so a file either loads whole
or not at all, and each error names the trigger and field to fix.
"""

import logging
from dataclasses import dataclass, field

from django.db import transaction

from accounts.models import InstagramAccount
from accounts.selectors import account_by_reference
from triggers.models import MatchMode, Trigger, TriggerEvent

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
MESSAGE_TEXT_LIMIT = 1000
NAME_MAX_LENGTH = Trigger._meta.get_field("name").max_length
# Events and modes the trigger file accepts but this version does not answer yet.
NOT_ANSWERED_YET_EVENTS = {TriggerEvent.STORY_REPLY, TriggerEvent.STORY_MENTION, TriggerEvent.DM}
NOT_ANSWERED_YET_MODES = {MatchMode.INTENT}


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


def _messages(value, where: str, errors: list[str]) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list of message objects.")
        return []
    for index, message in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(message, dict):
            errors.append(f'{here}: must be an object like {{"text": "..."}}.')
            continue
        text = message.get("text")
        if text is None and "attachment" not in message:
            errors.append(f'{here}: needs "text" or "attachment".')
        elif text is not None and (not isinstance(text, str) or not text.strip()):
            errors.append(f"{here}.text: must be a non-empty string.")
        elif isinstance(text, str) and len(text) > MESSAGE_TEXT_LIMIT:
            errors.append(
                f"{here}.text: {len(text)} characters; Meta accepts at most {MESSAGE_TEXT_LIMIT}."
            )
    return value


def parse_trigger_file(data: object) -> list[TriggerSpec]:
    """Validate a parsed trigger file; raises TriggerFileError listing every problem."""
    if not isinstance(data, dict) or not isinstance(data.get("triggers"), list):
        raise TriggerFileError(['The file must be a JSON object with a "triggers" list.'])
    errors: list[str] = []
    specs: list[TriggerSpec] = []
    seen: set[tuple[int, str]] = set()
    for index, item in enumerate(data["triggers"]):
        where = f"triggers[{index}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: must be an object.")
            continue
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
        if match in (MatchMode.EXACT, MatchMode.CONTAINS, MatchMode.FUZZY) and not keywords:
            errors.append(f"{where}.keywords: match {match!r} needs at least one keyword.")
        if match == MatchMode.INTENT and not (keywords or examples):
            errors.append(f"{where}: an intent trigger needs keywords or examples.")
        media_ids = _string_list(item.get("media_ids"), f"{where}.media_ids", errors, digits=True)
        public_replies = _string_list(item.get("public_replies"), f"{where}.public_replies", errors)
        if event != TriggerEvent.COMMENT and (media_ids or public_replies):
            errors.append(f"{where}: media_ids and public_replies apply to comment triggers only.")
        messages = _messages(item.get("messages"), f"{where}.messages", errors)
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
            continue
        specs.append(
            TriggerSpec(
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
        )
    if errors:
        raise TriggerFileError(errors)
    return specs


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)


@transaction.atomic
def triggers_import(specs: list[TriggerSpec]) -> ImportSummary:
    """Create or update triggers by (account, name); an equal trigger is left untouched."""
    summary = ImportSummary()
    for spec in specs:
        values = {**spec.values, "extra": spec.extra}
        trigger = Trigger.objects.filter(account=spec.account, name=values["name"]).first()
        if trigger is None:
            Trigger.objects.create(account=spec.account, **values)
            summary.created += 1
        elif any(getattr(trigger, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(trigger, key, value)
            trigger.save()
            summary.updated += 1
        else:
            summary.unchanged += 1
        label = f"{values['name']} (@{spec.account.username})"
        if values["event"] in NOT_ANSWERED_YET_EVENTS:
            summary.warnings.append(
                f"{label}: {values['event']} triggers are stored but not answered by this version."
            )
        if values["match"] in NOT_ANSWERED_YET_MODES:
            summary.warnings.append(
                f"{label}: intent matching is stored but not evaluated by this version."
            )
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
