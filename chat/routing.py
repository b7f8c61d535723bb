websocket_urlpatterns: list = []  # filled by the chat app (issue: chat rooms)
