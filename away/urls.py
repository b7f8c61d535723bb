from django.urls import path

from . import views

urlpatterns = [
    path("settings/", views.away_settings, name="away_settings"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="away_unsubscribe"),
    path("push/subscribe/", views.push_subscribe, name="away_push_subscribe"),
    path("push/unsubscribe/", views.push_unsubscribe, name="away_push_unsubscribe"),
]
