from django.urls import path

from . import views

urlpatterns = [
    path("", views.room_list, name="chat_rooms"),
    path("<str:room>/", views.room_detail, name="chat_room"),
    path("<str:room>/messages/", views.room_messages, name="chat_room_messages"),
]
