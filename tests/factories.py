"""factory_boy factories for the project's models."""

import factory
from django.utils import timezone

from accounts.models import Contact, InstagramAccount, LoginKind, Workspace
from messaging.models import Delivery, DeliveryKind
from triggers.models import Trigger
from webhooks.models import WebhookEvent


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Client {n}")


class InstagramAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InstagramAccount
        skip_postgeneration_save = True

    workspace = factory.SubFactory(WorkspaceFactory)
    ig_user_id = factory.Sequence(lambda n: f"1784140{n:010d}")
    username = factory.Sequence(lambda n: f"studio.{n}")
    page_id = factory.Sequence(lambda n: f"10000{n:010d}")
    login_kind = LoginKind.FACEBOOK
    scopes = factory.LazyAttribute(
        lambda o: (
            [
                "instagram_basic",
                "instagram_manage_comments",
                "instagram_manage_messages",
                "pages_messaging",
            ]
            if o.login_kind == LoginKind.FACEBOOK
            else [
                "instagram_business_basic",
                "instagram_business_manage_comments",
                "instagram_business_manage_messages",
            ]
        )
    )

    @factory.post_generation
    def token(self, create, extracted, **kwargs):
        self.access_token = extracted or f"token-{self.ig_user_id}"
        if create:
            self.save(update_fields=["access_token_encrypted"])


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(InstagramAccountFactory)
    igsid = factory.Sequence(lambda n: f"84806741{n:07d}")
    username = factory.Sequence(lambda n: f"person.{n}")


class TriggerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Trigger

    account = factory.SubFactory(InstagramAccountFactory)
    name = factory.Sequence(lambda n: f"Trigger {n}")
    event = "comment"
    match = "contains"
    keywords = factory.LazyFunction(lambda: ["guide"])
    public_replies = factory.LazyFunction(lambda: ["Sent! Check your DMs"])
    messages = factory.LazyFunction(lambda: [{"text": "Here is the guide: https://example.com"}])


class WebhookEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEvent

    raw_body = '{"object": "instagram", "entry": []}'
    dedupe_key = factory.Sequence(lambda n: f"{n:064d}")


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    account = factory.SubFactory(InstagramAccountFactory)
    workspace = factory.SelfAttribute("account.workspace")
    contact = factory.SubFactory(ContactFactory, account=factory.SelfAttribute("..account"))
    kind = DeliveryKind.PRIVATE_REPLY
    comment_id = factory.Sequence(lambda n: f"1786730127{n:07d}")
    recipient = factory.SelfAttribute("comment_id")
    payload = factory.LazyFunction(lambda: {"text": "Here is the guide"})
    dedupe_key = factory.LazyAttribute(lambda o: f"{o.kind}:{o.comment_id}")
    interaction_at = factory.LazyFunction(timezone.now)
    event_received_at = factory.LazyFunction(timezone.now)


class UserFactory(factory.django.DjangoModelFactory):
    """A person who signs in to the console (staff, no Django model permissions)."""

    class Meta:
        model = "auth.User"
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@agency.test")
    is_staff = True
    is_superuser = False

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        # Hashing is slow on purpose; tests sign in with force_login, so only hash when asked.
        if extracted:
            self.set_password(extracted)
        else:
            self.set_unusable_password()
        if create:
            self.save(update_fields=["password"])


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "accounts.Membership"

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = "marketer"


class FlowRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "triggers.FlowRun"

    trigger = factory.SubFactory(TriggerFactory)
    account = factory.SelfAttribute("trigger.account")
    contact = factory.SubFactory(ContactFactory, account=factory.SelfAttribute("..account"))
    origin_key = factory.Sequence(lambda n: f"comment:1786{n:09d}")
    segment_key = factory.SelfAttribute("origin_key")


class TriggerFiringFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "triggers.TriggerFiring"

    trigger = factory.SubFactory(TriggerFactory)
    contact = factory.SubFactory(ContactFactory, account=factory.SelfAttribute("..trigger.account"))
    fired_at = factory.LazyFunction(timezone.now)
    origin_key = factory.Sequence(lambda n: f"comment:1787{n:09d}")


class InstagramLoginAccountFactory(InstagramAccountFactory):
    """An account connected with Instagram Login: no Page, an app-scoped alternate id."""

    login_kind = LoginKind.INSTAGRAM
    page_id = ""
    ig_alt_id = factory.Sequence(lambda n: f"2784140{n:010d}")
