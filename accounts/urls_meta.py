"""Callbacks Meta calls (registered in the app dashboard, so they never move), under /meta/."""

from django.urls import path

from accounts import callback_views

urlpatterns = [
    path("deauthorize/", callback_views.deauthorize, name="meta_deauthorize"),
    path("data-deletion/", callback_views.data_deletion, name="meta_data_deletion"),
    path(
        "data-deletion/<str:code>/",
        callback_views.data_deletion_status,
        name="meta_data_deletion_status",
    ),
]
