"""The embedded default: replies' logs in this process's memory.

A reply can be read by any number of readers of the process that streams it; a reader that reaches
another process (a second worker) waits for the reply to be stored instead. Use the Redis backend
(``streaming.replylog.redis``) to read a reply through any process.
"""

from __future__ import annotations

from streaming.replylog.base import ReplyLog


class MemoryReplyLog(ReplyLog):
    """Transcripts in memory only: ``ReplyLog`` as it is."""
