from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import Post, User


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)


class PostForm(forms.ModelForm):
    class Meta:
        model = Post
        fields = ("title", "body")
        widgets = {"body": forms.Textarea(attrs={"rows": 8})}


class ReplyForm(forms.Form):
    body = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    parent = forms.IntegerField(required=False, widget=forms.HiddenInput)
