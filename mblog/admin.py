from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import Follow, Post, Reply, User

admin.site.register(User, UserAdmin)


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("title", "author", "created")
    search_fields = ("title", "body", "author__username")


@admin.register(Reply)
class ReplyAdmin(admin.ModelAdmin):
    list_display = ("post", "author", "created")
    search_fields = ("body", "author__username")


@admin.register(Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ("follower", "followed", "created")
