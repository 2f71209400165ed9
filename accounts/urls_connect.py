"""URLs filled in by the OAuth / Meta callback work (see config/urls.py)."""

urlpatterns: list = []
