"""Dataset downloads against archives served by a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import pickle
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.datasets import cli as data_cli
from app.datasets import download
from app.datasets.archives import iter_archive
from app.datasets.download import DATASETS, download_dataset, read_idx
from app.datasets.fetch import fetch
from app.errors import DatasetError, InputError

# ---------------------------------------------------------------------------------------------
# A tiny file server with Range and If-Range support and a switch to drop connections half-way


class FileServer:
    """Serves `files[name]` at `/name` with an ETag (its md5); `cut[name] = n` cuts the next n responses half-way."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.if_range: list[str | None] = []  # the If-Range header of each request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                server.if_range.append(self.headers.get("If-Range"))
                if name not in server.files:
                    self.send_error(404)
                    return
                body, start, status = server.files[name], 0, 200
                etag = f'"{_md5(body)}"'
                unchanged = self.headers.get("If-Range") in (None, etag)
                if self.headers.get("Range") and unchanged:
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                part = body[start:]
                self.send_response(status)
                self.send_header("ETag", etag)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Connection", "close")
                self.end_headers()
                if server.cut.get(name, 0) > 0:
                    server.cut[name] -= 1
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    file_server = FileServer()
    yield file_server
    file_server.close()


# ---------------------------------------------------------------------------------------------
# Archive builders


def _wav_bytes(value: int = 0) -> bytes:
    buffer = io.BytesIO()
    from scipy.io import wavfile

    wavfile.write(buffer, 16000, np.full(1600, value, dtype=np.int16))
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _speech_commands_archive() -> bytes:
    members = {"./README.md": b"Speech Commands", "./LICENSE": b"CC BY 4.0"}
    for word in ("yes", "no"):
        for speaker in ("aaaa1111", "bbbb2222", "cccc3333"):
            members[f"./{word}/{speaker}_nohash_0.wav"] = _wav_bytes(len(members))
    members["./_background_noise_/white_noise.wav"] = _wav_bytes(7)
    members["./validation_list.txt"] = b"yes/bbbb2222_nohash_0.wav\nno/bbbb2222_nohash_0.wav\n"
    members["./testing_list.txt"] = b"yes/cccc3333_nohash_0.wav\nno/cccc3333_nohash_0.wav\n"
    return _tar_gz(members)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# fetch: resume, retries, checksums, errors


def test_fetch_resumes_after_a_dropped_connection(server, tmp_path):
    data = bytes(range(256)) * 4000
    server.files["big.bin"] = data
    server.cut["big.bin"] = 1
    path = fetch(f"{server.url}/big.bin", tmp_path / "big.bin", md5=_md5(data), progress=False)
    assert path.read_bytes() == data
    assert server.requests[0] == ("big.bin", None)
    assert server.requests[1] == ("big.bin", f"bytes={len(data) // 2}-")
    assert server.if_range == [None, f'"{_md5(data)}"']
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.bin"]


def test_a_file_changed_on_the_server_during_a_resume_is_fetched_whole(server, tmp_path):
    old, new = b"old version " * 5000, b"new version " * 6000
    server.files["data.bin"] = old
    server.cut["data.bin"] = 1
    with pytest.raises(DatasetError, match="run the same command again to resume"):
        fetch(f"{server.url}/data.bin", tmp_path / "data.bin", retries=0, progress=False)
    server.files["data.bin"] = new  # the publisher replaced the file before the resume
    fetch(f"{server.url}/data.bin", tmp_path / "data.bin", progress=False)
    assert (tmp_path / "data.bin").read_bytes() == new  # not the old half with the new file's tail
    assert server.requests[1] == ("data.bin", f"bytes={len(old) // 2}-")
    assert server.if_range[1] == f'"{_md5(old)}"'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data.bin"]  # no .part or .validator left


def test_fetch_continues_a_part_file_from_an_earlier_run(server, tmp_path):
    data = b"0123456789" * 1000
    server.files["file.bin"] = data
    (tmp_path / "file.bin.part").write_bytes(data[:3000])
    fetch(f"{server.url}/file.bin", tmp_path / "file.bin", sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert (tmp_path / "file.bin").read_bytes() == data
    assert server.requests == [("file.bin", "bytes=3000-")]


def test_fetch_with_a_complete_part_file(server, tmp_path):
    data = b"complete"
    server.files["done.bin"] = data
    (tmp_path / "done.bin.part").write_bytes(data)
    fetch(f"{server.url}/done.bin", tmp_path / "done.bin", md5=_md5(data), progress=False)
    assert (tmp_path / "done.bin").read_bytes() == data


def test_fetch_gives_up_with_a_resume_hint(server, tmp_path):
    server.files["flaky.bin"] = b"x" * 10000
    server.cut["flaky.bin"] = 10
    with pytest.raises(DatasetError, match="run the same command again to resume"):
        fetch(f"{server.url}/flaky.bin", tmp_path / "flaky.bin", retries=1, progress=False)
    assert (tmp_path / "flaky.bin.part").stat().st_size > 0


def test_an_unreachable_server_suggests_being_offline_and_the_ways_around(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DatasetError, match=r"offline\?.*put it at .*a\.zip.*--base-url or \$ONEPIPE_DOWNLOAD_BASE_URL"):
        fetch(f"http://127.0.0.1:{port}/a.zip", tmp_path / "a.zip", retries=0, progress=False)
    assert list(tmp_path.iterdir()) == []  # no empty .part left behind


def test_checksum_mismatch_is_a_clear_error_and_deletes_the_file(server, tmp_path):
    server.files["data.bin"] = b"not what the publisher made"
    with pytest.raises(DatasetError, match=r"checksum mismatch .*expected md5 0{32}, received [0-9a-f]{32}"):
        fetch(f"{server.url}/data.bin", tmp_path / "data.bin", md5="0" * 32, progress=False)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_missing_file_is_a_clear_error(server, tmp_path):
    with pytest.raises(DatasetError, match="HTTP 404"):
        fetch(f"{server.url}/nothing.bin", tmp_path / "nothing.bin", progress=False)


def test_verified_file_is_not_fetched_again(server, tmp_path):
    data = b"cached"
    (tmp_path / "cached.bin").write_bytes(data)
    fetch(f"{server.url}/cached.bin", tmp_path / "cached.bin", md5=_md5(data), progress=False)
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# Safe archive reading


@pytest.mark.parametrize(
    "members",
    [
        {"./yes/ok_nohash_0.wav": b"ok", "../escape.wav": b"evil"},
        {"yes/../../escape.wav": b"evil"},
        {"/tmp/absolute.wav": b"evil"},
    ],
)
def test_tar_members_escaping_the_target_are_rejected(tmp_path, members):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_gz(members))
    with pytest.raises(DatasetError, match="outside the target folder"):
        list(iter_archive(archive))


def test_links_escaping_the_target_are_rejected(tmp_path):
    archive = tmp_path / "link.tar.gz"
    archive.write_bytes(_tar_gz({"yes/a.wav": b"a"}, links={"yes/passwd.wav": "../../etc/passwd"}))
    with pytest.raises(DatasetError, match="leaves the target folder"):
        list(iter_archive(archive))
    inside = tmp_path / "inside.tar.gz"
    inside.write_bytes(_tar_gz({"yes/a.wav": b"a"}, links={"yes/b.wav": "a.wav"}))
    assert [str(path) for path, _ in iter_archive(inside)] == ["yes/a.wav"]  # links are skipped


def test_zip_member_escaping_the_target_is_rejected(tmp_path):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({"recordings/0_a_0.wav": b"ok", "../../escape.wav": b"evil"}))
    with pytest.raises(DatasetError, match="outside the target folder"):
        list(iter_archive(archive))


def test_unsafe_archive_leaves_nothing_behind(server, tmp_path):
    server.files["speech_commands_test_set_v0.02.tar.gz"] = _tar_gz(
        {"./yes/a_nohash_0.wav": _wav_bytes(), "./yes/../../escape.wav": b"evil"}
    )
    with pytest.raises(DatasetError, match="outside the target folder"):
        download_dataset("speech-commands-test", tmp_path / "data", base_url=server.url, progress=False)
    assert not (tmp_path / "escape.wav").exists()
    assert [path.name for path in (tmp_path / "data").iterdir()] == [".downloads"]  # archive kept to inspect


def test_a_truncated_archive_is_deleted_so_the_next_run_fetches_it_again(server, tmp_path):
    noise = np.random.default_rng(0).integers(-3000, 3000, 16000).astype(np.int16)
    whole = _tar_gz({f"./yes/{n:08x}_nohash_0.wav": _wav_bytes() + noise.tobytes() for n in range(8)})
    server.files["speech_commands_test_set_v0.02.tar.gz"] = whole[: len(whole) // 2]  # the connection dropped
    with pytest.raises(DatasetError, match=r"damaged or incomplete .* run the command again"):
        download_dataset("speech-commands-test", tmp_path / "data", base_url=server.url, progress=False)
    assert not list((tmp_path / "data").rglob("*.tar.gz")) and not (tmp_path / "data" / "speech-commands-test").exists()
    server.files["speech_commands_test_set_v0.02.tar.gz"] = whole
    counts = download_dataset("speech-commands-test", tmp_path / "data", base_url=server.url, progress=False)
    assert counts == {"yes": 8}


def test_not_an_archive(tmp_path):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(b"this is not an archive")
    with pytest.raises(DatasetError, match="not a readable tar or zip"):
        list(iter_archive(path))


# ---------------------------------------------------------------------------------------------
# Datasets end to end


def test_speech_commands_layout_lists_and_limit(server, tmp_path):
    server.files["speech_commands_v0.02.tar.gz"] = _speech_commands_archive()
    counts = download_dataset("speech-commands", tmp_path, base_url=server.url, progress=False)
    root = tmp_path / "speech-commands"
    assert counts == {"_background_noise_": 1, "no": 3, "yes": 3}
    assert (root / "yes" / "aaaa1111_nohash_0.wav").read_bytes()[:4] == b"RIFF"
    assert (root / "validation_list.txt").read_text().split() == [
        "yes/bbbb2222_nohash_0.wav",
        "no/bbbb2222_nohash_0.wav",
    ]
    assert (root / "LICENSE").exists()
    assert not (tmp_path / ".downloads").exists()  # archive deleted after conversion

    limited = download_dataset(
        "speech-commands", tmp_path / "few", limit_per_class=1, base_url=server.url, progress=False
    )
    assert limited == {"_background_noise_": 1, "no": 1, "yes": 1}
    assert not (tmp_path / "few" / "speech-commands" / "testing_list.txt").exists()  # none of them kept


def test_existing_folder_is_refused_unless_replaced(server, tmp_path):
    server.files["speech_commands_test_set_v0.02.tar.gz"] = _speech_commands_archive()
    download_dataset("speech-commands-test", tmp_path, base_url=server.url, progress=False, keep_archives=True)
    with pytest.raises(DatasetError, match="already exists"):
        download_dataset("speech-commands-test", tmp_path, base_url=server.url, progress=False)
    download_dataset("speech-commands-test", tmp_path, base_url=server.url, replace=True, progress=False)
    assert len(server.requests) == 1  # the kept archive was reused


def test_replace_never_deletes_a_folder_the_download_did_not_write(server, tmp_path):
    server.files["speech_commands_test_set_v0.02.tar.gz"] = _speech_commands_archive()
    mine = tmp_path / "speech-commands-test" / "my_recordings"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match=r"not made by `data download speech-commands-test`.*nothing was deleted"):
        download_dataset("speech-commands-test", tmp_path, base_url=server.url, replace=True, progress=False)
    assert (mine / "notes.txt").read_text() == "mine"


def test_replace_never_deletes_files_added_to_a_downloaded_folder(server, tmp_path):
    server.files["speech_commands_test_set_v0.02.tar.gz"] = _speech_commands_archive()
    download_dataset("speech-commands-test", tmp_path, base_url=server.url, progress=False, keep_archives=True)
    root = tmp_path / "speech-commands-test"
    assert (root / ".onepipe-download").read_text() == "speech-commands-test\n"  # earlier versions wrote the same
    for added in (root / "yes" / "notes.txt", root / "my_list.txt"):
        added.write_text("mine")
        with pytest.raises(DatasetError, match=r"more than class folders of \.wav files.*nothing was deleted"):
            download_dataset("speech-commands-test", tmp_path, base_url=server.url, replace=True, progress=False)
        assert added.read_text() == "mine"
        added.unlink()
    (root / ".onepipe-download").write_text("fsdd\n")  # made by the download of another dataset
    with pytest.raises(DatasetError, match="not made by `data download speech-commands-test`"):
        download_dataset("speech-commands-test", tmp_path, base_url=server.url, replace=True, progress=False)


def test_a_linked_dataset_folder_is_replaced_where_it_points(server, tmp_path):
    server.files["speech_commands_test_set_v0.02.tar.gz"] = _speech_commands_archive()
    elsewhere = tmp_path / "big-disk" / "speech-commands-test"
    elsewhere.mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "speech-commands-test").symlink_to(elsewhere, target_is_directory=True)
    download_dataset("speech-commands-test", tmp_path / "data", base_url=server.url, keep_archives=True, progress=False)
    (elsewhere / "old").mkdir()
    counts = download_dataset(
        "speech-commands-test", tmp_path / "data", base_url=server.url, replace=True, progress=False
    )
    assert (tmp_path / "data" / "speech-commands-test").is_symlink()
    assert sorted(p.name for p in elsewhere.iterdir() if p.is_dir()) == sorted(counts)
    assert not (elsewhere / "old").exists()
    (tmp_path / "data" / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file; expected a new or empty folder"):
        download_dataset(
            "speech-commands-test", tmp_path / "data", base_url=server.url, folder_name="file", progress=False
        )


def test_base_url_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("ONEPIPE_DOWNLOAD_BASE_URL", server.url + "/")
    server.files["v1.0.10.zip"] = _zip(
        {
            "free-spoken-digit-dataset-1.0.10/README.md": b"FSDD",
            "free-spoken-digit-dataset-1.0.10/recordings/0_jackson_0.wav": _wav_bytes(1),
            "free-spoken-digit-dataset-1.0.10/recordings/0_theo_1.wav": _wav_bytes(2),
            "free-spoken-digit-dataset-1.0.10/recordings/7_lucas_3.wav": _wav_bytes(3),
            "free-spoken-digit-dataset-1.0.10/utils/fsdd.py": b"print()",
        }
    )
    counts = download_dataset("fsdd", tmp_path, progress=False)
    assert counts == {"0": 2, "7": 1}
    assert sorted(path.name for path in (tmp_path / "fsdd" / "0").iterdir()) == ["0_jackson_0.wav", "0_theo_1.wav"]
    assert (tmp_path / "fsdd" / "README.md").exists()


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_to_png_with_publisher_style_checksums(server, tmp_path):
    random = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte.gz": _idx(random.integers(0, 256, (20, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx(np.arange(20) % 10),
        "t10k-images-idx3-ubyte.gz": _idx(random.integers(0, 256, (10, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx(np.arange(10)),
    }
    server.files.update(files)
    source = dataclasses.replace(
        DATASETS["mnist"],
        files=tuple(dataclasses.replace(remote, md5=_md5(files[remote.name])) for remote in DATASETS["mnist"].files),
    )
    counts = download_dataset(source, tmp_path, base_url=server.url, limit_per_class=2, progress=False)
    assert counts == {str(digit): 2 for digit in range(10)}
    assert sorted(path.name for path in (tmp_path / "mnist" / "3").iterdir()) == ["test-00003.png", "train-00003.png"]
    with Image.open(tmp_path / "mnist" / "3" / "test-00003.png") as image:
        assert image.mode == "L" and image.size == (28, 28)
    assert len((tmp_path / "mnist" / "testing_list.txt").read_text().split()) == 10
    samples = dataclasses.replace(source, convert=source.convert_samples)  # what `--samples` writes
    download_dataset(samples, tmp_path / "samples", base_url=server.url, limit_per_class=2, progress=False)
    assert sorted(path.name for path in (tmp_path / "samples" / "mnist" / "3").iterdir()) == [
        "train-00003.png",
        "train-00013.png",
    ]  # digits the shipped bundle, trained on MNIST's test set, never saw


def test_the_real_mnist_checksums_reject_other_files(server, tmp_path):
    server.files["train-images-idx3-ubyte.gz"] = _idx(np.zeros((1, 28, 28)))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_dataset("mnist", tmp_path, base_url=server.url, progress=False)


def test_read_idx_rejects_truncated_files(tmp_path):
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(_idx(np.arange(10))[:-5])
    with pytest.raises(DatasetError):
        read_idx(path)


def _cifar_batch(count: int, first_label: int) -> bytes:
    data = np.random.default_rng(first_label).integers(0, 256, (count, 3072), dtype=np.uint8)
    batch = {b"data": data, b"labels": [(first_label + index) % 10 for index in range(count)], b"batch_label": b"x"}
    return pickle.dumps(batch, protocol=2)


def _cifar_archive(**extra: bytes) -> bytes:
    members = {
        "cifar-10-batches-py/batches.meta": pickle.dumps(
            {b"label_names": [name.encode() for name in download.CIFAR10_CLASSES]}, protocol=2
        ),
        "cifar-10-batches-py/data_batch_1": _cifar_batch(20, 0),
        "cifar-10-batches-py/data_batch_2": _cifar_batch(20, 5),
        "cifar-10-batches-py/test_batch": _cifar_batch(10, 0),
        "cifar-10-batches-py/readme.html": b"<html>",
    }
    members.update({f"cifar-10-batches-py/{name}": data for name, data in extra.items()})
    return _tar_gz(members)


def _without_checksums(name: str) -> download.DatasetSource:
    source = DATASETS[name]
    return dataclasses.replace(source, files=tuple(dataclasses.replace(f, md5=None) for f in source.files))


def test_cifar10_batches_to_png(server, tmp_path):
    server.files["cifar-10-python.tar.gz"] = _cifar_archive()
    counts = download_dataset(_without_checksums("cifar10"), tmp_path, base_url=server.url, progress=False)
    assert set(counts) == set(download.CIFAR10_CLASSES) and sum(counts.values()) == 50
    with Image.open(tmp_path / "cifar10" / "airplane" / "test-00000.png") as image:
        assert image.mode == "RGB" and image.size == (32, 32)
        pixels = np.asarray(image)
    expected = np.random.default_rng(0).integers(0, 256, (10, 3072), dtype=np.uint8)[0].reshape(3, 32, 32)
    np.testing.assert_array_equal(pixels, expected.transpose(1, 2, 0))  # channel planes → (h, w, c)


def test_cifar10_refuses_pickles_that_run_code(server, tmp_path):
    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    server.files["cifar-10-python.tar.gz"] = _cifar_archive(data_batch_3=pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(DatasetError, match="refusing"):
        download_dataset(_without_checksums("cifar10"), tmp_path, base_url=server.url, progress=False)


def test_unknown_dataset_and_bad_limit(tmp_path):
    with pytest.raises(InputError, match="unknown dataset 'imagenet'"):
        download_dataset("imagenet", tmp_path)
    with pytest.raises(InputError, match="limit-per-class"):
        download_dataset("fsdd", tmp_path, limit_per_class=0)


def test_every_source_points_to_https():
    for source in DATASETS.values():
        assert source.base_url.startswith("https://")
        assert download.file_url(source, source.files[0]).startswith(source.base_url)


# ---------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onepipe")
    data_cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_download(server, tmp_path, capsys):
    server.files["speech_commands_test_set_v0.02.tar.gz"] = _speech_commands_archive()
    args = _parser().parse_args(
        ["data", "download", "speech-commands-test", "--dir", str(tmp_path), "--base-url", server.url]
    )
    assert args.func(args) == 0
    assert (tmp_path / "speech-commands-test" / "yes").is_dir()
    out = capsys.readouterr().out
    assert "wrote 7 files" in out and "CC BY 4.0" in out


def test_cli_download_samples_go_where_the_dashboard_looks(server, tmp_path, monkeypatch):
    samples_dir = tmp_path / "data" / "samples"
    monkeypatch.setattr(download, "DOWNLOADED_SAMPLES_DIR", samples_dir)
    monkeypatch.setattr(data_cli, "DOWNLOADED_SAMPLES_DIR", samples_dir)
    server.files["cifar-10-python.tar.gz"] = _cifar_archive()
    monkeypatch.setitem(DATASETS, "cifar10", _without_checksums("cifar10"))
    (samples_dir / "cifar10" / "cat").mkdir(parents=True)  # samples an earlier version wrote, without the marker
    (samples_dir / "cifar10" / "cat" / "old.png").write_bytes(b"old")
    args = _parser().parse_args(["data", "download", "cifar10", "--samples", "--base-url", server.url])
    assert args.func(args) == 0
    assert not (samples_dir / "cifar10" / "cat" / "old.png").exists()
    for name in download.CIFAR10_CLASSES:
        files = sorted((samples_dir / "cifar10" / name).iterdir())
        # test images first (the shipped bundle trained on the training set); this small archive has one per class
        assert len(files) == 4 and [file.name.split("-")[0] for file in files].count("test") == 1
    assert sorted(path.name for path in samples_dir.iterdir()) == ["cifar10"]
    for options, message in ((["--dir", str(tmp_path)], "drop --dir"), (["--limit-per-class", "0"], "positive")):
        args = _parser().parse_args(["data", "download", "cifar10", "--samples", "--base-url", server.url, *options])
        with pytest.raises(InputError, match=message):
            args.func(args)


def test_cli_help_mentions_the_cifar10_samples(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["data", "download", "--help"])
    assert "download cifar10 --samples" in capsys.readouterr().out


def test_cli_reports_unknown_dataset():
    args = _parser().parse_args(["data", "download", "nope"])
    with pytest.raises(InputError, match="expected one of"):
        args.func(args)


def test_dataset_folder_names(tmp_path):
    assert set(DATASETS) == {
        "speech-commands",
        "speech-commands-v1",
        "speech-commands-test",
        "fsdd",
        "mnist",
        "cifar10",
    }
    assert Path(download.DEFAULT_DIR).name == "data"
