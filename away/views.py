from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import services
from .forms import AwaySettingsForm
from .models import AwayProfile
from .preferences import EMAIL_BY_DEFAULT


@login_required
@require_http_methods(["GET", "POST"])
def away_settings(request):
    profile, _ = AwayProfile.objects.get_or_create(user=request.user)
    if request.method == "POST":
        form = AwaySettingsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            profile.unsubscribed = sorted(EMAIL_BY_DEFAULT - set(data["email_kinds"]))
            profile.time_zone = data["time_zone"]
            profile.quiet_start, profile.quiet_end = data["quiet_start"], data["quiet_end"]
            profile.save(update_fields=["unsubscribed", "time_zone", "quiet_start", "quiet_end"])
            messages.success(request, "Saved.")
            return redirect("away_settings")
    else:
        form = AwaySettingsForm(initial={
            "email_kinds": sorted(EMAIL_BY_DEFAULT - set(profile.unsubscribed)),
            "time_zone": profile.time_zone, "quiet_start": profile.quiet_start, "quiet_end": profile.quiet_end,
        })
    return render(request, "away/settings.html", {"form": form, "email": request.user.email})


# The token is the credential: a mail provider's one-click POST (RFC 8058) carries no
# session and no CSRF token. GET only shows the button, so link scanners unsubscribe nobody.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    try:
        user_id, verbs = services.read_unsubscribe_token(token)
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return HttpResponseBadRequest("This unsubscribe link is not valid.")
    kinds = [services.KIND_NAMES.get(v, v) for v in verbs]
    done = False
    if request.method == "POST":
        services.unsubscribe(user_id, verbs)
        done = True
    return render(request, "away/unsubscribe.html", {"kinds": kinds, "done": done})
