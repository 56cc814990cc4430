from django import forms

from .choices import CredentialKind
from .models import Credential, RequirementProfile


class CredentialForm(forms.ModelForm):
    """Secrets are write-only: the form never shows the stored value, it only sets or replaces it."""

    new_secret = forms.CharField(
        label="Private key or password",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Paste a PEM/OpenSSH private key or a password. Leave empty to keep the stored secret.",
    )
    new_passphrase = forms.CharField(
        label="Key passphrase",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored passphrase; tick 'clear passphrase' to remove it.",
    )
    clear_passphrase = forms.BooleanField(required=False)

    class Meta:
        model = Credential
        fields = ["name", "kind"]

    def clean(self):
        data = super().clean()
        secret = data.get("new_secret", "")
        if not self.instance.pk and not secret:
            self.add_error("new_secret", "A new credential needs a private key or a password.")
        if secret and data.get("kind") == CredentialKind.PRIVATE_KEY and "PRIVATE KEY-----" not in secret:
            self.add_error("new_secret", "This does not look like a PEM or OpenSSH private key.")
        if secret and data.get("kind") == CredentialKind.PASSWORD and "\n" in secret.strip("\n"):
            self.add_error("new_secret", "A password is one line.")
        return data

    def save(self, commit=True):
        credential = super().save(commit=False)
        if self.cleaned_data.get("new_secret"):
            secret = self.cleaned_data["new_secret"]
            credential.secret = secret.strip("\n") if credential.kind == CredentialKind.PASSWORD else secret
        if self.cleaned_data.get("clear_passphrase"):
            credential.passphrase = ""
        elif self.cleaned_data.get("new_passphrase"):
            credential.passphrase = self.cleaned_data["new_passphrase"]
        if commit:
            credential.save()
        return credential


class InventoryImportForm(forms.Form):
    file = forms.FileField(help_text="An Ansible inventory, INI or YAML")
    cluster = forms.SlugField(required=False, help_text="Cluster name; default: the file's name without extension")
    profile = forms.ModelChoiceField(
        queryset=RequirementProfile.objects.all(),
        to_field_name="key",
        required=False,
        help_text="Leave empty to keep the cluster's profile (new clusters get the default)",
    )
    format = forms.ChoiceField(choices=[("", "Detect"), ("ini", "INI"), ("yaml", "YAML")], required=False)
