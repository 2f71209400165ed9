"""Who can log in through the stand-in's OAuth dialogs, what they granted, and what was issued.

Pure data and rules, no HTTP: ``oauth.py`` answers the OAuth and account endpoints with it, and
``graph.py`` asks it about the tokens it issued (expired? revoked? which page or Instagram account
does it act for? which scopes does it hold?). Everything here is changed only under
``State.lock``.

Times are wall-clock epoch seconds (``time.time()``) because they are shown to clients
(``expires_at`` in debug_token) and set by tests through the control API.
"""

from __future__ import annotations

import itertools
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

FACEBOOK = "facebook"
INSTAGRAM = "instagram"
LOGINS = (FACEBOOK, INSTAGRAM)

USER = "USER"
PAGE = "PAGE"

# Scopes the dialogs know (meta-api.md sections 1 and 7). Anything else is refused the way
# Meta's dialog refuses it ("Invalid Scopes: ..."), which catches typos and retired names.
FACEBOOK_SCOPES = frozenset(
    {
        "public_profile",
        "email",
        "pages_show_list",
        "pages_read_engagement",
        "pages_read_user_content",
        "pages_manage_metadata",
        "pages_manage_engagement",
        "pages_manage_posts",
        "pages_messaging",
        "business_management",
        "instagram_basic",
        "instagram_manage_comments",
        "instagram_manage_messages",
        "instagram_manage_insights",
        "instagram_content_publish",
        "read_insights",
    }
)
INSTAGRAM_SCOPES = frozenset(
    {
        "instagram_business_basic",
        "instagram_business_manage_messages",
        "instagram_business_manage_comments",
        "instagram_business_content_publish",
        "instagram_business_manage_insights",
    }
)
# Retired in January 2025 (meta-api.md section 1): refused with a hint to the new name.
RETIRED_INSTAGRAM_SCOPES = {
    "business_basic": "instagram_business_basic",
    "business_manage_messages": "instagram_business_manage_messages",
    "business_manage_comments": "instagram_business_manage_comments",
    "business_content_publish": "instagram_business_content_publish",
}
REQUIRED_INSTAGRAM_SCOPE = "instagram_business_basic"
# Facebook adds this to every grant whether asked or not.
ALWAYS_GRANTED_FACEBOOK = "public_profile"

ALL_TASKS = ("ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE")

SHORT_LIVED_SECONDS = 3600  # Facebook short-lived user tokens and Instagram's code exchange
LONG_LIVED_SECONDS = 5_184_000  # 60 days, both logins
DATA_ACCESS_SECONDS = 90 * 86400  # Facebook's data_access_expires_at
FACEBOOK_CODE_SECONDS = 600  # Facebook codes live about 10 minutes
INSTAGRAM_CODE_SECONDS = 3600  # meta-api.md section 7: valid 1 hour
REFRESH_MIN_AGE_SECONDS = 86400  # an Instagram token can be refreshed once 24 h old

# Default apps: the product's DEBUG defaults for META_APP_ID/SECRET, so the zero-config demo
# logs in without configuring anything.
DEFAULT_APPS = {
    FACEBOOK: ("demo-app-id", "demo-app-secret", "Stand-in Facebook app"),
    INSTAGRAM: ("demo-instagram-app-id", "demo-instagram-app-secret", "Stand-in Instagram app"),
}

# 190 subcodes for a token that no longer works (meta-api.md section 6).
SUBCODE_APP_REMOVED = 458  # the person removed the app (deauthorize)
SUBCODE_SESSION_INVALIDATED = 460  # password changed / revoked by the control API
SUBCODE_EXPIRED = 463

_ALNUM = string.ascii_letters + string.digits


def random_text(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def split_scopes(value: Any) -> list[str]:
    """Scopes as Meta takes them: comma- or space-separated, in order, without repeats."""
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        return []
    seen: dict[str, None] = {}
    for part in value.replace(" ", ",").split(","):
        if part.strip():
            seen.setdefault(part.strip(), None)
    return list(seen)


# --- people ------------------------------------------------------------------------------------
@dataclass
class IgAccount:
    """An Instagram professional account.

    ``id`` is the professional account id (the IG User id: webhooks' ``entry.id``, the
    ``instagram_business_account.id`` of a Page, and ``user_id`` of Instagram Login's /me).
    ``app_user_id`` is Instagram Login's app-scoped id: /me's ``id`` and the code exchange's
    ``user_id``. They differ on purpose (meta-api.md 2.1), so a product that mixes them up fails.
    """

    id: str
    username: str
    name: str
    app_user_id: str

    def graph_view(self) -> dict[str, Any]:
        """The account seen through a Page (Facebook Login): ``GET /{ig-id}``."""
        return {"id": self.id, "username": self.username, "name": self.name}

    def login_view(self) -> dict[str, Any]:
        """The account seen by its own Instagram Login token: ``GET /me``."""
        return {
            "id": self.app_user_id,
            "user_id": self.id,
            "username": self.username,
            "name": self.name,
            "account_type": "BUSINESS",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "app_user_id": self.app_user_id,
        }


@dataclass
class Page:
    id: str
    name: str
    tasks: list[str]
    instagram: IgAccount | None
    category: str = "Brand"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tasks": list(self.tasks),
            "instagram": self.instagram.to_dict() if self.instagram else None,
            "category": self.category,
        }


@dataclass
class Person:
    """Whoever is "logged in to Facebook/Instagram" when the product sends them to a dialog."""

    id: str
    name: str
    pages: list[Page]
    instagram: IgAccount | None  # the account used for Instagram Login
    scopes: list[str] | None = None  # what they grant when asked; None: everything asked

    def page(self, page_id: str) -> Page | None:
        return next((p for p in self.pages if p.id == page_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "pages": [p.to_dict() for p in self.pages],
            "instagram": self.instagram.to_dict() if self.instagram else None,
            "scopes": list(self.scopes) if self.scopes is not None else None,
        }


def _ids(seed: int) -> dict[str, str]:
    return {
        "person": f"1015{seed:013d}",
        "page": f"1020{seed:011d}",
        "ig": f"1784149{seed:010d}",
        "app_user": f"270{seed:014d}",
    }


def _ig_from_json(data: Any, fallback: dict[str, str], where: str) -> IgAccount:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object")
    ig_id = str(data.get("id") or fallback["ig"])
    username = str(data.get("username") or f"standin_{ig_id[-4:]}")
    return IgAccount(
        id=ig_id,
        username=username,
        name=str(data.get("name") or username),
        # Derived from the id so that the same account always gets the same app-scoped id.
        app_user_id=str(data.get("app_user_id") or "27" + ig_id[-15:].rjust(15, "0")),
    )


def person_from_json(data: Any, seed: int) -> Person:
    """Validate a control-API person; ValueError says what is wrong. Missing parts get defaults."""
    if not isinstance(data, dict):
        raise ValueError("a person must be a JSON object")
    known = {"id", "name", "pages", "instagram", "scopes", "login"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown person field(s): {', '.join(sorted(unknown))}")
    ids = _ids(seed)
    pages_data = data.get("pages")
    if pages_data is None:
        pages_data = [{"instagram": {}}]
    if not isinstance(pages_data, list):
        raise ValueError("pages must be a list")
    pages: list[Page] = []
    for index, item in enumerate(pages_data):
        where = f"pages[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object")
        page_ids = _ids(seed * 100 + index) if index else ids
        tasks = item.get("tasks", list(ALL_TASKS))
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise ValueError(f"{where}.tasks must be a list of strings")
        # No key: the Page has an Instagram account with default ids; null: it has none.
        if "instagram" in item:
            ig_data = item["instagram"]
        else:
            ig_data = item.get("instagram_business_account", {})
        page_id = str(item.get("id") or page_ids["page"])
        pages.append(
            Page(
                id=page_id,
                name=str(item.get("name") or f"Stand-in Page {page_id[-4:]}"),
                tasks=[t.upper() for t in tasks],
                instagram=(
                    _ig_from_json(ig_data, page_ids, f"{where}.instagram")
                    if ig_data is not None
                    else None
                ),
                category=str(item.get("category") or "Brand"),
            )
        )
    if len({p.id for p in pages}) != len(pages):
        raise ValueError("page ids must be unique")
    ig_login = data.get("instagram")
    if ig_login is not None:
        instagram: IgAccount | None = _ig_from_json(ig_login, ids, "instagram")
    else:
        # Instagram Login logs in as the first page's account unless told otherwise.
        instagram = next((p.instagram for p in pages if p.instagram is not None), None)
    scopes = data.get("scopes")
    if scopes is not None:
        if not isinstance(scopes, list | str):
            raise ValueError("scopes must be a list of scope names or null")
        scopes = split_scopes(scopes)
    person_id = str(data.get("id") or ids["person"])
    return Person(
        id=person_id,
        name=str(data.get("name") or f"Stand-in Person {person_id[-4:]}"),
        pages=pages,
        instagram=instagram,
        scopes=scopes,
    )


# --- apps, grants, codes, tokens ------------------------------------------------------------------
@dataclass
class App:
    login: str
    app_id: str
    secret: str
    name: str
    redirect_uris: list[str] = field(default_factory=list)  # empty: any http(s) URI

    def redirect_allowed(self, uri: str) -> bool:
        if not uri.startswith(("http://", "https://")):
            return False
        return not self.redirect_uris or uri in self.redirect_uris

    def to_dict(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "app_id": self.app_id,
            "app_secret": mask_secret(self.secret),
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
        }


@dataclass
class Grant:
    """What one person allowed one app; shared by every token of that login (user and page)."""

    id: int
    login: str
    app_id: str
    person_id: str
    requested: list[str]
    scopes: list[str]
    declined: list[str]
    ig_account_id: str | None = None  # Instagram Login: the account that logged in

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "login": self.login,
            "app_id": self.app_id,
            "person_id": self.person_id,
            "requested": list(self.requested),
            "scopes": list(self.scopes),
            "declined": list(self.declined),
            "ig_account_id": self.ig_account_id,
        }


@dataclass
class Code:
    value: str
    login: str
    app_id: str
    grant_id: int
    redirect_uri: str
    issued_at: float
    expires_at: float
    used: bool = False


@dataclass
class Token:
    value: str
    kind: str  # USER or PAGE
    login: str
    grant_id: int
    long_lived: bool
    issued_at: float
    expires_at: float  # 0: never
    data_access_expires_at: float
    source: str  # how it was obtained: code, fb_exchange_token, me/accounts, ig_exchange_token...
    page_id: str | None = None
    revoked: int | None = None  # the 190 subcode it now answers
    handle: int = 0  # a small number naming it in the control API (the log only shows masks)

    def expired(self, t: float) -> bool:
        return bool(self.expires_at) and self.expires_at <= t

    def expires_in(self, t: float) -> int:
        return max(int(self.expires_at - t), 0) if self.expires_at else 0


@dataclass
class Settings:
    # ask: show the consent page; approve / cancel: answer the dialog with the redirect at once.
    consent: str = "ask"
    # flat: {access_token, user_id, permissions}; data: the newer {"data": [...]} wrapping.
    instagram_token_shape: str = "flat"  # noqa: S105 (a shape name)
    allow_early_refresh: bool = False  # refresh Instagram tokens younger than 24 h
    check_token_host: bool = True  # issued Facebook tokens only on /vNN, Instagram ones on /ig
    strict_tokens: bool = False  # refuse tokens the stand-in never issued or registered

    FIELDS = ("consent", "instagram_token_shape", "allow_early_refresh", "check_token_host")

    def update(self, data: dict[str, Any]) -> None:
        """Apply a control-API change; ValueError says what is wrong (nothing changes then)."""
        data = dict(data)
        if "auto_approve" in data:
            # Shorthand the brief of the control API promises: on = approve, off = ask.
            data.setdefault("consent", "approve" if data.pop("auto_approve") else "ask")
        known = {*self.FIELDS, "strict_tokens"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if "consent" in data and data["consent"] not in ("ask", "approve", "cancel"):
            raise ValueError("consent must be 'ask', 'approve' or 'cancel'")
        shape = data.get("instagram_token_shape")
        if shape is not None and shape not in ("flat", "data"):
            raise ValueError("instagram_token_shape must be 'flat' or 'data'")
        for name in ("allow_early_refresh", "check_token_host", "strict_tokens"):
            if name in data and not isinstance(data[name], bool):
                raise ValueError(f"{name} must be true or false")
        for name, value in data.items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent": self.consent,
            "auto_approve": self.consent == "approve",
            "instagram_token_shape": self.instagram_token_shape,
            "allow_early_refresh": self.allow_early_refresh,
            "check_token_host": self.check_token_host,
            "strict_tokens": self.strict_tokens,
        }


def mask_secret(value: str | None) -> str | None:
    """First 4 characters only, like the request log."""
    if not value:
        return None
    return value[:4] + "…"


class Logins:
    """Apps, people, grants, codes and tokens. Hold ``State.lock`` while using it."""

    def __init__(self, apps: dict[str, tuple[str, str, str]] | None = None) -> None:
        self.apps: dict[str, App] = {
            login: App(login, app_id, secret, name)
            for login, (app_id, secret, name) in (apps or DEFAULT_APPS).items()
        }
        self.settings = Settings()
        self.people: dict[str, Person] = {}
        self.current_person: str | None = None
        self.grants: dict[int, Grant] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}
        self.page_tokens: dict[tuple[str, str], str] = {}  # (user token, page id) -> page token
        self._grant_ids = itertools.count(1)
        self._token_handles = itertools.count(1)
        self._person_seed = itertools.count(1)

    # --- apps ----------------------------------------------------------------------------------
    def app_by_id(self, login: str, app_id: str | None) -> App | None:
        app = self.apps.get(login)
        return app if app is not None and app_id and app.app_id == app_id else None

    def app_for(self, app_id: str) -> App | None:
        return next((a for a in self.apps.values() if a.app_id == app_id), None)

    # --- people --------------------------------------------------------------------------------
    def add_person(self, data: Any) -> Person:
        person = person_from_json(data, next(self._person_seed))
        self.people[person.id] = person
        if not isinstance(data, dict) or data.get("login", True):
            self.current_person = person.id
        return person

    def person_logging_in(self) -> Person:
        """The current person; without any defined, a default one with one page and account."""
        if self.current_person is None or self.current_person not in self.people:
            self.add_person({"name": "Stand-in Person"})
        assert self.current_person is not None
        return self.people[self.current_person]

    def ig_account(self, account_id: str) -> IgAccount | None:
        """A defined Instagram account by its professional id or app-scoped id."""
        for person in self.people.values():
            accounts = [p.instagram for p in person.pages] + [person.instagram]
            for account in accounts:
                if account is not None and account_id in (account.id, account.app_user_id):
                    return account
        return None

    def page_by_id(self, page_id: str) -> Page | None:
        for person in self.people.values():
            page = person.page(page_id)
            if page is not None:
                return page
        return None

    # --- grants and codes ------------------------------------------------------------------------
    def grant_for(
        self,
        login: str,
        app: App,
        person: Person,
        requested: list[str],
        chosen: list[str] | None,
    ) -> Grant:
        """Record a consent. ``chosen`` is what the consent form had ticked (None: person's)."""
        allowed = chosen if chosen is not None else person.scopes
        scopes = [s for s in requested if allowed is None or s in allowed]
        if login == FACEBOOK and ALWAYS_GRANTED_FACEBOOK not in scopes:
            scopes.append(ALWAYS_GRANTED_FACEBOOK)
        declined = [s for s in requested if s not in scopes]
        ig_id = person.instagram.id if login == INSTAGRAM and person.instagram else None
        # One grant per person, app and account: logging in again updates it, like Meta.
        for grant in self.grants.values():
            if (grant.login, grant.app_id, grant.person_id, grant.ig_account_id) == (
                login,
                app.app_id,
                person.id,
                ig_id,
            ):
                grant.requested, grant.scopes, grant.declined = requested, scopes, declined
                return grant
        grant = Grant(
            next(self._grant_ids), login, app.app_id, person.id, requested, scopes, declined, ig_id
        )
        self.grants[grant.id] = grant
        return grant

    def issue_code(self, login: str, app: App, grant: Grant, redirect_uri: str) -> Code:
        t = time.time()
        ttl = FACEBOOK_CODE_SECONDS if login == FACEBOOK else INSTAGRAM_CODE_SECONDS
        code = Code(
            value="AQ" + random_text(94, _ALNUM + "-_"),
            login=login,
            app_id=app.app_id,
            grant_id=grant.id,
            redirect_uri=redirect_uri,
            issued_at=t,
            expires_at=t + ttl,
        )
        self.codes[code.value] = code
        return code

    # --- tokens --------------------------------------------------------------------------------
    def issue_token(
        self,
        grant: Grant,
        *,
        long_lived: bool,
        source: str,
        kind: str = USER,
        page_id: str | None = None,
        expires_at: float | None = None,
    ) -> Token:
        t = time.time()
        if expires_at is None:
            expires_at = t + (LONG_LIVED_SECONDS if long_lived else SHORT_LIVED_SECONDS)
        prefix = "IGAA" if grant.login == INSTAGRAM else "EAA"
        token = Token(
            value=prefix + random_text(120),
            kind=kind,
            login=grant.login,
            grant_id=grant.id,
            long_lived=long_lived,
            issued_at=t,
            expires_at=expires_at,
            data_access_expires_at=t + DATA_ACCESS_SECONDS,
            source=source,
            page_id=page_id,
            handle=next(self._token_handles),
        )
        self.tokens[token.value] = token
        return token

    def page_token(self, user_token: Token, page: Page) -> Token:
        """The Page token /me/accounts hands out for a user token (stable per user token).

        From a long-lived user token it never expires; from a short-lived one it expires with it.
        """
        key = (user_token.value, page.id)
        existing = self.tokens.get(self.page_tokens.get(key, ""))
        if existing is not None:
            return existing
        grant = self.grants[user_token.grant_id]
        token = self.issue_token(
            grant,
            long_lived=user_token.long_lived,
            source="me/accounts",
            kind=PAGE,
            page_id=page.id,
            expires_at=0 if user_token.long_lived else user_token.expires_at,
        )
        self.page_tokens[key] = token.value
        return token

    def problem(self, token: Token, t: float | None = None) -> tuple[int, str] | None:
        """(190 subcode, message) when the token no longer works, else None."""
        t = time.time() if t is None else t
        if token.revoked is not None:
            if token.revoked == SUBCODE_APP_REMOVED:
                app_id = self.grants[token.grant_id].app_id
                return (
                    SUBCODE_APP_REMOVED,
                    f"Error validating access token: The user has not authorized application "
                    f"{app_id}.",
                )
            return (
                token.revoked,
                "Error validating access token: The session has been invalidated because the "
                "user changed their password or Facebook has changed the session for security "
                "reasons.",
            )
        if token.expired(t):
            when = time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(token.expires_at))
            now_text = time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(t))
            return (
                SUBCODE_EXPIRED,
                f"Error validating access token: Session has expired on {when}. "
                f"The current time is {now_text}.",
            )
        return None

    def grant_tokens(self, grant_id: int) -> list[Token]:
        return [t for t in self.tokens.values() if t.grant_id == grant_id]

    def deauthorize(self, grant: Grant) -> int:
        """The person removed the app: every token of the grant answers 190/458 from now on."""
        tokens = self.grant_tokens(grant.id)
        for token in tokens:
            token.revoked = SUBCODE_APP_REMOVED
        return len(tokens)

    def account_for(self, token: Token) -> dict[str, Any]:
        """What ``/me`` answers for an issued token, and the id it sends as."""
        grant = self.grants[token.grant_id]
        person = self.people.get(grant.person_id)
        if token.kind == PAGE and token.page_id:
            page = self.page_by_id(token.page_id)
            return {"id": token.page_id, "name": page.name if page else token.page_id}
        if token.login == INSTAGRAM and grant.ig_account_id:
            account = self.ig_account(grant.ig_account_id)
            if account is not None:
                return account.login_view()
        return {"id": grant.person_id, "name": person.name if person else grant.person_id}

    def acts_for(self, token: Token) -> set[str]:
        """Node ids an issued token may send from or subscribe: its page or Instagram account."""
        grant = self.grants[token.grant_id]
        if token.kind == PAGE and token.page_id:
            page = self.page_by_id(token.page_id)
            ids = {token.page_id}
            if page is not None and page.instagram is not None:
                ids.add(page.instagram.id)
            return ids
        if token.login == INSTAGRAM and grant.ig_account_id:
            account = self.ig_account(grant.ig_account_id)
            if account is not None:
                return {account.id, account.app_user_id}
        return {grant.person_id}

    def describe(self, token: Token, t: float | None = None) -> dict[str, Any]:
        """A control-API view of a token, masked."""
        t = time.time() if t is None else t
        grant = self.grants[token.grant_id]
        problem = self.problem(token, t)
        return {
            "handle": token.handle,
            "token": mask_secret(token.value),
            "kind": token.kind,
            "login": token.login,
            "long_lived": token.long_lived,
            "source": token.source,
            "app_id": grant.app_id,
            "person_id": grant.person_id,
            "page_id": token.page_id,
            "ig_account_id": grant.ig_account_id,
            "scopes": list(grant.scopes),
            "declined": list(grant.declined),
            "issued_at": int(token.issued_at),
            "expires_at": int(token.expires_at),
            "is_valid": problem is None,
            "error_subcode": problem[0] if problem else None,
        }

    def find_token(self, value: Any) -> Token | None:
        """An issued token by its full value, or by the ``handle`` the token list shows."""
        if isinstance(value, int) and not isinstance(value, bool):
            return next((t for t in self.tokens.values() if t.handle == value), None)
        if not isinstance(value, str) or not value:
            return None
        return self.tokens.get(value)
