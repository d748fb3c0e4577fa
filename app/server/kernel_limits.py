"""A kernel manager for a public dashboard: a cap on live kernels, and no kernel kept for a visitor who left.

Every page request of the dashboard gets a kernel (Voila's preheated pool hands one out and starts the next).
Stock Jupyter keeps a kernel until it has been idle for `cull_idle_timeout`, whether or not a browser ever
connected, and starts as many as are asked for. This class, used by the server process only, adds:

- **A cap.** At most `max_kernels` kernels live at once, counting the preheated one and those still starting. A
  page request beyond it gets HTTP 503 with a short "busy, try again in a minute" page (API requests: a JSON
  503); Voila's pool is not refilled beyond it, and is topped up again once a kernel has gone. (A visitor who
  comes within a second of the last free kernel being handed out takes Voila's refill before it has started, and
  gets Voila's own error page headed "503: The dashboard is busy, try again in a minute".)
- **Unconnected kernels go.** A kernel handed to a request that no browser connects to (a bare HTTP GET), or
  whose last browser connection closed (a closed tab that did not say goodbye), is shut down once that has lasted
  `unconnected_timeout` seconds without kernel activity either (running the page's notebook is activity, so a
  page that renders slowly under load keeps its kernel). Kernels waiting in Voila's pool are never culled.
- **Idle connected kernels go** after `cull_idle_timeout` seconds without activity (jupyter_server's own rule,
  `cull_connected` on).

Both culling rules run every `cull_interval` seconds and only when `cull_idle_timeout` > 0. An unconnected
kernel goes between `unconnected_timeout` and `unconnected_timeout` + 2 × `cull_interval` seconds after it was
handed out (a pooled kernel's hand-out is noticed at the next culling pass).

Configuration (voila.json for `voila notebooks/app.ipynb`; binder/postBuild copies it into Jupyter Server's
config for the Binder route):

    "VoilaConfiguration": {"multi_kernel_manager_class": "app.server.kernel_limits.DashboardKernelManager"},
    "MappingKernelManager": {"cull_idle_timeout": 300, "cull_interval": 10, "cull_connected": true},
    "DashboardKernelManager": {"max_kernels": 10, "unconnected_timeout": 45}

and for Jupyter Server also `"ServerApp": {"kernel_manager_class": "app.server.kernel_limits.DashboardKernelManager"}`.
"""

from __future__ import annotations

import asyncio
import html
import time
import uuid
from typing import Any, NoReturn

from jupyter_server._tz import utcnow
from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import APIHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer, default

PREHEAT_VARIABLE = "VOILA_PREHEAT"  # "True" in the environment of kernels Voila starts for its pool
BUSY_TITLE = "The dashboard is busy"
BUSY_REASON = f"{BUSY_TITLE}, try again in a minute"  # the reason phrase of every 503 (Voila's error page shows it)


def busy_page(retry_after: int) -> str:
    """The small HTML page a visitor gets when every kernel is taken; it reloads itself after `retry_after` s."""
    seconds = int(retry_after)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{seconds}"><title>{html.escape(BUSY_TITLE)}</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}"
        "h1{font-size:1.5em}</style></head>\n"
        f"<body><h1>{html.escape(BUSY_TITLE)}</h1>"
        "<p>Too many people are using it right now, and each visitor needs a place of their own. "
        f"Please try again in a minute: this page reloads itself in {seconds} seconds.</p></body></html>\n"
    )


class DashboardKernelManager(AsyncMappingKernelManager):
    """AsyncMappingKernelManager with a cap on live kernels and the shutdown of kernels without a browser."""

    max_kernels = Integer(
        10,
        config=True,
        help="Most kernels alive at once, the preheated pool included; 0 for no cap. Beyond it a page request "
        "gets HTTP 503 and a 'busy, try again in a minute' page.",
    )
    unconnected_timeout = Integer(
        45,
        config=True,
        help="Seconds a kernel handed to a visitor may go without a browser connection (never connected, or its "
        "last connection closed) before it is shut down; 0 leaves such kernels to cull_idle_timeout.",
    )
    retry_after = Integer(60, config=True, help="Seconds a refused visitor is asked to wait (Retry-After).")

    @default("cull_idle_timeout")
    def _default_cull_idle_timeout(self) -> int:
        return 300

    @default("cull_interval")
    def _default_cull_interval(self) -> int:
        return 10

    @default("cull_connected")
    def _default_cull_connected(self) -> bool:
        return True

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._starting_ids: set[str] = set()  # kernels being started: not yet in self._kernels
        self._unconnected_since: dict[str, float] = {}  # kernel id → time.monotonic() it lost (or never had) a browser
        self._closing = False

    @property
    def live_kernel_count(self) -> int:
        """Kernels alive or being started."""
        return len(self._starting_ids | set(self._kernels))

    def has_room(self) -> bool:
        """Whether one more kernel may start."""
        return self.max_kernels <= 0 or self.live_kernel_count < self.max_kernels

    async def start_kernel(self, *, kernel_id: str | None = None, **kwargs: Any) -> str:  # type: ignore[override]
        """Start a kernel, or refuse with HTTP 503 when `max_kernels` are alive (a pool refill: not started)."""
        if kernel_id is not None and kernel_id in self:
            return await super().start_kernel(kernel_id=kernel_id, **kwargs)
        preheat = (kwargs.get("env") or {}).get(PREHEAT_VARIABLE) == "True"
        if not self.has_room():
            if preheat:
                self._refuse_pool_refill()
            self._refuse_request()
        kernel_id = kernel_id or str(uuid.uuid4())
        self._starting_ids.add(kernel_id)
        try:
            kernel_id = await super().start_kernel(kernel_id=kernel_id, **kwargs)
        finally:
            self._starting_ids.discard(kernel_id)
        if not preheat:  # handed to a request now; a pooled kernel's clock starts when the culler sees it handed out
            self._unconnected_since[kernel_id] = time.monotonic()
        return kernel_id

    def _busy_error(self) -> web.HTTPError:
        message = f"{BUSY_TITLE}: all {self.max_kernels} kernels are in use, try again in a minute"
        return web.HTTPError(503, message, reason=BUSY_REASON)

    def _refuse_request(self) -> NoReturn:
        """End the current request with 503: the busy page for a page request, JSON for an API request."""
        self.log.warning("Refusing a new kernel: %d of %d are alive", self.live_kernel_count, self.max_kernels)
        handler = CallContext.get(CallContext.JUPYTER_HANDLER)
        if handler is None or isinstance(handler, APIHandler):
            raise self._busy_error()
        handler.clear()
        handler.set_status(503)
        handler.set_header("Content-Type", "text/html; charset=UTF-8")
        handler.set_header("Cache-Control", "no-store")
        handler.set_header("Retry-After", str(self.retry_after))
        raise web.Finish(busy_page(self.retry_after))

    def _refuse_pool_refill(self) -> NoReturn:
        """Take the refill task that is asking (Voila's pool entry) out of the pool, so no visitor waits on it.

        A visitor who took it from the pool while it was still waiting to start (Voila starts refills a second
        after a hand-out) gets the 503 raised here, as Voila's own error page headed "503: " + BUSY_REASON."""
        task = asyncio.current_task()
        for pool in getattr(self, "_pools", {}).values():
            if task is not None and task in pool:
                pool.remove(task)
                task.add_done_callback(lambda done: done.cancelled() or done.exception())  # nobody awaits it
        self.log.info(
            "Not refilling the kernel pool: %d of %d kernels are alive", self.live_kernel_count, self.max_kernels
        )
        raise self._busy_error()

    def _refill_pools(self) -> None:
        """Top up Voila's preheated pool (when this class serves one) while there is room for a kernel."""
        fill = getattr(self, "fill_if_needed", None)
        if self._closing or fill is None or not self.has_room():
            return
        for notebook_name in list(getattr(self, "_pools", {})):
            fill(delay=0, notebook_name=notebook_name)

    async def shutdown_kernel(self, kernel_id: str, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
        """Shut a kernel down, then top up the pool with the room it leaves."""
        await super().shutdown_kernel(kernel_id, now=now, restart=restart)
        self._unconnected_since.pop(kernel_id, None)
        if not restart:
            self._refill_pools()

    async def shutdown_all(self, now: bool = False) -> None:  # type: ignore[override]
        """Shut every kernel down at server exit, without refilling the pool."""
        self._closing = True
        await super().shutdown_all(now=now)

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._unconnected_since.pop(kernel_id, None)

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)
        if kernel_id in self and self._kernel_connections.get(kernel_id, 0) <= 0:
            self._unconnected_since[kernel_id] = time.monotonic()

    async def cull_kernels(self) -> None:
        """One culling pass, then a pool top-up (room may have come from a kernel that died)."""
        for kernel_id in set(self._unconnected_since) - set(self._kernels):
            del self._unconnected_since[kernel_id]
        await super().cull_kernels()
        self._refill_pools()

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        """Shut down a kernel that has had neither a browser nor any activity for `unconnected_timeout` s (its
        page's notebook run counts as activity); connected ones go by the idle rule.

        Voila's pool manager calls this only for kernels that have left its pool."""
        if self.unconnected_timeout <= 0 or self._kernel_connections.get(kernel_id, 0) > 0:
            await super().cull_kernel_if_idle(kernel_id)
            return
        now = time.monotonic()
        unconnected_s = now - self._unconnected_since.setdefault(kernel_id, now)
        last_activity = getattr(self._kernels[kernel_id], "last_activity", None)
        if last_activity is not None:  # still running the notebook for its page (slow under load): not yet
            unconnected_s = min(unconnected_s, (utcnow() - last_activity).total_seconds())
        if unconnected_s > self.unconnected_timeout:
            self.log.warning("Culling kernel %s: no browser connected for %.0f s", kernel_id, unconnected_s)
            await self.shutdown_kernel(kernel_id)
