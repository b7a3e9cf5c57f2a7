"""``ShellPoller``: lets a widget click reach Python while a notebook cell is still running.

While a cell trains a model, the kernel's main thread is busy and the front-end's widget messages (a click on
``TrainingMonitor``'s Stop button) wait unread. ``ShellPoller.poll``, called between batches, handles the
waiting widget messages at once and hands everything else back to the kernel in order. It relies on the
layout of ipykernel >= 7; with another kernel, or outside one, ``ShellPoller.create`` returns ``None`` and the
click takes effect when the cell ends.
"""

from __future__ import annotations

__all__ = ["ShellPoller"]


class ShellPoller:
    """Let widget messages (a Stop click) reach Python while a cell is running (ipykernel >= 7).

    A running cell blocks the kernel's main thread, so the front-end's widget messages wait in the in-process
    socket from which that thread reads its shell requests. Between batches, :meth:`poll` takes what waits
    there: widget (comm) messages are handled at once, in this thread; anything else (a queued cell, a
    completion request) is handed back, in order, to the kernel's event loop, which runs it when the cell
    ends, as it would have anyway. Outside a kernel, or with another kernel, :meth:`create` returns ``None``.
    """

    def __init__(self, kernel, socket):
        self.kernel, self.socket = kernel, socket

    @classmethod
    def create(cls) -> ShellPoller | None:
        import threading

        try:
            from IPython import get_ipython
        except ImportError:
            return None
        kernel = getattr(get_ipython(), "kernel", None)
        channel_thread = getattr(kernel, "shell_channel_thread", None)
        if channel_thread is None or threading.current_thread() is not threading.main_thread():
            return None
        try:
            socket = channel_thread.manager.get_shell_channel_to_subshell_pair(None).to_socket
        except Exception:  # another ipykernel layout: no polling, the click counts once the cell ends
            return None
        return cls(kernel, socket)

    def poll(self, max_messages: int = 50) -> int:
        """Handle up to ``max_messages`` waiting messages; returns how many were taken."""
        import zmq

        taken = 0
        while taken < max_messages:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            taken += 1
            k = self.kernel
            try:  # the header only (content=False does not record the signature, so the kernel can still
                idents, parts = k.session.feed_identities(frames, copy=False)  # accept a message handed back)
                kind = k.session.deserialize(parts, content=False, copy=False)["header"]["msg_type"]
            except Exception:
                kind = None
            if kind == "comm_msg" and hasattr(k, "comm_manager"):
                k.comm_manager.comm_msg(None, idents, k.session.deserialize(parts, content=True, copy=False))
            else:
                k.io_loop.add_callback(k.shell_main, None, frames)
        return taken
