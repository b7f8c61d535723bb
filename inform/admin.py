from django.contrib import admin, messages

from .models import Notification, SiteUpdate, Verb
from .push import notify_informs, notify_site_update
from .services import send_inform


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("site", "Site updates"), ("personal", "Personal")]

    def queryset(self, request, queryset):
        if self.value() == "site":
            return queryset.filter(recipient__isnull=True)
        if self.value() == "personal":
            return queryset.filter(recipient__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "verb", "recipient_or_everyone", "actor", "text", "created", "read_at")
    list_filter = (KindFilter, "verb")
    search_fields = ("text", "recipient__username", "actor__username")
    raw_id_fields = ("recipient", "actor")
    list_select_related = ("recipient", "actor")
    actions = ["publish_as_site_update", "send_again"]

    @admin.display(description="recipient")
    def recipient_or_everyone(self, obj):
        return obj.recipient or "everyone (site update)"

    def has_publish_permission(self, request):
        """Publishing creates a site update: it takes the permission to add one."""
        return request.user.has_perm("inform.add_siteupdate") or request.user.has_perm("inform.add_notification")

    @admin.action(description="Publish a site update to everyone with this text", permissions=["publish"])
    def publish_as_site_update(self, request, queryset):
        for n in queryset:
            send_inform(everyone=True, verb=Verb.SITE_UPDATE, text=n.text, url=n.url, actor=request.user)
        self.message_user(request, f"Published {queryset.count()} site update(s).", messages.SUCCESS)

    @admin.action(description="Send again (push the stored notifications live)", permissions=["change"])
    def send_again(self, request, queryset):
        personal = [n for n in queryset.select_related("actor", "recipient") if n.recipient_id]
        notify_informs(personal)
        for n in queryset.filter(recipient__isnull=True).select_related("actor"):
            notify_site_update(n)
        self.message_user(request, f"Pushed {queryset.count()} notification(s) again.", messages.SUCCESS)


@admin.register(SiteUpdate)
class SiteUpdateAdmin(admin.ModelAdmin):
    list_display = ("id", "text", "url", "actor", "created")
    search_fields = ("text", "actor__username")
    fields = ("text", "url")
    actions = ["send_again"]

    def has_change_permission(self, request, obj=None):
        # Published updates are history (publish a new one instead); the permission
        # still decides who may run "send again" on them.
        return obj is None and super().has_change_permission(request)

    def save_model(self, request, obj, form, change):
        (n,) = send_inform(everyone=True, verb=Verb.SITE_UPDATE, text=obj.text, url=obj.url, actor=request.user)
        obj.pk, obj.id, obj.created = n.pk, n.id, n.created

    @admin.action(description="Send again (push live to every open socket)", permissions=["change"])
    def send_again(self, request, queryset):
        for n in queryset.select_related("actor"):
            notify_site_update(n)
        self.message_user(request, f"Pushed {queryset.count()} site update(s) again.", messages.SUCCESS)
