"""Stream LLM replies to browsers over Server-Sent Events, with conversations, usage and costs stored."""
