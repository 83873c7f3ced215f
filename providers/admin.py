from django import forms
from django.contrib import admin, messages

from .discovery import DiscoveryError
from .models import Provider, ProviderModel
from .services import provider_models_sync

SECRETS = ("api_key", "aws_secret_access_key")


class ProviderForm(forms.ModelForm):
    """Secrets are write-only: never rendered back; leaving the field empty keeps
    the stored value, ticking `clear_…` removes it."""

    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="Write-only. Leave empty to keep the stored key.")
    aws_secret_access_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                            help_text="Write-only. Leave empty to keep the stored secret.")
    clear_api_key = forms.BooleanField(required=False)
    clear_aws_secret_access_key = forms.BooleanField(required=False)

    class Meta:
        model = Provider
        fields = "__all__"

    def clean(self):
        data = super().clean()
        for field in SECRETS:
            if data.get("clear_" + field):
                data[field] = ""
            elif not data.get(field) and self.instance.pk:
                data[field] = getattr(Provider.objects.get(pk=self.instance.pk), field)
        return data


class ProviderModelInline(admin.TabularInline):
    model = ProviderModel
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
        ("Credentials", {"fields": ("api_key", "clear_api_key", "aws_access_key_id", "aws_secret_access_key",
                                    "clear_aws_secret_access_key", "aws_profile", "region", "api_version")}),
        ("Behaviour", {"fields": ("wire_api", "extra_headers", "connect_timeout", "first_token_timeout", "total_timeout")}),
        ("Network", {"fields": ("proxy", "ca_bundle")}),
    )

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
    list_display = ("model_id", "provider", "deployment", "context_window", "input_price", "output_price", "enabled")
    list_filter = ("provider", "enabled")
    search_fields = ("model_id", "deployment")
