"""chatroom: a self-hosted group chat with an asyncio server and a Textual client."""

__all__ = ["__version__"]

__version__ = "0.1.0"
