from django import forms
from django.contrib import admin, messages

from .models import Notification, SiteUpdate, Verb
from .services import InformError, clean_url, notifications_push_again, send_inform


class NotificationForm(forms.ModelForm):
    """The service's URL rule, shown on the form instead of failing on save."""

    class Meta:
        model = Notification
        fields = ["recipient", "actor", "verb", "text", "url", "read_at"]

    def clean_url(self):
        try:
            return clean_url(self.cleaned_data.get("url", ""))
        except InformError as exc:
            raise forms.ValidationError(str(exc)) from None


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
    form = NotificationForm
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
        published = 0
        for n in queryset:
            try:
                send_inform(everyone=True, verb=Verb.SITE_UPDATE, text=n.text, url=n.url, actor=request.user)
                published += 1
            except InformError as exc:
                self.message_user(request, f"Not published #{n.id}: {exc}", messages.ERROR)
        self.message_user(request, f"Published {published} site update(s).", messages.SUCCESS)

    @admin.action(description="Send again (push the stored notifications live)", permissions=["change"])
    def send_again(self, request, queryset):
        pushed = notifications_push_again(queryset)
        self.message_user(request, f"Pushed {pushed} notification(s) again.", messages.SUCCESS)


@admin.register(SiteUpdate)
class SiteUpdateAdmin(admin.ModelAdmin):
    form = NotificationForm
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
        pushed = notifications_push_again(queryset)
        self.message_user(request, f"Pushed {pushed} site update(s) again.", messages.SUCCESS)
