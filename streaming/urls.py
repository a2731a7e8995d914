from __future__ import annotations

from django.urls import path

from streaming import views

app_name = "streaming"

urlpatterns = [
    path("", views.chat_page, name="chat"),
    path("api/models", views.models, name="models"),
    path("api/conversations", views.conversations, name="conversations"),
    path("api/conversations/<str:conversation_id>", views.conversation, name="conversation"),
    path("api/conversations/<str:conversation_id>/export", views.export, name="export"),
    path("api/chat", views.chat, name="chat-stream"),
    path("api/chat/<str:chat_id>/stream", views.chat_stream, name="chat-resume"),
    path("api/budget", views.budget, name="budget"),
    path("api/messages/<str:message_id>/stop", views.stop, name="stop"),
    path("api/messages/<str:message_id>/stream", views.message_stream, name="message-stream"),
    path("api/messages/<str:message_id>/approvals", views.approvals, name="approvals"),
]
