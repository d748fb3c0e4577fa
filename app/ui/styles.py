"""The dashboard's CSS and the small browser script that enforces the upload size cap."""

from __future__ import annotations

from app.ui.common import MAX_UPLOAD_BYTES

CSS = """
<style>
.onepipe-dashboard { max-width: 1100px; margin: 0 auto; font-size: 14px; }
.onepipe-header h1 { font-size: 26px; margin: 8px 0 2px 0; }
.onepipe-header p { margin: 0 0 10px 0; color: #555; }
.onepipe-columns { display: flex; flex-flow: row wrap; gap: 16px; align-items: flex-start; }
.onepipe-controls { flex: 1 1 440px; max-width: 520px; }
.onepipe-result { flex: 1 1 380px; border: 1px solid #e3e3e3; border-radius: 8px; padding: 12px 16px;
  background: #fafafa; min-height: 120px; }
.onepipe-section { border-top: 1px solid #eee; padding: 8px 0 10px 0; }
.onepipe-section-title { font-weight: 600; font-size: 15px; margin-bottom: 2px; }
.onepipe-hint { color: #666; font-size: 12.5px; line-height: 1.4; margin-bottom: 4px; }
.onepipe-hint code, .onepipe-message code { font-size: 12px; background: #f0f0f0; padding: 0 3px; }
.onepipe-classes { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; color: #555; margin: 4px 0; }
.onepipe-chip { background: #eef3fb; color: #234; border-radius: 10px; padding: 1px 8px; font-size: 12.5px; }
.onepipe-message { display: flex; gap: 8px; align-items: flex-start; padding: 8px 10px; border-radius: 6px;
  line-height: 1.45; background: #f2f2f2; color: #444; }
.onepipe-result .widget-html-content { line-height: 1.4; }
.onepipe-message.onepipe-error { background: #fff4e5; color: #663c00; border: 1px solid #ffd599; }
.onepipe-top { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.onepipe-top-label { font-size: 40px; font-weight: 700; color: #1a4d8f; line-height: 1.15; }
.onepipe-top-score { color: #555; font-size: 15px; }
.onepipe-bars { margin: 8px 0; }
.onepipe-bar-row { display: flex; align-items: center; gap: 8px; margin: 3px 0; }
.onepipe-bar-label { width: 90px; text-align: right; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.onepipe-bar { flex: 1; height: 14px; background: #e8e8e8; border-radius: 7px; overflow: hidden; }
.onepipe-bar-fill { display: block; height: 100%; background: #3b7dd8; border-radius: 7px; }
.onepipe-bar-score { width: 52px; text-align: right; color: #444; font-variant-numeric: tabular-nums; }
.onepipe-figure { margin: 10px 0 4px 0; }
.onepipe-picture { height: 160px; max-width: 100%; min-width: 160px; border: 1px solid #ddd; background: #000; }
.onepipe-figure figcaption { color: #666; font-size: 12.5px; line-height: 1.4; margin-top: 4px; }
.onepipe-time { color: #555; font-size: 13px; }
.onepipe-gallery { display: flex; flex-wrap: wrap; gap: 6px; }
.onepipe-thumb.jupyter-button { width: 72px; height: 84px; padding: 0; background-color: #222;
  background-repeat: no-repeat; background-position: center 4px; background-size: 64px 64px;
  image-rendering: pixelated; display: flex; align-items: flex-end; justify-content: center;
  color: #fff; font-size: 11.5px; border: 2px solid transparent; border-radius: 6px; }
.onepipe-thumb.onepipe-selected { border-color: #3b7dd8; box-shadow: 0 0 0 2px #9cc1f0; }
.onepipe-preview img { image-rendering: pixelated; }
.onepipe-recorder .widget-play { display: none; }
.onepipe-recorder audio { height: 36px; width: 300px; }
.onepipe-camera video { width: 320px; max-width: 100%; border-radius: 6px; background: #000; }
.onepipe-status { color: #555; font-size: 13px; }
</style>
"""

# FileUpload reads the whole file in the browser and sends it in one websocket message; a message over
# Tornado's limit would drop the kernel connection. Files over the cap are therefore read as zero bytes:
# the kernel still receives their name and true size and shows "uploads are limited to … MB".
UPLOAD_GUARD_JS = """
(function () {
  if (window.__onepipeUploadGuard) { return; }
  window.__onepipeUploadGuard = true;
  var cap = CAP_BYTES;
  var readAsArrayBuffer = FileReader.prototype.readAsArrayBuffer;
  FileReader.prototype.readAsArrayBuffer = function (blob) {
    if (blob && blob.size > cap) { return readAsArrayBuffer.call(this, new Blob([])); }
    return readAsArrayBuffer.call(this, blob);
  };
})();
""".replace("CAP_BYTES", str(MAX_UPLOAD_BYTES))
