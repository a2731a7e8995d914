"""Conversations, messages and the token usage of each provider call. Models know nothing of providers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Sum
from django.utils import timezone

from streaming import tokens
from streaming.pricing import COST_DECIMAL_PLACES

COST_MAX_DIGITS = 20  # up to 10^10 USD with COST_DECIMAL_PLACES (10) places
CLIENT_ID_MAX_LENGTH = 100


def cost_field(verbose_name: str) -> models.DecimalField[Decimal | None, Decimal | None]:
    return models.DecimalField(
        verbose_name,
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="USD; empty when the model has no known price.",
    )


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def with_cost(self) -> ConversationQuerySet:
        """Annotate ``total_cost``: the sum of the priced usage of each conversation (NULL if none)."""
        return self.annotate(total_cost=Sum("usage__total_cost"))


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="streaming_conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, help_text="The model id, provider:model, last used here.")
    client_id = models.CharField(
        "client's chat id",
        max_length=CLIENT_ID_MAX_LENGTH,
        blank=True,
        default="",
        help_text="The id a client gave this conversation when it is not a UUID (the AI SDK's own ids).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "client_id"],
                condition=~models.Q(client_id=""),
                name="streaming_conversation_client_id_per_owner",
            )
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    """One message of a conversation, in a tree: each follows its ``parent`` (None for a first message).

    Editing a message adds a sibling of it (a message with the same parent), and regenerating a reply
    adds a sibling of the reply: earlier versions stay. Siblings are ordered by ``created_at``; the
    model's context is the path from a root down to the message being answered (``streaming.branches``).
    A message saved without a parent follows the conversation's newest message, so code that adds
    messages one after another makes a linear conversation.
    """

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        CANCELLED = "cancelled"
        ERROR = "error"
        INTERRUPTED = "interrupted"
        AWAITING_APPROVAL = "awaiting_approval"  # its tool calls wait for the user's answer

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        help_text="The message this one follows; messages with the same parent are versions of each other.",
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, help_text="Its text (the text parts, a blank line between them).")
    reasoning = models.TextField(blank=True)
    parts = models.JSONField(
        default=list,
        blank=True,
        help_text="What it said and did, in order: the AI SDK's UI message parts (text, reasoning, tools).",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.COMPLETE)
    finish_reason = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=200, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_text = models.TextField(blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "created_at"]),
            models.Index(fields=["status", "updated_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and self.parent_id is None and self.conversation_id is not None:
            newest = Message.objects.filter(conversation_id=self.conversation_id).order_by("-created_at")
            self.parent_id = newest.values_list("pk", flat=True).first()
        super().save(*args, **kwargs)


class Usage(models.Model):
    """One row per provider call that produced a reply: the normalized token counts and timings."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="streaming_usage"
    )
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage"
    )
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage"
    )
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    estimated = models.BooleanField(
        default=False, help_text="The stream ended before the provider reported usage; counts are estimates."
    )
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The cost snapshot, written with the row and changed only by an explicit re-price.
    unit_prices = models.JSONField(
        default=dict, blank=True, help_text="USD per million tokens (or per unit) used for this row."
    )
    price_source = models.CharField(
        max_length=64,
        blank=True,
        help_text="override:<id>, genai-prices==X.Y.Z, free (a free provider) or unpriced.",
    )
    input_cost = cost_field("input cost")
    output_cost = cost_field("output cost")
    total_cost = cost_field("total cost")
    priced_at = models.DateTimeField(null=True, blank=True, help_text="When the cost snapshot was taken.")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "usage"
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model} {self.input_tokens}+{self.output_tokens}"


class PriceOverrideQuerySet(models.QuerySet["PriceOverride"]):
    def in_force(self, provider: str, model: str, at: datetime) -> PriceOverride | None:
        """The override for ``provider:model`` valid at ``at``: the latest one that started by then."""
        return (
            self.filter(provider=provider, model=model, valid_from__lte=at)
            .order_by("-valid_from", "-id")
            .first()
        )


class PriceOverride(models.Model):
    """A staff-entered price that takes precedence over the bundled price data from ``valid_from`` on."""

    provider = models.CharField(max_length=100, help_text="The provider name of STREAMING['PROVIDERS'].")
    model = models.CharField(max_length=200, help_text="The model name, without the provider prefix.")
    valid_from = models.DateTimeField(default=timezone.now, help_text="Requests from this time on use it.")
    input_per_mtok = models.DecimalField(
        "input USD / M tokens", max_digits=12, decimal_places=6, help_text="Uncached input tokens."
    )
    output_per_mtok = models.DecimalField(
        "output USD / M tokens", max_digits=12, decimal_places=6, help_text="Includes reasoning tokens."
    )
    cache_read_per_mtok = models.DecimalField(
        "cache read USD / M tokens",
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Empty: cache reads cost the input price.",
    )
    cache_write_per_mtok = models.DecimalField(
        "cache write USD / M tokens",
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Empty: cache writes cost the input price.",
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = PriceOverrideQuerySet.as_manager()

    class Meta:
        ordering = ["provider", "model", "-valid_from"]
        indexes = [models.Index(fields=["provider", "model", "valid_from"])]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model} from {self.valid_from:%Y-%m-%d %H:%M}"


class UserBudget(models.Model):
    """A user's own monthly limit, replacing ``STREAMING['MONTHLY_BUDGET_USD']`` for that user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="streaming_budget"
    )
    monthly_usd = models.DecimalField(
        "monthly budget (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Empty: no limit for this user.",
    )
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "user budget"

    def __str__(self) -> str:
        limit = "unlimited" if self.monthly_usd is None else f"${self.monthly_usd}/month"
        return f"{self.user}: {limit}"


class BudgetReservation(models.Model):
    """What a streaming reply may cost at most, held against its user's budget until it is saved.

    Written in the transaction that starts the reply, deleted in the one that writes its usage row, so
    that the budget always counts a reply exactly once: reserved while it streams, spent once saved.
    ``expires_at`` is a backstop: a reservation whose reply was never saved (its message deleted while
    its process was dead) stops counting then.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="streaming_reservations"
    )
    # Not a foreign key: the reservation must outlive a message deleted while its reply streams, until
    # the reply's usage row (which outlives it too) takes its place.
    message_id = models.UUIDField(db_index=True)
    amount = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, help_text="USD"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.amount} USD for {self.message_id}"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def create_token(self, user: Any, name: str) -> tuple[ApiToken, str]:
        """A new token for ``user``, and the token itself: shown once, then only its digest is kept."""
        token = self.model(user=user, name=name)
        raw = token.new_secret()
        token.save()
        return token, raw

    def user_for(self, raw: str) -> Any | None:
        """The active user whose unrevoked token ``raw`` is, noting when it was used; None if none."""
        token = self.select_related("user").filter(digest=tokens.digest(raw), revoked_at=None).first()
        if token is None or not getattr(token.user, "is_active", True):  # (a custom user may have no flag)
            return None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > ApiToken.LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user


class ApiToken(models.Model):
    """A user's key to the API for scripts and other programs (``Authorization: Bearer <token>``).

    Only a digest of the token is stored; its first characters (``prefix``) name it in lists. A revoked
    token stays listed, with when it was revoked, and opens nothing.
    """

    #: ``last_used_at`` is written at most this often per token, not on every request.
    LAST_USED_RESOLUTION = timedelta(minutes=1)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="streaming_api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What it is for, such as the script that uses it.")
    prefix = models.CharField(max_length=16, editable=False, help_text="The first characters of the token.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def new_secret(self) -> str:
        """Give this (unsaved) token a new secret, and return it: it is not kept, only its digest."""
        raw = tokens.new_token()
        self.prefix, self.digest = tokens.prefix(raw), tokens.digest(raw)
        return raw
