"""The trigger page's editor: real fields for everything a trigger file holds, no JSON.

A marketer types keywords one per line or separated by commas, public replies one per line,
and builds the flow from blocks: the first messages, then named steps; each message has its
text or image, a delay, a follow gate and its choices (quick replies, link buttons, buttons
leading to a step, the step chosen from a list). The editor turns the form into the trigger
file's shape and asks the importer's own validator (``triggerfile.trigger_errors``); each
problem comes back beside the field it is about, in the words the importer uses.

Adding or removing a block is a plain form submit (``_editor`` names what to do), so the page
works without JavaScript; console.js only adds counters, a live preview and the step lists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.db import transaction

from accounts.audit import audit_record, diff, snapshot
from accounts.models import InstagramAccount
from meta import messages as meta_messages
from triggers.models import FiresOn, MatchMode, Trigger, TriggerEvent
from triggers.triggerfile import (
    CHOICE_TITLE_LIMIT,
    KNOWN_FIELDS,
    MAX_BUTTONS,
    MAX_QUICK_REPLIES,
    trigger_errors,
)

# Options the editor has fields for; any other option a trigger file set is kept as it is.
EDITED_OPTIONS = (
    "steps",
    "fires_on",
    "scope",
    "include_replies",
    "include_live",
    "cooldown_seconds",
    "fuzzy_threshold",
    "intent_threshold",
    "follow_gate",
)
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
UNIT_CHOICES = [(name, name) for name in UNITS]
CHOICE_KINDS = [
    ("quick_reply", "Quick reply (leads to a step)"),
    ("step_button", "Button (leads to a step)"),
    ("link", "Link button (opens a page)"),
]
SCOPE_CHOICES = [
    ("all", "Every post"),
    ("posts", "Only the posts listed below"),
    ("next_post", "The next post I publish"),
]
MAX_STEPS = 20
MAX_MESSAGES = 10


def split_list(text: str, *, commas: bool) -> list[str]:
    """Lines (and, where ``commas``, comma-separated parts) with blanks dropped."""
    parts = re.split(r"[\n,]" if commas else r"\n", text or "")
    return [part.strip() for part in parts if part.strip()]


def _seconds(value: str, unit: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return -1  # the validator says what is allowed
    seconds = number * UNITS.get(unit, 1)
    return int(seconds) if seconds == int(seconds) else -1


def _as_value_and_unit(seconds: int | None) -> tuple[str, str]:
    if not seconds:
        return "", "minutes"
    for unit in ("days", "hours", "minutes"):
        if seconds % UNITS[unit] == 0:
            return str(seconds // UNITS[unit]), unit
    return str(seconds), "seconds"


# --- The trigger's own fields ---------------------------------------------------------------
class TriggerBasicsForm(forms.Form):
    account = forms.ModelChoiceField(queryset=InstagramAccount.objects.none())
    name = forms.CharField(max_length=150, help_text="Unique per account; people never see it.")
    event = forms.ChoiceField(
        choices=TriggerEvent.choices, label="Answers", initial=TriggerEvent.COMMENT
    )
    fires_on = forms.ChoiceField(
        choices=FiresOn.choices,
        required=False,
        initial=FiresOn.MATCH,
        label="When",
        help_text="Direct messages: a default reply or a welcome answers what nothing else did.",
    )
    match = forms.ChoiceField(choices=MatchMode.choices, initial=MatchMode.CONTAINS)
    keywords = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, or separated by commas: freebie, free pdf",
    )
    examples = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Example phrases",
        help_text="Intent matching: phrases with the meaning it listens for, one per line.",
    )
    post_scope = forms.ChoiceField(
        choices=SCOPE_CHOICES, initial="all", widget=forms.RadioSelect, label="On which posts"
    )
    media_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Post ids",
        help_text="Instagram media ids, one per line or separated by commas.",
    )
    include_replies = forms.BooleanField(required=False, label="Also answer replies to comments")
    include_live = forms.BooleanField(
        required=False, label="Also answer comments on a live broadcast (private reply only)"
    )
    public_replies = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "data-limit-chars": "2200"}),
        help_text="Comment triggers: one per line; one is picked at random, never the same "
        "twice in a row.",
    )
    cooldown_value = forms.CharField(
        required=False,
        label="Cool-down",
        help_text="Once it answered someone, it does not answer them again within this time. "
        "Empty: the default (none; a day for story mentions and default replies).",
        widget=forms.NumberInput(attrs={"min": "0", "step": "1"}),
    )
    cooldown_unit = forms.ChoiceField(choices=UNIT_CHOICES, initial="hours", required=False)
    fuzzy_threshold = forms.CharField(
        required=False,
        label="Fuzzy closeness (50-100)",
        help_text="How close a word must be; empty = 80.",
        widget=forms.NumberInput(attrs={"min": "50", "max": "100"}),
    )
    intent_threshold = forms.CharField(
        required=False,
        label="Intent closeness (0-100)",
        help_text="How close in meaning; empty = 58.",
        widget=forms.NumberInput(attrs={"min": "0", "max": "100"}),
    )
    follow_gate_text = forms.CharField(
        required=False,
        label="Ask to follow with",
        help_text="What a person who does not follow gets before a gated message; "
        "{username} is the account. Empty: a sentence of ours.",
    )
    follow_gate_button = forms.CharField(
        required=False,
        label="Its button",
        help_text=f"At most {CHOICE_TITLE_LIMIT} characters. Empty: “I follow now”.",
        widget=forms.TextInput(attrs={"data-limit-chars": str(CHOICE_TITLE_LIMIT)}),
    )
    enabled = forms.BooleanField(required=False, initial=True, label="On")
    priority = forms.IntegerField(
        initial=0, help_text="When several triggers match, the highest answers."
    )

    def __init__(self, *args, accounts=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = (
            accounts if accounts is not None else (InstagramAccount.objects.none())
        )


# --- The flow: steps of messages of choices ---------------------------------------------------
@dataclass
class ChoiceBlock:
    kind: str = "quick_reply"
    title: str = ""
    url: str = ""
    next: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class MessageBlock:
    text: str = ""
    image: str = ""
    delay_value: str = ""
    delay_unit: str = "minutes"
    follow_gate: bool = False
    attachment: str = ""  # a message in Meta's own shape, kept as the trigger file had it
    choices: list[ChoiceBlock] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    # Where each choice went in the file's lists: ("quick_replies" | "buttons", index).
    placed: list[tuple[str, int]] = field(default_factory=list)

    @property
    def text_bytes(self) -> int:
        return meta_messages.utf8_bytes(self.text)

    @property
    def is_empty(self) -> bool:
        return not (self.text.strip() or self.image or self.attachment or self.choices)

    @property
    def has_buttons(self) -> bool:
        return any(choice.kind != "quick_reply" for choice in self.choices)


@dataclass
class StepBlock:
    name: str = ""  # "" for the first messages
    messages: list[MessageBlock] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _message_from_spec(spec: Any) -> MessageBlock:
    if not isinstance(spec, dict):
        return MessageBlock(text=str(spec))
    value, unit = _as_value_and_unit(spec.get("delay_seconds") or 0)
    block = MessageBlock(
        text=str(spec.get("text") or ""),
        image=str(spec.get("image") or ""),
        delay_value=value,
        delay_unit=unit,
        follow_gate=spec.get("follow_gate") is True,
        attachment=json.dumps(spec["attachment"]) if "attachment" in spec else "",
    )
    for item in spec.get("quick_replies") or []:
        if isinstance(item, dict):
            block.choices.append(
                ChoiceBlock(
                    "quick_reply", str(item.get("title", "")), "", str(item.get("next", ""))
                )
            )
    for item in spec.get("buttons") or []:
        if isinstance(item, dict):
            if "url" in item:
                block.choices.append(ChoiceBlock("link", str(item.get("title", "")), item["url"]))
            else:
                block.choices.append(
                    ChoiceBlock(
                        "step_button", str(item.get("title", "")), "", str(item.get("next", ""))
                    )
                )
    return block


def steps_from_trigger(messages: list, steps: dict) -> list[StepBlock]:
    blocks = [StepBlock("", [_message_from_spec(m) for m in messages or []])]
    for name, step in (steps or {}).items():
        blocks.append(StepBlock(str(name), [_message_from_spec(m) for m in step or []]))
    if not blocks[0].messages:
        blocks[0].messages.append(MessageBlock())
    return blocks


def _int(data, key: str, default: int = 0, most: int = 50) -> int:
    try:
        return max(0, min(int(data.get(key, default)), most))
    except (TypeError, ValueError):
        return default


def steps_from_post(data) -> list[StepBlock]:
    """The flow as posted (field names ``s{i}-...``, ``s{i}m{j}-...``, ``s{i}m{j}c{k}-...``)."""
    blocks = []
    for i in range(_int(data, "steps-count", 1, MAX_STEPS)):
        step = StepBlock(name=data.get(f"s{i}-name", "").strip() if i else "")
        for j in range(_int(data, f"s{i}-count", 1, MAX_MESSAGES)):
            prefix = f"s{i}m{j}"
            message = MessageBlock(
                text=data.get(f"{prefix}-text", ""),
                image=data.get(f"{prefix}-image", "").strip(),
                delay_value=data.get(f"{prefix}-delay", "").strip(),
                delay_unit=data.get(f"{prefix}-delay_unit", "minutes"),
                follow_gate=bool(data.get(f"{prefix}-follow_gate")),
                attachment=data.get(f"{prefix}-attachment", ""),
            )
            for k in range(_int(data, f"{prefix}-count", 0, MAX_QUICK_REPLIES + MAX_BUTTONS)):
                c = f"{prefix}c{k}"
                message.choices.append(
                    ChoiceBlock(
                        kind=data.get(f"{c}-kind", "quick_reply"),
                        title=data.get(f"{c}-title", ""),
                        url=data.get(f"{c}-url", "").strip(),
                        next=data.get(f"{c}-next", ""),
                    )
                )
            step.messages.append(message)
        blocks.append(step)
    return blocks or [StepBlock("", [MessageBlock()])]


def apply_editor_action(blocks: list[StepBlock], action: str) -> None:
    """Add or remove a step, a message or a choice (the form's own buttons)."""
    verb, _, where = action.partition(":")
    at = [int(part) for part in where.split(":") if part.isdigit()]
    try:
        if verb == "add-step" and len(blocks) < MAX_STEPS:
            blocks.append(StepBlock(name="", messages=[MessageBlock()]))
        elif verb == "remove-step" and at and at[0] > 0:
            del blocks[at[0]]
        elif verb == "add-message" and len(blocks[at[0]].messages) < MAX_MESSAGES:
            blocks[at[0]].messages.append(MessageBlock())
        elif verb == "remove-message":
            del blocks[at[0]].messages[at[1]]
        elif verb == "add-choice":
            message = blocks[at[0]].messages[at[1]]
            if len(message.choices) < MAX_QUICK_REPLIES + MAX_BUTTONS:
                message.choices.append(ChoiceBlock())
        elif verb == "remove-choice":
            del blocks[at[0]].messages[at[1]].choices[at[2]]
    except IndexError:
        pass  # a stale button: the page is shown again as it is


def _message_spec(block: MessageBlock) -> dict:
    spec: dict[str, Any] = {}
    block.placed = []
    if block.attachment:
        try:
            spec["attachment"] = json.loads(block.attachment)
        except ValueError:
            spec["attachment"] = block.attachment
    if block.text.strip() or (not block.image and not block.attachment):
        spec["text"] = block.text
    if block.image:
        spec["image"] = block.image
    quick, buttons = [], []
    for choice in block.choices:
        if choice.kind == "link":
            block.placed.append(("buttons", len(buttons)))
            buttons.append({"title": choice.title, "url": choice.url})
        elif choice.kind == "step_button":
            block.placed.append(("buttons", len(buttons)))
            buttons.append({"title": choice.title, "next": choice.next})
        else:
            block.placed.append(("quick_replies", len(quick)))
            quick.append({"title": choice.title, "next": choice.next})
    if quick:
        spec["quick_replies"] = quick
    if buttons:
        spec["buttons"] = buttons
    delay = _seconds(block.delay_value, block.delay_unit)
    if delay:
        spec["delay_seconds"] = delay
    if block.follow_gate:
        spec["follow_gate"] = True
    return spec


# --- The whole page -----------------------------------------------------------------------
@dataclass
class Editor:
    form: TriggerBasicsForm
    steps: list[StepBlock]
    kept_options: dict  # options the editor has no field for, kept unchanged
    general_errors: list[str] = field(default_factory=list)
    item: dict | None = None

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps[1:] if step.name]

    @property
    def is_valid(self) -> bool:
        return (
            self.item is not None
            and not self.form.errors
            and not self.general_errors
            and not any(step.errors for step in self.steps)
            and not any(
                m.errors or any(c.errors for c in m.choices) for s in self.steps for m in s.messages
            )
        )


def initial_for(trigger: Trigger | None) -> tuple[dict, list[StepBlock], dict]:
    if trigger is None:
        return {"enabled": True, "priority": 0}, steps_from_trigger([], {}), {}
    extra = dict(trigger.extra or {})
    cooldown, unit = _as_value_and_unit(extra.get("cooldown_seconds"))
    if extra.get("cooldown_seconds") == 0:
        cooldown, unit = "0", "hours"
    gate = extra.get("follow_gate") if isinstance(extra.get("follow_gate"), dict) else {}
    scope = (
        "next_post"
        if extra.get("scope") == "next_post"
        else ("posts" if trigger.media_ids else "all")
    )
    initial = {
        "account": trigger.account_id,
        "name": trigger.name,
        "event": trigger.event,
        "fires_on": extra.get("fires_on", FiresOn.MATCH),
        "match": trigger.match,
        "keywords": "\n".join(trigger.keywords or []),
        "examples": "\n".join(trigger.examples or []),
        "post_scope": scope,
        "media_ids": "\n".join(trigger.media_ids or []),
        "include_replies": bool(extra.get("include_replies")),
        "include_live": bool(extra.get("include_live")),
        "public_replies": "\n".join(trigger.public_replies or []),
        "cooldown_value": cooldown,
        "cooldown_unit": unit,
        "fuzzy_threshold": extra.get("fuzzy_threshold", ""),
        "intent_threshold": extra.get("intent_threshold", ""),
        "follow_gate_text": gate.get("text", ""),
        "follow_gate_button": gate.get("button", ""),
        "enabled": trigger.enabled,
        "priority": trigger.priority,
    }
    steps = steps_from_trigger(trigger.messages, extra.get("steps") or {})
    kept = {key: value for key, value in extra.items() if key not in EDITED_OPTIONS}
    return initial, steps, kept


def _number_or_text(value: str):
    value = (value or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return value  # the validator says it must be a number
    return int(number) if number == int(number) else number


def editor_build(editor: Editor) -> dict | None:
    """The trigger, in the file's shape, from what is typed (None when a basic field is
    unreadable: the form says which)."""
    form = editor.form
    if not form.is_valid():
        return None
    data = form.cleaned_data
    # A message block left empty is not a message (the validator would refuse it).
    for step in editor.steps:
        step.messages = [block for block in step.messages if not block.is_empty]
    seen_names: set[str] = set()
    for step in editor.steps[1:]:
        if not step.name:
            step.errors.append("Name this step: the choices that lead to it name it.")
        elif step.name in seen_names:
            step.errors.append(f"Another step is called {step.name!r} already.")
        seen_names.add(step.name)
    messages = [_message_spec(block) for block in editor.steps[0].messages]
    steps = {
        step.name: [_message_spec(block) for block in step.messages]
        for step in editor.steps[1:]
        if step.name
    }
    item: dict[str, Any] = dict(editor.kept_options)
    event = data["event"]
    item.update(
        account=data["account"].ig_user_id,
        name=data["name"],
        event=event,
        match=data["match"],
        keywords=split_list(data["keywords"], commas=True),
        examples=split_list(data["examples"], commas=False),
        media_ids=split_list(data["media_ids"], commas=True)
        if data["post_scope"] == "posts"
        else [],
        public_replies=split_list(data["public_replies"], commas=False),
        messages=messages,
        enabled=data["enabled"],
        priority=data["priority"],
    )
    if steps:
        item["steps"] = steps
    if event == TriggerEvent.DM and data["fires_on"] and data["fires_on"] != FiresOn.MATCH:
        item["fires_on"] = data["fires_on"]
    if event == TriggerEvent.COMMENT:
        if data["post_scope"] == "next_post":
            item["scope"] = "next_post"
        if data["include_replies"]:
            item["include_replies"] = True
        if data["include_live"]:
            item["include_live"] = True
    cooldown = _seconds(data["cooldown_value"], data["cooldown_unit"] or "hours")
    if cooldown is not None:
        item["cooldown_seconds"] = cooldown
    for name in ("fuzzy_threshold", "intent_threshold"):
        value = _number_or_text(data[name])
        if value is not None:
            item[name] = value
    gate = {
        key: data[f"follow_gate_{key}"].strip()
        for key in ("text", "button")
        if data[f"follow_gate_{key}"].strip()
    }
    if gate:
        item["follow_gate"] = gate
    return item


# Where each of the validator's fields goes on the form.
_FORM_FIELD_OF = {
    "scope": "post_scope",
    "cooldown_seconds": "cooldown_value",
    "fires_on": "fires_on",
    "include_replies": "include_replies",
    "include_live": "include_live",
    "fuzzy_threshold": "fuzzy_threshold",
    "intent_threshold": "intent_threshold",
}
_IN_MESSAGE = re.compile(
    r"^\[(?P<index>\d+)\]"
    r"(?:\.(?P<list>quick_replies|buttons)(?:\[(?P<choice>\d+)\])?)?"
    r"(?:\.(?P<field>[a-z_]+))?: (?P<message>.*)$",
    re.DOTALL,
)


def _place_in_messages(blocks: list[MessageBlock], rest: str, fallback: list[str]) -> None:
    """``[0].quick_replies[1].title: 21 characters; ...`` beside that title."""
    found = _IN_MESSAGE.match(rest)
    if not found or int(found["index"]) >= len(blocks):
        fallback.append(rest.lstrip(".: "))
        return
    block = blocks[int(found["index"])]
    message = found["message"]
    if found["list"] and found["choice"] is not None:
        place = (found["list"], int(found["choice"]))
        if place in block.placed:
            choice = block.choices[block.placed.index(place)]
            choice.errors.setdefault(found["field"] or "title", []).append(message)
            return
    if found["list"]:
        block.errors.setdefault("choices", []).append(message)
        return
    block.errors.setdefault(found["field"] or "text", []).append(message)


def editor_place_errors(editor: Editor, errors: dict[str, list[str]]) -> None:
    """Put each of the validator's problems beside the field it is about."""
    form = editor.form
    for name, problems in errors.items():
        for problem in problems:
            rest = problem[len(name) :] if name and problem.startswith(name) else problem
            if name == "messages":
                _place_in_messages(editor.steps[0].messages, rest, editor.general_errors)
            elif name == "steps":
                _place_in_steps(editor, rest)
            elif name == "follow_gate":
                target = "follow_gate_button" if ".button" in rest else "follow_gate_text"
                form.add_error(target, rest.split(": ", 1)[-1])
            elif name in form.fields or name in _FORM_FIELD_OF:
                form.add_error(_FORM_FIELD_OF.get(name, name), rest.lstrip(".: "))
            else:
                editor.general_errors.append(rest.lstrip(".: ") if name else problem)


def _place_in_steps(editor: Editor, rest: str) -> None:
    if not rest.startswith("."):
        editor.general_errors.append(rest.lstrip(": "))
        return
    named = sorted(editor.steps[1:], key=lambda step: len(step.name), reverse=True)
    for step in named:
        if step.name and rest[1:].startswith(step.name):
            after = rest[1 + len(step.name) :]
            if after.startswith("["):
                _place_in_messages(step.messages, after, step.errors)
            else:
                step.errors.append(after.lstrip(".: "))
            return
    editor.general_errors.append(rest.lstrip(".: "))


def editor_validate(editor: Editor) -> None:
    editor.item = editor_build(editor)
    if editor.item is None:
        return
    editor_place_errors(editor, trigger_errors(editor.item))


def editor_from_post(data, *, accounts, kept_options: dict) -> Editor:
    form = TriggerBasicsForm(data, accounts=accounts)
    return Editor(form=form, steps=steps_from_post(data), kept_options=kept_options)


@transaction.atomic
def trigger_save(
    *, trigger: Trigger | None, item: dict, account: InstagramAccount, actor
) -> Trigger:
    """Store a trigger the validator accepted, with an audit entry of what changed."""
    values = {key: item[key] for key in KNOWN_FIELDS if key != "account"}
    values["name"] = values["name"].strip()
    extra = {key: value for key, value in item.items() if key not in KNOWN_FIELDS}
    if trigger is None:
        trigger = Trigger.objects.create(account=account, extra=extra, **values)
        audit_record(
            action="created", obj=trigger, actor=actor, changes=diff(None, snapshot(trigger))
        )
        return trigger
    before = snapshot(trigger)
    trigger.account = account
    for key, value in values.items():
        setattr(trigger, key, value)
    trigger.extra = extra
    trigger.save()
    changes = diff(before, snapshot(trigger))
    if changes:
        audit_record(action="changed", obj=trigger, actor=actor, changes=changes)
    return trigger
