from zoneinfo import available_timezones

from django import forms

from .preferences import EMAIL_BY_DEFAULT
from .services import KIND_NAMES


class AwaySettingsForm(forms.Form):
    email_kinds = forms.MultipleChoiceField(
        label="Email me about", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(k, KIND_NAMES[k]) for k in sorted(EMAIL_BY_DEFAULT)],
    )
    time_zone = forms.CharField(max_length=64, initial="UTC", help_text="For example Europe/Berlin")
    quiet_start = forms.TimeField(required=False, label="Quiet hours from", widget=forms.TimeInput(attrs={"type": "time"}))
    quiet_end = forms.TimeField(required=False, label="until", widget=forms.TimeInput(attrs={"type": "time"}))

    def clean_time_zone(self):
        name = self.cleaned_data["time_zone"].strip()
        if name not in available_timezones():
            raise forms.ValidationError("Unknown time zone; use a name like Europe/Berlin or America/New_York.")
        return name

    def clean(self):
        data = super().clean()
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            raise forms.ValidationError("Give both ends of the quiet hours, or neither.")
        return data
