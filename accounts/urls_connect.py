"""The connect journey under /connect/ (config/urls.py). The first two are registered in Meta's
app dashboard and never move (INTERFACE.md)."""

from django.urls import path

from accounts import connect_views

urlpatterns = [
    path("instagram/", connect_views.connect_start, name="connect_start"),
    path("instagram/callback/", connect_views.connect_callback, name="connect_callback"),
    path("instagram/choose/<str:key>/", connect_views.connect_choose, name="connect_choose"),
    path(
        "instagram/subscribe/<int:account_id>/",
        connect_views.connect_subscribe,
        name="connect_subscribe",
    ),
]
