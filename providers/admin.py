from django import forms
from django.contrib import admin, messages

from .discovery import DiscoveryError
from .models import Provider, ProviderModel, ProviderType
from .services import provider_models_sync

# Where a stored secret is sent: changing one of these without supplying the secrets
# again clears them (Provider.DESTINATION_FIELDS says why; the config import does the same).
SECRETS = Provider.SECRET_FIELDS
DESTINATION = Provider.DESTINATION_FIELDS

# Human labels where the field name makes a poor one ("Api key", "Ca bundle").
PROVIDER_LABELS = {
    "base_url": "Base URL", "aws_access_key_id": "AWS access key ID", "aws_profile": "AWS profile",
    "region": "AWS region", "api_version": "API version", "wire_api": "Wire API",
    "extra_headers": "Extra headers", "connect_timeout": "Connect timeout (s)",
    "first_token_timeout": "First token timeout (s)", "total_timeout": "Total timeout (s)",
    "proxy": "HTTP proxy", "ca_bundle": "CA bundle",
}
PRICE_UNIT = "USD per 1M tokens"
PRICES = ("input_price", "output_price", "cache_read_price", "cache_write_price")
MODEL_LABELS = {
    "model_id": "Model ID", "input_price": f"Input price ({PRICE_UNIT})",
    "output_price": f"Output price ({PRICE_UNIT})", "cache_read_price": f"Cache read price ({PRICE_UNIT})",
    "cache_write_price": f"Cache write price ({PRICE_UNIT})", "max_output_tokens": "Max output tokens",
}


def only_for(*types: ProviderType) -> tuple[str, ...]:
    """Fieldset classes read by providers/static/providers/provider_type.js, which hides the
    fieldset unless the selected type is one of `types` (without JavaScript all stay visible)."""
    return ("only-for", *(f"only-{t.value}" for t in types))


class ProviderForm(forms.ModelForm):
    """Secrets are write-only: never rendered back; leaving the field empty keeps
    the stored value, ticking `clear_…` removes it."""

    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), label="API key",
                              help_text="Write-only. Leave empty to keep the stored key.")
    aws_secret_access_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                            label="AWS secret access key",
                                            help_text="Write-only. Leave empty to keep the stored secret.")
    clear_api_key = forms.BooleanField(required=False, label="Clear the stored API key")
    clear_aws_secret_access_key = forms.BooleanField(required=False, label="Clear the stored AWS secret")

    class Meta:
        model = Provider
        fields = "__all__"
        labels = PROVIDER_LABELS

    def clean_extra_headers(self):
        """The config file's rules (providers/schema.py): header names to strings."""
        from providers.schema import STRING, MapOf, check_value

        value = self.cleaned_data.get("extra_headers")
        problems = check_value(value, MapOf(STRING), "extra_headers")
        if problems:
            raise forms.ValidationError(problems)
        return value

    def clean(self):
        data = super().clean()
        self.moved = [f for f in DESTINATION if f in self.changed_data] if self.instance.pk else []
        self.supplied = [f for f in SECRETS if data.get(f)]
        self.cleared_secrets = []
        for field in SECRETS:
            if data.get("clear_" + field):
                data[field] = ""
            elif not data.get(field) and self.instance.pk:
                stored = getattr(Provider.objects.get(pk=self.instance.pk), field)
                if stored and self.moved:
                    data[field] = ""
                    self.cleared_secrets.append(field)
                else:
                    data[field] = stored
        return data


class ProviderModelForm(forms.ModelForm):
    """Prices say their unit in the label; number inputs narrow enough for the inline
    table to fit a 1400 px window."""

    class Meta:
        model = ProviderModel
        fields = "__all__"
        labels = MODEL_LABELS
        widgets = {
            **{name: forms.NumberInput(attrs={"step": "any", "style": "width: 6.5em"}) for name in PRICES},
            **{name: forms.NumberInput(attrs={"style": "width: 6em"})
               for name in ("context_window", "max_output_tokens")},
            "deployment": forms.TextInput(attrs={"style": "width: 10em"}),
            "model_id": forms.TextInput(attrs={"style": "width: 12em"}),
        }


class ProviderModelFormSet(forms.BaseInlineFormSet):
    def get_unique_error_message(self, unique_check):
        # Django's names the columns ("provider and model_id"): say it in words.
        return "A model ID can be listed once per provider: remove or rename the second row."


class ProviderModelInline(admin.TabularInline):
    model = ProviderModel
    form = ProviderModelForm
    formset = ProviderModelFormSet
    extra = 0


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "type", "effective_base_url", "default_model", "has_secret", "enabled", "updated_at")
    list_filter = ("type", "enabled")
    search_fields = ("name", "base_url", "default_model")
    inlines = [ProviderModelInline]
    actions = ["sync_models"]
    fieldsets = (
        (None, {"fields": ("name", "type", "base_url", "default_model", "enabled")}),
        ("API key", {"fields": ("api_key", "clear_api_key"),
                     "classes": only_for(*(t for t in ProviderType if t != ProviderType.BEDROCK))}),
        ("AWS (Bedrock)", {"fields": ("region", "aws_access_key_id", "aws_secret_access_key",
                                      "clear_aws_secret_access_key", "aws_profile"),
                           "classes": only_for(ProviderType.BEDROCK),
                           "description": "Empty keys: the gateway's AWS environment (profile, role, "
                                          "instance credentials)."}),
        ("Azure", {"fields": ("api_version",), "classes": only_for(ProviderType.AZURE)}),
        ("OpenAI API", {"fields": ("wire_api",), "classes": only_for(ProviderType.OPENAI, ProviderType.AZURE)}),
        ("Behaviour", {"fields": ("extra_headers", "connect_timeout", "first_token_timeout", "total_timeout")}),
        ("Network", {"fields": ("proxy", "ca_bundle")}),
    )

    class Media:
        js = ("providers/provider_type.js",)

    def get_fieldsets(self, request, obj=None):
        """A `clear` checkbox only where a secret is stored (never on the add form)."""
        hidden = {f"clear_{name}" for name in SECRETS if obj is None or not getattr(obj, name)}
        return [(name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in hidden)})
                for name, opts in self.fieldsets]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if getattr(form, "cleared_secrets", None):
            self._secrets_cleared(request, obj, form.cleared_secrets, form.moved)

    def save_formset(self, request, form, formset, change):
        """A changed Azure deployment also moves where the key goes: the same rule."""
        moved = change and formset.model is ProviderModel and any(
            f.instance.pk and "deployment" in f.changed_data
            for f in formset.forms if hasattr(f, "cleaned_data"))
        super().save_formset(request, form, formset, change)
        if moved:
            obj = form.instance
            cleared = [f for f in SECRETS if f not in getattr(form, "supplied", ()) and getattr(obj, f)
                       and f not in getattr(form, "cleared_secrets", ())]
            if cleared:
                for field in cleared:
                    setattr(obj, field, "")
                obj.save(update_fields=cleared + ["updated_at"])
                self._secrets_cleared(request, obj, cleared, ["models.deployment"])

    def _secrets_cleared(self, request, obj, cleared: list, moved: list) -> None:
        message = (f"Cleared the stored {', '.join(cleared)}: {', '.join(moved)} changed without the "
                   f"secret being entered again.")
        self.log_change(request, obj, message)
        self.message_user(request, f"{obj.name}: {message} Enter the secret for the new destination.",
                          messages.WARNING)

    @admin.action(description="Sync models from the provider")
    def sync_models(self, request, queryset):
        for provider in queryset:
            try:
                result = provider_models_sync(provider=provider)
            except DiscoveryError as exc:
                self.message_user(request, f"{provider.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{provider.name}: {result.summary()}.", messages.SUCCESS)

    @admin.display(boolean=True, description="secret set")
    def has_secret(self, obj):
        return bool(obj.api_key or obj.aws_secret_access_key)


@admin.register(ProviderModel)
class ProviderModelAdmin(admin.ModelAdmin):
    form = ProviderModelForm
    list_display = ("model_id", "provider", "deployment", "context_window", "input_price", "output_price", "enabled")
    list_filter = ("provider", "enabled")
    search_fields = ("model_id", "deployment")
