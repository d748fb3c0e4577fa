"""The browser's microphone and webcam for the Train tab: takes of a set length in a row, or one until Stop, and
snapshots one at a time or in a burst.

ipywebrtc does the recording in the browser: `AudioRecorder.recording` True starts a take, False stops it, and
the WebM/Opus file then arrives in `recorder.audio.value`; `ImageRecorder` sends one PNG frame of the camera per
request. A missing or blocked device never answers, so every request has a deadline after which `on_end` gets a
message instead (as in the Audio and Images tabs).

Example:
    >>> microphone = Microphone()
    >>> microphone.record(takes=3, on_take=lambda data: None, on_end=lambda message: None)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from ipywebrtc import AudioRecorder, CameraStream, ImageRecorder

from app.ui.common import call_later

TAKE_SECONDS = 1.25  # one timed take: a one-second window and the moment the browser needs to start
MIN_TAKE_SECONDS = 1.0  # a take stopped sooner goes on to this
ANSWER_TIMEOUT_S = 8.0  # no recording or snapshot this long after asking: the device is missing or blocked
BURST_INTERVAL_S = 0.25  # between the snapshots of a burst
CAMERA_CONSTRAINTS = {"audio": False, "video": {"width": 320, "height": 240}}
NO_MICROPHONE_MESSAGE = (
    "No recording came from the browser. It may have no microphone, or may be blocking it: allow the microphone "
    "(the icon in the address bar) and record again; or upload clips."
)
NO_CAMERA_MESSAGE = (
    "No picture came from the camera. This browser may have no camera, or may be blocking it: allow the camera "
    "(the icon in the address bar), then try again; or upload photos."
)


class _Requests:
    """A run of requests to a device: how many remain, the callbacks, and a deadline for the next answer."""

    def __init__(self, count: int | None, on_item: Callable[[bytes], object], on_end: Callable[[str | None], None]):
        self.remaining = count  # None: until stopped
        self.on_item, self.on_end = on_item, on_end
        self.stopping = False
        self.deadline: threading.Timer | None = None

    def cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None


class Microphone:
    """A microphone stream and its recorder (the recorder is a hidden widget: put `widget` in the page)."""

    def __init__(self) -> None:
        self.stream = CameraStream(constraints={"audio": True, "video": False})
        self.recorder = AudioRecorder(stream=self.stream, format="webm", layout=widgets.Layout(display="none"))
        self.recorder.add_class("onepipe-recorder")
        self.recorder.audio.observe(self._arrived, "value")
        self.widget = self.recorder
        self._lock = threading.RLock()
        self._requests: _Requests | None = None
        self._clearing = False
        self._take = 0  # takes started: a timer acts only on the take it was set for
        self._take_started = 0.0

    @property
    def busy(self) -> bool:
        return self._requests is not None

    def record(
        self, takes: int | None, on_take: Callable[[bytes], object], on_end: Callable[[str | None], None]
    ) -> None:
        """Record `takes` takes of TAKE_SECONDS in a row (None: one take, until stop()). Each recording goes to
        `on_take` as it arrives; `on_end` gets None at the end, or a message when the microphone never answered."""
        with self._lock:
            if self._requests is not None:
                return
            self._requests = _Requests(takes, on_take, on_end)
            self._start_take()

    def stop(self) -> None:
        """End the current take now (at least MIN_TAKE_SECONDS after it began) and record no more."""
        import time

        with self._lock:
            requests = self._requests
            if requests is None or requests.stopping:
                return
            requests.stopping = True
            take = self._take
            remaining = MIN_TAKE_SECONDS - (time.monotonic() - self._take_started)
        if remaining > 0:
            call_later(remaining, lambda: self._stop_take(take))
        else:
            self._stop_take(take)

    def _start_take(self) -> None:
        import time

        requests = self._requests
        assert requests is not None
        self._take += 1
        self._clearing = True
        try:
            self.recorder.audio.value = b""  # the next recording counts as new even if its bytes are the same
        finally:
            self._clearing = False
        self._take_started = time.monotonic()
        self.recorder.recording = True
        if requests.remaining is not None:
            take = self._take
            call_later(TAKE_SECONDS, lambda: self._stop_take(take))

    def _stop_take(self, take: int) -> None:
        with self._lock:
            requests = self._requests
            if requests is None or take != self._take or requests.deadline is not None:  # gone, or already stopped
                return
            requests.deadline = call_later(ANSWER_TIMEOUT_S, lambda: self._give_up(requests))
            self.recorder.recording = False

    def _give_up(self, requests: _Requests) -> None:
        with self._lock:
            if self._requests is not requests:
                return
            self._requests = None
            self.recorder.recording = False
        requests.on_end(NO_MICROPHONE_MESSAGE)

    def _arrived(self, change: dict[str, Any]) -> None:
        if self._clearing:
            return
        with self._lock:
            requests = self._requests
            if requests is None:
                return
            requests.cancel_deadline()
            if requests.remaining is not None:
                requests.remaining -= 1
            finished = requests.stopping or not requests.remaining
            if finished:
                self._requests = None
        requests.on_item(bytes(change["new"] or b""))
        if finished:
            requests.on_end(None)
        else:
            with self._lock:
                if self._requests is requests and not requests.stopping:
                    self._start_take()
                elif self._requests is requests:  # Stop was pressed while the take was on its way
                    self._requests = None
                    requests.on_end(None)


class Camera:
    """A webcam stream shown in `box` while on, and snapshots of it."""

    def __init__(self) -> None:
        self.box = widgets.Box()
        self.stream: CameraStream | None = None
        self.recorder: ImageRecorder | None = None
        self._lock = threading.RLock()
        self._requests: _Requests | None = None
        self._clearing = False

    @property
    def on(self) -> bool:
        return self.stream is not None

    @property
    def busy(self) -> bool:
        return self._requests is not None

    def start(self) -> None:
        """Ask the browser for the camera and show it."""
        if self.stream is not None:
            return
        self.stream = CameraStream(constraints=CAMERA_CONSTRAINTS)
        self.stream.add_class("onepipe-camera")
        self.recorder = ImageRecorder(stream=self.stream, format="png")
        self.recorder.image.observe(self._arrived, "value")
        self.box.children = [self.stream]

    def stop(self) -> None:
        """Stop the camera (closing the stream's widget stops it in the browser)."""
        with self._lock:
            requests, self._requests = self._requests, None
        if requests is not None:
            requests.cancel_deadline()
            requests.on_end(None)
        self.box.children = []
        for widget in (self.recorder, self.stream):
            if widget is not None:
                widget.close()
        self.stream = self.recorder = None

    def snapshots(
        self, count: int, on_picture: Callable[[bytes], object], on_end: Callable[[str | None], None]
    ) -> None:
        """Take `count` snapshots BURST_INTERVAL_S apart; each PNG goes to `on_picture` as it arrives, and `on_end`
        gets None at the end, or a message when the camera never answered."""
        with self._lock:
            if self._requests is not None or self.recorder is None:
                return
            self._requests = _Requests(count, on_picture, on_end)
            self._request_one()

    def _request_one(self) -> None:
        requests, recorder = self._requests, self.recorder
        if requests is None or recorder is None:
            return
        self._clearing = True
        try:
            recorder.image.value = b""  # a still scene sends the same bytes again
        finally:
            self._clearing = False
        requests.deadline = call_later(ANSWER_TIMEOUT_S, lambda: self._give_up(requests))
        recorder.recording = False
        recorder.recording = True

    def _give_up(self, requests: _Requests) -> None:
        with self._lock:
            if self._requests is not requests:
                return
            self._requests = None
        requests.on_end(NO_CAMERA_MESSAGE)

    def _arrived(self, change: dict[str, Any]) -> None:
        if self._clearing:
            return
        with self._lock:
            requests = self._requests
            if requests is None:
                return
            requests.cancel_deadline()
            requests.remaining = (requests.remaining or 1) - 1
            finished = requests.remaining <= 0
            if finished:
                self._requests = None
        requests.on_item(bytes(change["new"] or b""))
        if finished:
            requests.on_end(None)
        else:
            call_later(BURST_INTERVAL_S, self._next)

    def _next(self) -> None:
        with self._lock:
            self._request_one()
