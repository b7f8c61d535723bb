from django.urls import path

from .consumers import InformConsumer

websocket_urlpatterns = [path("ws/inform/", InformConsumer.as_asgi())]
