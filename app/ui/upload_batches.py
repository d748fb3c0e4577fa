"""Several files in one upload: what the browser may send at once, and the script that keeps it to that.

A FileUpload that takes several files sends them all in one websocket message, and a message over the server's
limit (about 21 MB, `websocket_max_message_size` in voila.json) would drop the page's connection. The browser
already sends a single file over MAX_UPLOAD_BYTES as empty (app.ui.styles.UPLOAD_GUARD_JS); this script does the
same for the files of one choice beyond MAX_UPLOAD_BYTES in all, so the kernel can say which ones to send again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from app.errors import InputError
from app.ui.common import MAX_UPLOAD_BYTES, read_upload

# Every FileReader of one choice of files starts in the same task (the FileUpload widget reads them all at once),
# so a running total reset by a zero-delay timer counts exactly one choice.
BATCH_GUARD_JS = """
(function () {
  if (window.__onepipeBatchGuard) { return; }
  window.__onepipeBatchGuard = true;
  var budget = BUDGET_BYTES, used = 0, resetting = false;
  var readAsArrayBuffer = FileReader.prototype.readAsArrayBuffer;
  FileReader.prototype.readAsArrayBuffer = function (blob) {
    var size = blob ? blob.size : 0;
    if (!resetting) { resetting = true; setTimeout(function () { used = 0; resetting = false; }, 0); }
    if (size > 0 && used + size > budget) { return readAsArrayBuffer.call(this, new Blob([])); }
    used += size;
    return readAsArrayBuffer.call(this, blob);
  };
})();
""".replace("BUDGET_BYTES", str(MAX_UPLOAD_BYTES))


def read_uploads(value: Sequence[dict[str, Any]]) -> Iterator[tuple[str, bytes | None, str]]:
    """(name, bytes, "") for each file of a FileUpload value that arrived whole, (name, None, message) for the
    others: over the size cap, cut short, or left out because the files chosen together were too large."""
    total = sum(int(item.get("size") or 0) for item in value)
    for item in value:
        name = str(item.get("name") or "upload")
        try:
            name, data = read_upload((item,))
        except InputError as error:
            size, content = int(item.get("size") or 0), item.get("content")
            if total > MAX_UPLOAD_BYTES and size <= MAX_UPLOAD_BYTES and not (content is not None and len(content)):
                limit = MAX_UPLOAD_BYTES // 2**20
                yield (
                    name,
                    None,
                    (
                        f"'{name}' was not sent: the files chosen together take {total / 2**20:.0f} MB, and one upload "
                        f"takes up to {limit} MB. Choose fewer at a time (or put them in a .zip of class folders)"
                    ),
                )
            else:
                yield name, None, str(error)
            continue
        yield name, data, ""
