from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from accounts import invitation_views
from config import views
from messaging import views as messaging_views

# The admin signs in through allauth, so the optional second factor (TOTP) applies there too.
admin.site.login = secure_admin_login(admin.site.login)

# A refused console page is a page of the console, with a way back (config.views).
handler403 = "config.views.permission_denied"

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "accounts/invitation/<str:key>/",
        invitation_views.invitation_accept,
        name="invitation_accept",
    ),
    path("accounts/", include("allauth.urls")),
    path("connect/", include("accounts.urls_connect")),
    path("meta/", include("accounts.urls_meta")),
    path("webhooks/", include("webhooks.urls")),
    path("healthz/", views.healthz, name="healthz"),
    path("livez/", views.livez, name="livez"),
    # Tracked links in messages (messaging.links).
    path("l/<str:token>", messaging_views.link_redirect, name="link_redirect"),
]
