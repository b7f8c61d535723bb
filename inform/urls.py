from django.urls import path

from . import views

urlpatterns = [
    path("", views.notification_list, name="inform_list"),
    path("read/", views.mark_read_form, name="inform_mark_read"),
    path("<int:pk>/open/", views.open_notification, name="inform_open"),
    path("<int:pk>/stop/", views.stop_notification, name="inform_stop"),
    path("settings/", views.preferences_page, name="inform_preferences"),
    path("mute/", views.mute_person, name="inform_mute_person"),
    path("topic/", views.topic_preference, name="inform_topic"),
    path("api/seen/", views.api_seen, name="inform_api_seen"),
    path("api/notifications/", views.api_notifications, name="inform_api_notifications"),
    path("api/unread/", views.api_unread, name="inform_api_unread"),
    path("api/menu/", views.api_menu, name="inform_api_menu"),
    path("api/read-state/", views.api_read_state, name="inform_api_read_state"),
    path("api/read/", views.api_read, name="inform_api_read"),
]
