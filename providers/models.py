import os

from django.db import models

from .crypto import EncryptedTextField


class ProviderType(models.TextChoices):
    OPENAI = "openai", "OpenAI (or any OpenAI-compatible server)"
    ANTHROPIC = "anthropic", "Anthropic"
    OLLAMA = "ollama", "Ollama"
    OPENROUTER = "openrouter", "OpenRouter"
    BEDROCK = "bedrock", "AWS Bedrock"
    AZURE = "azure", "Azure OpenAI"


DEFAULT_BASE_URLS = {
    ProviderType.OPENAI: "https://api.openai.com/v1",
    ProviderType.ANTHROPIC: "https://api.anthropic.com",
    ProviderType.OLLAMA: "http://localhost:11434",
    ProviderType.OPENROUTER: "https://openrouter.ai/api/v1",
    ProviderType.BEDROCK: "",  # derived from the region
    ProviderType.AZURE: "",  # https://<resource>.openai.azure.com
}


class Provider(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text="Used in routes and as a model alias.")
    type = models.CharField(max_length=20, choices=ProviderType.choices)
    base_url = models.URLField(blank=True, help_text="Empty: the type's default. OpenAI-compatible types include "
                                                     "the version path (…/v1); anthropic and ollama are the host root.")
    default_model = models.CharField(max_length=200, blank=True, help_text="Model used when a request names "
                                                                           "this provider.")
    api_key = EncryptedTextField(blank=True, help_text="Encrypted at rest; never shown after saving.")
    region = models.CharField(max_length=40, blank=True, help_text="AWS region (bedrock).")
    api_version = models.CharField(max_length=40, blank=True, help_text="Azure api-version.")
    aws_access_key_id = models.CharField(max_length=128, blank=True)
    aws_secret_access_key = EncryptedTextField(blank=True)
    aws_profile = models.CharField(max_length=100, blank=True)
    extra_headers = models.JSONField(default=dict, blank=True, help_text="Sent with every upstream request.")
    connect_timeout = models.FloatField(default=5.0)
    first_token_timeout = models.FloatField(default=60.0, help_text="Seconds to the first response byte.")
    total_timeout = models.FloatField(default=600.0)
    wire_api = models.CharField(
        max_length=10, default="auto", choices=[("auto", "auto"), ("chat", "chat"), ("responses", "responses")],
        help_text="openai/azure: which OpenAI API the server speaks. auto: chat completions for chat clients, "
                  "the Responses API for Responses clients; chat: the server has no /v1/responses (translate); "
                  "responses: send everything to /v1/responses (Responses-only models).")
    proxy = models.CharField(
        max_length=500, blank=True,
        help_text="Empty: the HTTPS_PROXY / HTTP_PROXY / NO_PROXY environment of the gateway. A proxy URL "
                  "(http://[user:pass@]host:port) for this provider only, or `direct` for never a proxy.")
    ca_bundle = models.CharField(
        max_length=500, blank=True,
        help_text="Path to a PEM file of the CA certificates to trust for this provider instead of the "
                  "system's (a private CA). TLS is always verified.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        super().clean()
        proxy = self.proxy.strip()
        if proxy and proxy != "direct" and not proxy.startswith(("http://", "https://")):
            raise ValidationError({"proxy": "a proxy URL (http://[user:pass@]host:port), `direct`, or empty for "
                                            "the HTTPS_PROXY / HTTP_PROXY / NO_PROXY environment"})

    # Stored secrets, and the fields that decide where they are sent: changing a destination
    # field without supplying the secrets again clears them (else whoever may edit a provider
    # could point it at a server of theirs, or at their proxy and CA, and receive the stored
    # key with the next request). Applied by the admin form and the config import.
    SECRET_FIELDS = ("api_key", "aws_secret_access_key")
    DESTINATION_FIELDS = ("type", "base_url", "region", "proxy", "ca_bundle")

    def effective_base_url(self) -> str:
        if not self.base_url and self.type == ProviderType.OLLAMA and os.environ.get("OLLAMA_HOST"):
            from .adapters.ollama import host_url  # as the ollama CLI reads it

            return host_url(os.environ["OLLAMA_HOST"])
        return (self.base_url or DEFAULT_BASE_URLS.get(self.type, "")).rstrip("/")


class ProviderModel(models.Model):
    """An upstream model a provider serves, with prices in USD per 1M tokens."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(max_length=200)
    deployment = models.CharField(max_length=200, blank=True, help_text="Azure deployment name for this model.")
    context_window = models.PositiveIntegerField(null=True, blank=True)
    input_price = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    output_price = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    cache_read_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    cache_write_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Largest max_tokens this model accepts; translated requests asking "
                                         "for more are clamped. Empty: the built-in table for known models.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["provider__name", "model_id"]
        constraints = [models.UniqueConstraint(fields=["provider", "model_id"], name="unique_provider_model")]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.model_id}"
