"""The "new job" form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from django_remote_submission.models import Interpreter, Job, Server
from server.sample import SAMPLE_PROGRAM


class NewJobForm(forms.ModelForm):  # type: ignore[type-arg]
    """A job and how to log in for it. The password is used for this run and not kept."""

    username = forms.CharField(
        label="Remote login",
        required=False,
        help_text="Blank: the server's default login, else your user name.",
    )
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Used for this run only, never stored. Blank: the worker's SSH key, "
        "if the site grants it to you on this server.",
    )

    class Meta:
        model = Job
        fields = [
            "title",
            "server",
            "interpreter",
            "program",
            "remote_directory",
            "remote_filename",
        ]
        widgets = {"program": forms.Textarea(attrs={"rows": 14, "spellcheck": "false"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["server"].queryset = Server.objects.order_by("title")
        self.fields["interpreter"].queryset = Interpreter.objects.order_by("name")
        self.fields["program"].initial = SAMPLE_PROGRAM
        self.fields["remote_directory"].initial = settings.EXAMPLE_REMOTE_DIRECTORY
        self.fields["remote_filename"].initial = settings.EXAMPLE_REMOTE_FILENAME
        server = Server.objects.order_by("pk").first()
        if server is not None:
            self.fields["server"].initial = server.pk
            python = server.interpreters.filter(name__startswith="python").first()
            if python is not None:
                self.fields["interpreter"].initial = python.pk
