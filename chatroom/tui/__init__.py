"""The Textual terminal client: the app, its widgets, its messages and its commands."""

from chatroom.tui.app import ChatApp

__all__ = ["ChatApp"]
