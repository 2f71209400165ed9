"""Who may see and change what: roles per workspace, decided in one place.

- An agency admin is a Django superuser: everything, in every workspace.
- A ``Membership`` gives a person one role (marketer or support) in one workspace. A person may
  hold different roles in different workspaces, and every decision is made per workspace: a
  marketer of A who is support in B sees A's triggers and B's deliveries, never A's deliveries
  nor B's triggers.
- Staff who are neither see nothing.

Our staff hold no Django model permissions (auth.Permission): the admin, the custom admin views
and the commands' ``--as`` ask these functions instead. ``WorkspaceScopedAdmin`` applies them to
a ModelAdmin: querysets, object pages, filters, form choices and actions.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter, RelatedOnlyFieldListFilter
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.core.management.base import CommandError
from django.db import models

from accounts.models import InstagramAccount, Membership, Role, Workspace

MARKETER_ROLES: tuple[str, ...] = (Role.MARKETER,)
SUPPORT_ROLES: tuple[str, ...] = (Role.SUPPORT,)
MEMBER_ROLES: tuple[str, ...] = (Role.MARKETER, Role.SUPPORT)
AGENCY_ONLY: tuple[str, ...] = ()

# Memberships are read once per user object, i.e. once per request: an admin page asks dozens
# of has_*_permission questions.
_CACHE_ATTRIBUTE = "_workspace_roles"


def is_agency_admin(user) -> bool:
    return bool(user is not None and user.is_active and user.is_superuser)


def workspace_roles(user) -> dict[int, str]:
    """{workspace id: role} of the person's memberships (empty for anonymous or inactive)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return {}
    cached = getattr(user, _CACHE_ATTRIBUTE, None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("workspace_id", "role"))
        setattr(user, _CACHE_ATTRIBUTE, cached)
    return cached


def member_workspace_ids(user, roles: Iterable[str]) -> set[int]:
    """Workspaces where the person holds one of ``roles`` through a membership."""
    wanted = set(roles)
    return {pk for pk, role in workspace_roles(user).items() if role in wanted}


def workspaces_for(user, roles: Iterable[str]) -> models.QuerySet[Workspace]:
    """Workspaces where the person holds one of ``roles``; every workspace for agency admins."""
    return restrict(Workspace.objects.all(), user, roles, "")


def accounts_for(user, roles: Iterable[str]) -> models.QuerySet[InstagramAccount]:
    """Accounts of the workspaces where the person holds one of ``roles`` (all for admins)."""
    return restrict(InstagramAccount.objects.all(), user, roles, "workspace")


def _is_multivalued(model: type[models.Model], path: str) -> bool:
    """Whether following ``path`` crosses a many-valued relation (rows would repeat)."""
    for name in path.split("__") if path else []:
        field = model._meta.get_field(name)
        if field.many_to_many or field.one_to_many:
            return True
        model = field.related_model
    return False


def restrict(
    queryset: models.QuerySet, user, roles: Iterable[str], path: str | None
) -> models.QuerySet:
    """The rows of ``queryset`` in workspaces where the person holds one of ``roles``.

    ``path`` leads from the queryset's model to its workspace ("account__workspace"); "" means
    the model is Workspace itself; None means the rows belong to no workspace (agency only).
    """
    if is_agency_admin(user):
        return queryset
    ids = member_workspace_ids(user, roles)
    if not ids or path is None:
        return queryset.none()
    lookup = f"{path}__in" if path else "pk__in"
    if _is_multivalued(queryset.model, path):
        # A subquery, not a join: an event linked to two accounts must not show twice.
        matching = queryset.model._default_manager.filter(**{lookup: ids}).values("pk")
        return queryset.filter(pk__in=matching)
    return queryset.filter(**{lookup: ids})


def workspace_ids_of(obj: models.Model, path: str | None) -> set[int]:
    """The workspace(s) an object belongs to, following ``path`` (see ``restrict``)."""
    if path is None:
        return set()
    if not path:
        return {obj.pk} if obj.pk is not None else set()
    if _is_multivalued(type(obj), path):
        if obj.pk is None:
            return set()
        found = type(obj)._default_manager.filter(pk=obj.pk).values_list(path, flat=True)
        return set(found) - {None}
    *hops, last = path.split("__")
    target = obj
    for hop in hops:
        target = getattr(target, hop, None)
        if target is None:
            return set()
    workspace_id = getattr(target, f"{last}_id", None)
    return {workspace_id} if workspace_id is not None else set()


def may(user, roles: Iterable[str], obj: models.Model, path: str | None) -> bool:
    """Whether the person holds one of ``roles`` in (one of) the object's workspace(s)."""
    if is_agency_admin(user):
        return True
    return bool(member_workspace_ids(user, roles) & workspace_ids_of(obj, path))


def person_for_command(username: str | None, roles: Iterable[str], doing: str):
    """The active person a command acts as (``--as USERNAME``; None without it).

    Agency admins may do everything; others need one of ``roles`` in at least one workspace.
    CommandError (the command's one-line reason) when there is no such person or they may not
    be ``doing`` it.
    """
    if not username:
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active user named {username!r}.")
    if not is_agency_admin(user) and not member_workspace_ids(user, roles):
        needed = " or ".join(Role(role).label.split(" (")[0].lower() for role in roles)
        raise CommandError(
            f"{username} cannot {doing}: that needs the {needed} role in a workspace, "
            "or agency admin."
        )
    return user


# --- The admin -----------------------------------------------------------------------------------
def _is_relation(model: type[models.Model], path: str) -> bool:
    field = None
    for name in path.split("__"):
        if model is None:
            return False
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        model = field.related_model
    return field is not None and field.is_relation


class WorkspaceScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose rows belong to workspaces and whose rights come from roles.

    Agency admins keep the plain ModelAdmin behaviour. A member sees the rows of workspaces
    where they hold one of ``view_roles`` or ``edit_roles``, and adds, changes and deletes the
    rows of workspaces where they hold one of ``edit_roles``. Empty tuples: agency admins only.
    What a member cannot see does not exist for them: changelists, object URLs (Django answers
    "doesn't exist"), history, search, actions and autocomplete all start from ``get_queryset``;
    relation filters list only what that queryset reaches; form choices only what they may edit.
    """

    # From the model to its Workspace; "" = the model is Workspace; None = in no workspace.
    workspace_path: str | None = "workspace"
    view_roles: tuple[str, ...] = AGENCY_ONLY
    edit_roles: tuple[str, ...] = AGENCY_ONLY

    def _member_may(self, request, roles: tuple[str, ...], obj=None) -> bool:
        if self.workspace_path is None or not member_workspace_ids(request.user, roles):
            return False
        return obj is None or may(request.user, roles, obj, self.workspace_path)

    def has_module_permission(self, request) -> bool:
        if is_agency_admin(request.user):
            return super().has_module_permission(request)
        return self._member_may(request, self.view_roles + self.edit_roles)

    def has_view_permission(self, request, obj=None) -> bool:
        if is_agency_admin(request.user):
            return super().has_view_permission(request, obj)
        return self._member_may(request, self.view_roles + self.edit_roles, obj)

    def has_add_permission(self, request) -> bool:
        if is_agency_admin(request.user):
            return super().has_add_permission(request)
        return self._member_may(request, self.edit_roles)

    def has_change_permission(self, request, obj=None) -> bool:
        if is_agency_admin(request.user):
            return super().has_change_permission(request, obj)
        return self._member_may(request, self.edit_roles, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if is_agency_admin(request.user):
            return super().has_delete_permission(request, obj)
        return self._member_may(request, self.edit_roles, obj)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_agency_admin(request.user):
            return queryset
        roles = self.view_roles + self.edit_roles
        return self.limit_for_member(
            request, restrict(queryset, request.user, roles, self.workspace_path)
        )

    def limit_for_member(self, request, queryset: models.QuerySet) -> models.QuerySet:
        """Narrow a member's rows further than their workspaces (e.g. the audit trail)."""
        return queryset

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if is_agency_admin(request.user):
            return filters
        # A plain relation filter lists every row of the related table (every workspace).
        return [self._member_filter(item) for item in filters]

    def _member_filter(self, item):
        if isinstance(item, str) and _is_relation(self.model, item):
            return (item, RelatedOnlyFieldListFilter)
        if (
            isinstance(item, list | tuple)
            and issubclass(item[1], RelatedFieldListFilter)
            and not issubclass(item[1], RelatedOnlyFieldListFilter)
        ):
            return (item[0], RelatedOnlyFieldListFilter)
        return item

    def get_field_queryset(self, db, db_field, request):
        """Form choices of a foreign key: for members, only what they may edit."""
        queryset = super().get_field_queryset(db, db_field, request)
        if is_agency_admin(request.user):
            return queryset
        related = db_field.remote_field.model
        if queryset is None:
            queryset = related._default_manager.using(db).all()
        return restrict(queryset, request.user, self.edit_roles, self._path_of(related))

    def _path_of(self, model: type[models.Model]) -> str | None:
        if model is Workspace:
            return ""
        if issubclass(model, InstagramAccount):
            return "workspace"
        if self.admin_site.is_registered(model):
            related_admin = self.admin_site.get_model_admin(model)
            if isinstance(related_admin, WorkspaceScopedAdmin):
                return related_admin.workspace_path
        return None  # a model we cannot place in a workspace: no choices for members

    def save_model(self, request, obj, form, change):
        # The form's choices already refuse other workspaces; this catches anything else that
        # would move the object where the person may not edit (defence in depth).
        if not is_agency_admin(request.user) and not self._member_may(
            request, self.edit_roles, obj
        ):
            raise PermissionDenied
        super().save_model(request, obj, form, change)


class WorkspaceScopedInline:
    """An inline that follows its parent admin: visible with the parent, edited with it."""

    def _parent_admin(self) -> admin.ModelAdmin:
        return self.admin_site.get_model_admin(self.parent_model)

    def has_view_permission(self, request, obj=None) -> bool:
        if is_agency_admin(request.user):
            return super().has_view_permission(request, obj)
        return self._parent_admin().has_view_permission(request, obj)

    def has_add_permission(self, request, obj) -> bool:
        if is_agency_admin(request.user):
            return super().has_add_permission(request, obj)
        return self._parent_admin().has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        if is_agency_admin(request.user):
            return super().has_change_permission(request, obj)
        return self._parent_admin().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if is_agency_admin(request.user):
            return super().has_delete_permission(request, obj)
        return self._parent_admin().has_change_permission(request, obj)
