from django.contrib import admin
from django.urls import include, path

from away.views import service_worker
from realtime.metrics import metrics_view

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("api/feed/", views.api_feed, name="api_feed"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("u/<str:username>/", views.profile, name="profile"),
    path("u/<str:username>/follow/", views.follow_toggle, name="follow_toggle"),
    path("posts/new/", views.post_new, name="post_new"),
    path("posts/<int:pk>/", views.post_detail, name="post_detail"),
    path("inform/", include("inform.urls")),
    path("chat/", include("chat.urls")),
    path("settings/tokens/", include("tokens.urls")),
    path("away/", include("away.urls")),
    path("sw.js", service_worker, name="service_worker"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
]
