"""API tokens and the catalog change history."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "gft_"


def hash_token(raw: str) -> str:
    """Returns the SHA-256 hex digest stored for a token; the raw token is never stored."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def issue(self, user, name: str = "") -> tuple[ApiToken, str]:
        """Returns the new token row and the raw token, which is shown once and never again."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = self.create(user=user, name=name, key_hash=hash_token(raw), prefix=raw[:10])
        return token, raw

    def authenticate(self, raw: str) -> ApiToken | None:
        """Returns the live token for ``raw`` (and marks it used), or None."""
        if not raw or len(raw) > 200:
            return None
        token = self.select_related("user").filter(key_hash=hash_token(raw), revoked=False).first()
        if token is None or not token.user.is_active:
            return None
        # One UPDATE, no save(): concurrent requests with the same token do not race on other fields.
        now = timezone.now()
        type(token).objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        return token


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name="user"
    )
    name = models.CharField("name", max_length=80, blank=True, help_text="What the token is for, e.g. 'CI sizing job'.")
    key_hash = models.CharField(
        "token hash", max_length=64, unique=True, editable=False, help_text="SHA-256 of the token."
    )
    prefix = models.CharField(
        "prefix", max_length=12, editable=False, help_text="The token's first characters, to tell tokens apart."
    )
    created_at = models.DateTimeField("created", default=timezone.now)
    last_used_at = models.DateTimeField("last used", null=True, blank=True)
    revoked = models.BooleanField("revoked", default=False, help_text="A revoked token is refused.")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class CatalogChange(models.Model):
    """One save or delete of a catalog row in the admin: who, when, and the row before and after."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Changed"
        DELETE = "delete", "Deleted"
        RESTORE = "restore", "Restored"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name="user"
    )
    at = models.DateTimeField("when", default=timezone.now, db_index=True)
    action = models.CharField("action", max_length=8, choices=Action.choices)
    model_label = models.CharField("model", max_length=100, help_text="app_label.ModelName, e.g. hardware.GPU.")
    object_id = models.CharField("object id", max_length=64)
    object_repr = models.CharField("object", max_length=200)
    before = models.JSONField("before", null=True, blank=True, help_text="Field values before the change.")
    after = models.JSONField("after", null=True, blank=True, help_text="Field values after the change.")
    changed_fields = models.JSONField("changed fields", default=list, blank=True)

    class Meta:
        verbose_name = "catalog change"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["model_label", "object_id"], name="catalogchange_object")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.model_label} {self.object_repr} at {self.at:%Y-%m-%d %H:%M}"
