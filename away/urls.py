from django.urls import path

from . import views

urlpatterns = [
    path("settings/", views.away_settings, name="away_settings"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="away_unsubscribe"),
]
