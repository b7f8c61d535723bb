from django.urls import path

from . import views

urlpatterns = [
    path("", views.token_settings, name="token_settings"),
    path("<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
