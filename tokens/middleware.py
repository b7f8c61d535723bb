"""Bearer tokens for the JSON API: only views marked with @accepts_tokens take them.

Such a request is the token's user, with no CSRF check (a token is not ambient: a
browser never adds it by itself); a read-only token may only read. Everywhere else the
header is ignored, so a token never submits a form. Sits before CsrfViewMiddleware:
its process_view runs first.
"""

from django.http import JsonResponse

from .services import bearer, token_authenticate

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def accepts_tokens(view):
    view.accepts_tokens = True
    return view


class TokenAuthMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        header = request.headers.get("Authorization")
        if not getattr(view_func, "accepts_tokens", False) or not header or not header.lower().startswith("bearer"):
            return None
        token = token_authenticate(bearer(header))
        if token is None:
            response = JsonResponse({"error": "unauthenticated", "detail": "unknown or revoked token"}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="mblog"'
            return response
        if token.read_only and request.method not in SAFE_METHODS:
            return JsonResponse({"error": "forbidden", "detail": "this token is read-only"}, status=403)
        user = token.user

        async def auser():
            return user

        request.user, request.auser, request.access_token = user, auser, token
        request._dont_enforce_csrf_checks = True
        return None
