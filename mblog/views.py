from django.contrib import messages as flash
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.http import require_GET, require_POST

from inform.health import channel_layer_ok

from . import selectors, services
from .errors import ApplicationError
from .forms import PostForm, ReplyForm, SignupForm
from .models import Follow, Post, Reply, User
from .throttle import Budget, client_address, wait_words

LOGIN_ACCOUNT = Budget("login_account")
LOGIN_ADDRESS = Budget("login_address")
SIGNUP_ADDRESS = Budget("signup_address")


def refusal(budget: Budget, key: str, what: str) -> str:
    return f"Too many {what}. Try again in {wait_words(budget.retry_after(key))}."


class LoginView(auth_views.LoginView):
    """Django's login, with budgets: sign-in attempts per client address, and failed
    sign-ins per username (checked before the password is hashed)."""

    def post(self, request, *args, **kwargs):
        if not LOGIN_ADDRESS.hit(client_address(request)):
            return self.refuse(LOGIN_ADDRESS, client_address(request), "sign-in attempts from your address")
        if LOGIN_ACCOUNT.spent(self.account()):
            return self.refuse(LOGIN_ACCOUNT, self.account(), "failed sign-ins for this account")
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        LOGIN_ACCOUNT.hit(self.account())
        return super().form_invalid(form)

    def account(self) -> str:
        return self.request.POST.get("username", "").strip().lower()[:150]

    def refuse(self, budget: Budget, key: str, what: str):
        context = self.get_context_data(form=self.get_form_class()(self.request), throttled=refusal(budget, key, what))
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(budget.retry_after(key))
        return response


def home(request):
    return render(request, "mblog/home.html", {"feed": selectors.activity_feed()})


@require_GET
def api_feed(request):
    """The newest feed items, newest first: what a page that was offline backfills from."""
    items = [dict(item.as_dict(), created=item.created.isoformat()) for item in selectors.activity_feed()]
    return JsonResponse({"feed": items})


def signup(request):
    if request.method == "POST" and not SIGNUP_ADDRESS.hit(client_address(request)):
        address = client_address(request)
        context = {"form": SignupForm(), "throttled": refusal(SIGNUP_ADDRESS, address, "sign-ups from your address")}
        response = render(request, "registration/signup.html", context, status=429)
        response["Retry-After"] = str(SIGNUP_ADDRESS.retry_after(address))
        return response
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        flash.success(
            request,
            f"Welcome to mblog, {user.username}! Write a post, follow people from their profiles, or say hi in the chat. "
            "Replies, mentions and follows reach you live under the bell.",
        )
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


def profile(request, username):
    person = get_object_or_404(User, username=username)
    following = (
        request.user.is_authenticated and Follow.objects.filter(follower=request.user, followed=person).exists()
    )
    return render(
        request,
        "mblog/profile.html",
        {
            "person": person,
            "following": following,
            "posts": person.posts.all()[:20],
            "follower_count": person.followers.count(),
            "following_count": person.following.count(),
        },
    )


@login_required
@require_POST
def follow_toggle(request, username):
    person = get_object_or_404(User, username=username)
    try:
        services.follow_toggle(follower=request.user, followed=person)
    except ApplicationError as exc:
        return HttpResponseBadRequest(exc.message)
    return redirect("profile", username=username)


@login_required
def post_new(request):
    form = PostForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        post = services.post_create(author=request.user, **form.cleaned_data)
        return redirect(post)
    return render(request, "mblog/post_form.html", {"form": form})


def post_detail(request, pk):
    post = get_object_or_404(Post.objects.select_related("author"), pk=pk)
    form = ReplyForm(request.POST or None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"/accounts/login/?next={post.get_absolute_url()}")
        if form.is_valid():
            parent_id = form.cleaned_data["parent"]
            parent = get_object_or_404(Reply, pk=parent_id, post=post) if parent_id else None
            reply = services.reply_create(author=request.user, post=post, parent=parent, body=form.cleaned_data["body"])
            return redirect(reply.get_absolute_url())
    replies = list(post.replies.select_related("author"))
    return render(
        request,
        "mblog/post_detail.html",
        {
            "post": post,
            "replies": replies,
            "form": form,
            "known_names": selectors.mentioned_names(post, replies),
            "post_topic": services.topic_of(post),
        },
    )


def healthz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    checks["channel_layer"] = "ok" if channel_layer_ok() else "error"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)


def csrf_failure(request, reason=""):
    """JSON for API callers, Django's page for browsers."""
    if request.path.startswith("/inform/api/") or "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"error": "csrf_failed", "detail": reason}, status=403)
    return django_csrf_failure(request, reason)
