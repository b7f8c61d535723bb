from django.contrib import admin

from .models import AccessToken


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "scope", "created", "last_used"]
    readonly_fields = ["user", "name", "scope", "prefix", "digest", "created", "last_used"]
    search_fields = ["name", "user__username", "prefix"]

    def has_add_permission(self, request):
        return False  # tokens are made by their owner, who alone sees them
