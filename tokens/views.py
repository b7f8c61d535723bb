from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import services
from .models import AccessToken


@login_required
def token_settings(request):
    """The token list and the form that creates one; the new token is in this one answer
    only (never stored, never cached)."""
    context = {"scopes": AccessToken.SCOPES, "max_tokens": services.MAX_PER_USER}
    status = 200
    if request.method == "POST":
        try:
            token, raw = services.token_create(
                user=request.user, name=request.POST.get("name", ""), scope=request.POST.get("scope", "")
            )
            context.update(new_token=raw, new_token_row=token)
        except services.TokenError as exc:
            context.update(error=exc.message, name=request.POST.get("name", ""))
            status = 400
    context["tokens"] = AccessToken.objects.filter(user=request.user)
    response = render(request, "tokens/settings.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request, pk):
    if services.token_revoke(user=request.user, token_id=pk):
        flash.success(request, "Token revoked; scripts using it are signed out.")
    return redirect("token_settings")
