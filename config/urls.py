from django.contrib import admin
from django.urls import include, path

from config import views

admin.site.site_header = "Instagram DM automation"
admin.site.site_title = "DM automation console"
admin.site.index_title = "Operator console"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("healthz/", views.healthz, name="healthz"),
    path("livez/", views.livez, name="livez"),
]
