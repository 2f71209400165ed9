from django.urls import path

from webhooks import views

urlpatterns = [path("instagram/", views.instagram_webhook, name="instagram-webhook")]
