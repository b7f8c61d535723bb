from django.contrib import admin

from . import services
from .models import Message, Presence, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("name", "created_by", "created")
    search_fields = ("name",)
    raw_id_fields = ("created_by",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Deleting a message (one or many) pushes its removal to everyone in the room."""

    list_display = ("id", "room", "user", "text", "created")
    list_filter = ("room",)
    search_fields = ("text", "user__username", "room__name")
    list_select_related = ("room", "user")
    raw_id_fields = ("room", "user")
    readonly_fields = ("room", "user", "text", "created")

    def has_add_permission(self, request):
        return False  # messages are written in rooms, where they are validated and pushed

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        services.chat_messages_delete([obj])

    def delete_queryset(self, request, queryset):
        services.chat_messages_delete(queryset)


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    list_display = ("user", "room", "seen", "conn")
    list_filter = ("room",)
    raw_id_fields = ("room", "user")
