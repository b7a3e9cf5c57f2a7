"""The online path, tested offline: downloads from a local HTTP server on 127.0.0.1, datasets the tests make
(a tiny CIFAR-format archive, image folders, a Pets layout), and timm weights saved to a local file.

Nothing here contacts a non-loopback address: proxies are switched off, the Hugging Face hub is set offline,
and "no network" is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from transferlab import _catalogue, _download, _images
from transferlab import datasets as ds
from transferlab.world import ImageTask, target_task

# ----------------------------------------------------------------------------------------------------------
# Fixtures: a private kit home, no proxies, an offline hub, a local HTTP server.


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    ds.clear_caches()
    yield tmp_path / "home"
    ds.clear_caches()


class _Server:
    """Serves ``files`` (name -> bytes) with HTTP Range support; ``truncate`` names are cut short once."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.ignore_range = False
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.log.append((name, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                body, start = server.files[name], 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if name in server.truncate:
                    server.truncate.discard(name)
                    payload = payload[: len(payload) // 3]
                    self.wfile.write(payload)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens: connection refused, like a machine without a network."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


BLOB = bytes(range(256)) * 4096  # 1 MiB


# ----------------------------------------------------------------------------------------------------------
# download(): verified, atomic, resumable, fails fast offline, never writes outside its folder.


def test_download_verifies_renames_and_skips_when_present(server):
    server.files["blob.bin"] = BLOB
    path = ds.download(f"{server.url}/blob.bin", "blob.bin", sha256=_sha(BLOB), progress=False)
    assert path == ds.data_dir() / "blob.bin"
    assert path.read_bytes() == BLOB
    assert not path.with_name("blob.bin.part").exists()
    n = len(server.log)
    assert ds.download(f"{server.url}/blob.bin", "blob.bin", sha256=_sha(BLOB), progress=False) == path
    assert len(server.log) == n  # verified on disk: no second request


def test_truncated_download_keeps_part_and_resumes_with_range(server):
    server.files["blob.bin"] = BLOB
    server.truncate.add("blob.bin")
    url = f"{server.url}/blob.bin"
    with pytest.raises(ds.DownloadError, match="resume") as info:
        ds.download(url, "blob.bin", md5=_md5(BLOB), progress=False)
    assert url in str(info.value)
    part = ds.data_dir() / "blob.bin.part"
    assert 0 < part.stat().st_size < len(BLOB)
    assert not (ds.data_dir() / "blob.bin").exists()  # nothing half-written under the real name
    have = part.stat().st_size
    path = ds.download(url, "blob.bin", md5=_md5(BLOB), progress=False)
    assert server.log[-1] == ("blob.bin", f"bytes={have}-")
    assert path.read_bytes() == BLOB and not part.exists()


def test_complete_part_left_by_a_crash_is_verified_and_renamed(server):
    server.files["blob.bin"] = BLOB
    part = ds.data_dir() / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BLOB)  # every byte arrived, but the process died before the rename
    path = ds.download(f"{server.url}/blob.bin", "blob.bin", sha256=_sha(BLOB), progress=False)
    assert server.log == [("blob.bin", f"bytes={len(BLOB)}-")]  # answered 416: nothing left to send
    assert path.read_bytes() == BLOB and not part.exists()


def test_server_that_ignores_range_restarts_from_zero(server):
    server.files["blob.bin"] = BLOB
    server.truncate.add("blob.bin")
    server.ignore_range = True
    url = f"{server.url}/blob.bin"
    with pytest.raises(ds.DownloadError):
        ds.download(url, "blob.bin", sha256=_sha(BLOB), progress=False)
    assert ds.download(url, "blob.bin", sha256=_sha(BLOB), progress=False).read_bytes() == BLOB


def test_checksum_mismatch_moves_the_file_aside_and_says_so(server):
    server.files["blob.bin"] = BLOB
    with pytest.raises(ds.ChecksumError, match="kept at") as info:
        ds.download(f"{server.url}/blob.bin", "blob.bin", sha256="0" * 64, progress=False)
    bad = list(ds.data_dir().glob("blob.bin.bad-*"))
    assert len(bad) == 1 and bad[0].read_bytes() == BLOB and str(bad[0]) in str(info.value)
    assert not (ds.data_dir() / "blob.bin").exists()
    assert not (ds.data_dir() / "blob.bin.part").exists()


def test_existing_corrupt_file_is_kept_aside_then_downloaded_afresh(server):
    server.files["blob.bin"] = BLOB
    target = ds.data_dir() / "blob.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"a user's half-finished manual download")
    with pytest.warns(UserWarning, match="moved it to"):
        path = ds.download(f"{server.url}/blob.bin", "blob.bin", sha256=_sha(BLOB), progress=False)
    assert path.read_bytes() == BLOB
    (bad,) = ds.data_dir().glob("blob.bin.bad-*")
    assert bad.read_bytes() == b"a user's half-finished manual download"


def test_manually_placed_good_file_is_used_without_network(closed_port_url):
    target = ds.data_dir() / "blob.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(BLOB)
    assert ds.download(f"{closed_port_url}/blob.bin", "blob.bin", sha256=_sha(BLOB), progress=False) == target


def test_offline_fails_fast_naming_url_and_manual_route(closed_port_url):
    url = f"{closed_port_url}/cifar.tar.gz"
    with pytest.raises(ds.DownloadError) as info:
        ds.download(url, "cifar.tar.gz", md5="0" * 32, timeout=5, progress=False)
    msg = str(info.value)
    assert url in msg and "Manual route" in msg and str(ds.data_dir() / "cifar.tar.gz") in msg
    assert not (ds.data_dir() / "cifar.tar.gz").exists()


def test_http_error_is_reported_with_the_url(server):
    with pytest.raises(ds.DownloadError, match="404"):
        ds.download(f"{server.url}/missing.bin", "missing.bin", md5="0" * 32, progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(url="ftp://127.0.0.1/x", filename="x", md5="0" * 32), "http"),
        (dict(url="http://127.0.0.1/x", filename="../x", md5="0" * 32), "bare file name"),
        (dict(url="http://127.0.0.1/x", filename="x"), "md5= or sha256="),
    ],
)
def test_download_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ds.download(**kwargs, progress=False)


def test_download_refuses_folders_outside_the_data_folder(tmp_path):
    with pytest.raises(ValueError, match="outside the kit's data folder"):
        ds.download("http://127.0.0.1:9/x", "x", md5="0" * 32, folder=tmp_path / "elsewhere", progress=False)
    assert not (tmp_path / "elsewhere").exists()


def test_a_symlink_at_the_lock_path_never_empties_its_target(server, tmp_path):
    server.files["blob.bin"] = BLOB
    precious = tmp_path / "precious.txt"
    precious.write_text("a file the lock must never truncate")
    ds.data_dir().mkdir(parents=True)
    (ds.data_dir() / ".blob.bin.lock").symlink_to(precious)
    with pytest.raises(OSError, match="symbolic link"):
        ds.download(f"{server.url}/blob.bin", "blob.bin", sha256=_sha(BLOB), progress=False)
    assert precious.read_text() == "a file the lock must never truncate"
    assert not (ds.data_dir() / "blob.bin").exists()


def test_concurrent_downloads_of_one_file_both_get_it_whole(server):
    from concurrent.futures import ThreadPoolExecutor

    server.files["blob.bin"] = BLOB
    get = lambda _: ds.download(f"{server.url}/blob.bin", "blob.bin", sha256=_sha(BLOB), progress=False)
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(get, range(4)))
    assert paths == [ds.data_dir() / "blob.bin"] * 4 and paths[0].read_bytes() == BLOB
    assert sorted(p.name for p in ds.data_dir().iterdir()) == [".blob.bin.lock", "blob.bin"]  # no part, no .bad


def test_offline_download_and_fetch_fail_fast_and_create_nothing(closed_port_url, monkeypatch, home):
    import time

    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd.CIFAR10, "url", f"{closed_port_url}/cifar-10-python.tar.gz")
    t0 = time.perf_counter()
    with pytest.raises(ds.DownloadError, match="Manual route"):
        ds.fetch("cifar10", timeout=5, progress=False)
    with pytest.raises(ds.DownloadError, match="Manual route"):
        ds.load_task("cifar10", 1, size=8, progress=False)
    with pytest.raises(ds.DownloadError, match="Manual route"):
        ds.download(f"{closed_port_url}/x.bin", "x.bin", md5="0" * 32, folder=ds.data_dir() / "sub", progress=False)
    assert time.perf_counter() - t0 < 5
    assert not home.exists(), sorted(str(p) for p in home.rglob("*"))  # no data/<name>/ folder, no .lock file


def test_archives_cannot_write_outside_their_folder(tmp_path):
    folder = ds.data_dir() / "evil"
    folder.mkdir(parents=True)
    zpath = folder / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        _download.extract(zpath, folder)
    tpath = folder / "evil.tar"
    with tarfile.open(tpath, "w") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="not a readable archive"):
        _download.extract(tpath, folder)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not list(folder.glob(".extract-*"))  # temporary folders cleaned up


# ----------------------------------------------------------------------------------------------------------
# CIFAR-10 end to end: a tiny archive in CIFAR's own format, served locally, checked by torchvision's MD5s.


def _cifar_archive(n_train_per_batch=10, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    members, arrays = {}, {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else n_train_per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(n)]
        arrays[name] = (data, labels)
        members[name] = pickle.dumps({"data": data, "labels": labels, "batch_label": name})
    members["batches.meta"] = pickle.dumps({"label_names": [f"class{c}" for c in range(10)]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return buf.getvalue(), {k: _md5(v) for k, v in members.items()}, arrays


@pytest.fixture
def tiny_cifar(server, monkeypatch):
    import torchvision.datasets as tvd

    archive, md5s, arrays = _cifar_archive()
    server.files["cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(tvd.CIFAR10, "url", f"{server.url}/cifar-10-python.tar.gz")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", _md5(archive))
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", dict(tvd.CIFAR10.meta, md5=md5s["batches.meta"]))
    train = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_y = sum((arrays[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    return dict(archive=archive, train=train.reshape(-1, 3, 32, 32), train_y=np.array(train_y),
                test=arrays["test_batch"][0].reshape(-1, 3, 32, 32), server=server)


def test_cifar10_downloads_verifies_and_loads_as_an_image_task(tiny_cifar):
    task = ds.load_task("cifar10", n_per_class=3, size=32, seed=0, progress=False)
    assert isinstance(task, ImageTask)
    assert task.classes == tuple(f"class{c}" for c in range(10))
    assert task.x_train.shape == (30, 3, 32, 32) and task.x_train.dtype == torch.uint8
    assert torch.bincount(task.y_train, minlength=10).tolist() == [3] * 10
    assert len(task.y_test) == 20  # the whole test split by default
    assert torch.equal(task.x_test, torch.from_numpy(tiny_cifar["test"]))
    # every training image is one of the archive's images, with its label
    lookup = {img.tobytes(): y for img, y in zip(tiny_cifar["train"], tiny_cifar["train_y"], strict=True)}
    for img, y in zip(task.x_train.numpy(), task.y_train.tolist(), strict=True):
        assert lookup[img.tobytes()] == y
    assert task.mean == ds.IMAGENET_MEAN and task.std == ds.IMAGENET_STD
    assert ds.is_fetched("cifar10")
    with pytest.warns(UserWarning, match="only applies to the world"):
        ds.load_task("cifar10", 1, size=32, similarity=0.5, progress=False)


def test_cifar10_subsets_are_seeded_nested_and_test_split_fixed(tiny_cifar):
    a = ds.load_task("cifar10", 3, seed=0, size=32, n_test_per_class=1, progress=False)
    n_requests = len(tiny_cifar["server"].log)
    b = ds.load_task("cifar10", 3, seed=0, size=32, n_test_per_class=1, progress=False)
    c = ds.load_task("cifar10", 3, seed=1, size=32, n_test_per_class=1, progress=False)
    small = ds.load_task("cifar10", 2, seed=0, size=32, n_test_per_class=1, progress=False)
    assert len(tiny_cifar["server"].log) == n_requests  # fetched once, then read from disk
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert torch.equal(a.x_test, c.x_test) and torch.equal(a.x_test, small.x_test)
    big = {img.numpy().tobytes() for img in a.x_train}
    assert all(img.numpy().tobytes() in big for img in small.x_train)  # nested data sizes


def test_cifar10_resizes_and_uses_the_models_normalisation(tiny_cifar):
    cfg = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=(3, 48, 48), interpolation="bicubic")
    task = ds.load_task("cifar10", 1, model=cfg, progress=False)
    assert task.image_size == 48 and task.mean == (0.5, 0.5, 0.5) and task.std == (0.25, 0.25, 0.25)
    x, _ = next(iter(task.loader("train", 4)))
    assert x.shape == (4, 3, 48, 48) and x.dtype == torch.float32


def test_cifar10_corrupt_archive_is_refused(tiny_cifar, monkeypatch):
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", "0" * 32)  # the published checksum disagrees with the server
    with pytest.raises(ds.ChecksumError):
        ds.load_task("cifar10", 1, progress=False)
    assert not ds.is_fetched("cifar10")
    assert list((ds.data_dir() / "cifar10").glob("cifar-10-python.tar.gz.bad-*"))


def test_cifar10_not_downloaded_and_download_false_names_the_script():
    with pytest.raises(FileNotFoundError, match="fetch_datasets.py cifar10"):
        ds.load_task("cifar10", 1, download=False)


def test_fetch_offline_reports_the_torchvision_url(closed_port_url, monkeypatch):
    import torchvision.datasets as tvd

    url = f"{closed_port_url}/cifar-10-python.tar.gz"
    monkeypatch.setattr(tvd.CIFAR10, "url", url)
    with pytest.raises(ds.DownloadError, match="Manual route") as info:
        ds.fetch("cifar10", timeout=5, progress=False)
    assert url in str(info.value)


def test_fetch_script_lists_fetches_and_fails_cleanly(tiny_cifar, closed_port_url, monkeypatch, capsys):
    import importlib.util

    import torchvision.datasets as tvd

    spec = importlib.util.spec_from_file_location(
        "fetch_datasets", Path(__file__).parents[1] / "data_scripts" / "fetch_datasets.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--list"]) == 0 and "cifar10" in capsys.readouterr().out
    assert script.main(["imagenet"]) == 2
    assert script.main(["cifar10"]) == 0 and "ready" in capsys.readouterr().out
    monkeypatch.setattr(tvd.CIFAR100, "url", f"{closed_port_url}/cifar-100-python.tar.gz")
    assert script.main(["cifar100", "--timeout", "5"]) == 1
    assert f"{closed_port_url}/cifar-100-python.tar.gz" in capsys.readouterr().err
    assert script.main(["--model", TIMM_NAME]) == 1  # the hub is offline here: reported, not raised
    assert TIMM_NAME in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------
# Image folders (and EuroSAT, which is one): decoding, resizing, fixed split, stratified seeded subsets.


def _colour(c, i):
    return (40 * c + 10, 7 * i + 5, 200 - 30 * c)


def _image_folder(root: Path, n_classes=3, n_per_class=6, split=None):
    for c in range(n_classes):
        folder = root / (split or "") / f"cls{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            size = (20 + 4 * i, 12 + 2 * c)  # not square: exercises resize + centre crop
            img = Image.new("RGB", size, _colour(c, i))
            if i == 0:
                img.convert("L").save(folder / f"img{i}.png")  # grayscale: decoded as RGB
            elif i == 1:
                img.save(folder / f"img{i}.jpg", quality=100)
            else:
                img.save(folder / f"img{i}.png")


def test_image_folder_loads_with_a_fixed_split_and_seeded_subsets(tmp_path):
    _image_folder(tmp_path / "shapes")
    t0 = ds.load_task(f"folder:{tmp_path / 'shapes'}", 2, size=8, seed=0, progress=False)
    t1 = ds.load_task(str(tmp_path / "shapes"), 3, size=8, seed=1, progress=False)
    assert t0.classes == ("cls0", "cls1", "cls2") and t0.x_train.shape == (6, 3, 8, 8)
    assert torch.bincount(t0.y_train).tolist() == [2, 2, 2] and torch.bincount(t1.y_train).tolist() == [3, 3, 3]
    assert torch.equal(t0.x_test, t1.x_test) and len(t0.y_test) == 3  # 20% of 6 per class, whatever the seed
    # solid colours survive decode + resize; train and test never share an image
    colours = lambda t, split: {tuple(x[:, 4, 4].tolist()) for x in getattr(t, f"x_{split}")}  # noqa: E731
    assert not colours(t0, "train") & colours(t0, "test")
    for x, y in zip(t0.x_train, t0.y_train.tolist(), strict=True):
        assert (x.float() - x[:, 4:5, 4:5].float()).abs().max() <= 1  # one colour per image
        assert any((x[:, 4, 4].float() - torch.tensor(_colour(y, i), dtype=torch.float)).abs().max() <= 2
                   or (x[0, 4, 4] == x[1, 4, 4] == x[2, 4, 4])  # the grayscale one
                   for i in range(6))


def test_decoded_images_are_reused_refreshed_when_changed_and_bounded(tmp_path, monkeypatch):
    _image_folder(tmp_path / "d", n_classes=2, n_per_class=5)
    calls = []
    real_decode = _images.decode_image
    monkeypatch.setattr(_images, "decode_image", lambda path, size: calls.append(path) or real_decode(path, size))
    first = ds.load_task(f"folder:{tmp_path / 'd'}", 2, size=8, progress=False)
    n = len(calls)
    assert n == len(first.y_train) + len(first.y_test)
    again = ds.load_task(f"folder:{tmp_path / 'd'}", 2, size=8, progress=False)
    assert len(calls) == n and torch.equal(first.x_train, again.x_train)  # served from memory
    changed = tmp_path / "d" / "cls0" / "img3.png"
    Image.new("RGB", (30, 30), (1, 2, 3)).save(changed)
    os.utime(changed, ns=(1, 10**18))
    ds.load_task(f"folder:{tmp_path / 'd'}", 4, size=8, progress=False)
    assert changed in calls[n:]  # a file that changed on disk is decoded again
    monkeypatch.setenv("TRANSFERLAB_DECODE_CACHE_MB", str(3 * 8 * 8 * 3 / 2**20))  # room for 3 images
    ds.load_task(f"folder:{tmp_path / 'd'}", 4, size=8, progress=False)
    assert len(_images.DECODED_CACHE.items) == 3 and _images.DECODED_CACHE.bytes == 3 * 3 * 8 * 8


def test_image_folder_with_train_and_test_subfolders(tmp_path):
    _image_folder(tmp_path / "d", split="train", n_per_class=4)
    _image_folder(tmp_path / "d", split="val", n_per_class=2)
    task = ds.load_task(f"folder:{tmp_path / 'd'}", 4, size=8, progress=False)
    assert len(task.y_train) == 12 and len(task.y_test) == 6


def test_image_folder_errors_quote_the_bad_value(tmp_path):
    _image_folder(tmp_path / "d", n_per_class=3)
    with pytest.raises(ValueError, match="n_per_class=5"):
        ds.load_task(f"folder:{tmp_path / 'd'}", 5, size=8, progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ds.load_task(f"folder:{tmp_path / 'nowhere'}", 1, size=8)


def test_eurosat_zip_is_extracted_and_read_as_an_image_folder(server, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c, cls in enumerate(("Forest", "River")):
            for i in range(5):
                png = io.BytesIO()
                Image.new("RGB", (64, 64), _colour(c, i)).save(png, format="PNG")
                zf.writestr(f"2750/{cls}/{cls}_{i}.jpg", png.getvalue())  # a PNG named .jpg: decoded by content
    blob = buf.getvalue()
    server.files["EuroSAT.zip"] = blob
    monkeypatch.setattr(_catalogue, "EUROSAT", ds.Resource(f"{server.url}/EuroSAT.zip", "EuroSAT.zip", md5=_md5(blob)))
    task = ds.load_task("eurosat", 2, size=16, progress=False)
    assert task.classes == ("Forest", "River") and len(task.y_train) == 4 and len(task.y_test) == 2
    assert task.info["similarity_prior"] == ds.DATASETS["eurosat"].similarity


def test_pets_catalogue_agrees_with_torchvision(tmp_path):
    from torchvision.datasets import OxfordIIITPet

    root = tmp_path / "oxford-iiit-pet"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    breeds = ["Abyssinian", "american_bulldog", "Bengal"]
    for split, ids in (("trainval", (1, 2, 3)), ("test", (4, 5))):
        lines = []
        for b, breed in enumerate(breeds):
            for i in ids:
                lines.append(f"{breed}_{i} {b + 1} {1 + (breed[0].islower())} {i}")
                Image.new("RGB", (10, 10), (b * 50, i * 20, 0)).save(root / "images" / f"{breed}_{i}.jpg")
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    for split in ("trainval", "test"):
        ref = OxfordIIITPet(str(tmp_path), split=split, download=False)
        cat = _catalogue.pets_catalogue(root)
        assert cat.classes == tuple(ref.classes)
        mine = (cat.train_y, cat.train_images) if split == "trainval" else (cat.test_y, cat.test_images)
        assert mine[0].tolist() == ref._labels
        assert [Path(p) for p in mine[1]] == [Path(p) for p in ref._images]


# ----------------------------------------------------------------------------------------------------------
# World names go through unchanged; the helpers lessons use.


def test_world_names_give_the_worlds_tasks():
    task = ds.load_task("world", 3, similarity=0.5, seed=2, size=16, n_test_per_class=2)
    ref = target_task(3, 0.5, seed=2, size=16, n_test_per_class=2)
    assert torch.equal(task.x_train, ref.x_train) and torch.equal(task.y_test, ref.y_test)
    assert task.mean == ref.mean
    timm_like = ds.load_task("world", 2, size=16, n_test_per_class=1, model=dict(mean=(0.5,) * 3, std=(0.5,) * 3))
    assert timm_like.mean == (0.5,) * 3
    assert ds.load_task("digits", 2, n_test_per_class=1).num_classes == 10
    with pytest.raises(ValueError, match="n_per_class is required"):
        ds.load_task("world")


@pytest.mark.parametrize(
    "name, kwargs, error, match",
    [
        ("imagenet", {}, KeyError, "imagenet"),
        ("world", dict(n_per_class=0), ValueError, "n_per_class"),
        ("world", dict(n_per_class=2, size=0), ValueError, "size"),
        ("world", dict(n_per_class=2, seed=-1), ValueError, "seed"),
        ("world", dict(n_per_class=2, model=object()), TypeError, "pretrained_cfg"),
    ],
)
def test_load_task_rejects_bad_input(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        ds.load_task(name, **kwargs)


@pytest.mark.parametrize("name", ["digits", "source"])
def test_similarity_warns_for_world_tasks_without_the_knob_as_for_real_data(name):
    with pytest.warns(UserWarning, match="only applies to the world") as caught:
        task = ds.load_task(name, 2, n_test_per_class=1, size=8, similarity=0.3)
    assert repr(name) in str(caught[0].message) and "similarity=0.3" in str(caught[0].message)
    plain = ds.load_task(name, 2, n_test_per_class=1, size=8)
    assert torch.equal(task.x_train, plain.x_train)  # not applied


@pytest.mark.parametrize("name", ["world", "target"])
def test_similarity_applies_to_the_worlds_target_task_without_a_warning(name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task = ds.load_task(name, 2, n_test_per_class=1, size=8, similarity=0.3)
    assert task.info["similarity"] == 0.3


def test_numpy_integers_are_accepted_wherever_ints_are(tmp_path):
    args = dict(seed=np.int64(1), size=np.int32(16), n_test_per_class=np.int64(1))
    task = ds.load_task("world", np.int64(2), **args)
    ref = ds.load_task("world", 2, seed=1, size=16, n_test_per_class=1)
    assert torch.equal(task.x_train, ref.x_train) and task.image_size == 16
    _image_folder(tmp_path / "d", n_classes=2, n_per_class=5)
    real = ds.load_task(f"folder:{tmp_path / 'd'}", np.int16(2), seed=np.uint8(3), size=np.int64(8), progress=False)
    assert len(real.y_train) == 4 and type(real.info["size"]) is int and type(real.info["n_per_class"]) is int
    assert ds.resize_images(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), np.int64(2)).shape == (1, 3, 2, 2)
    assert ds.suggested_batch_size("cpu", np.int64(32)) == 256
    assert len(ds.stratified_indices(torch.arange(3).repeat(4), np.int64(2), seed=np.int64(0))) == 6
    probe = ds.measure_similarity(real, _FeatureModel(), device="cpu", seed=np.int64(0), batch_size=np.int64(3),
                                  epochs=np.int64(2))
    assert 0.0 <= probe["probe_acc"] <= 1.0
    assert len(next(iter(real.loader("train", np.int64(3))))[0]) == 3
    with pytest.raises(ValueError, match=r"n_per_class must be an integer >= 1, got 2\.0"):
        ds.load_task("world", 2.0)


def test_clear_caches_frees_decoded_images_and_catalogues(tiny_cifar, tmp_path, monkeypatch):
    import dataclasses

    reads = []
    spec = ds.DATASETS["cifar10"]
    monkeypatch.setitem(ds.DATASETS, "cifar10", dataclasses.replace(
        spec, catalogue=lambda root: reads.append(root) or spec.catalogue(root)))
    ds.load_task("cifar10", 1, size=8, progress=False)
    ds.load_task("cifar10", 1, size=8, progress=False)
    assert len(reads) == 1  # read once, kept in memory
    _image_folder(tmp_path / "d", n_classes=2, n_per_class=5)
    ds.load_task(f"folder:{tmp_path / 'd'}", 2, size=8, progress=False)
    assert _images.DECODED_CACHE.bytes > 0
    assert ds.clear_caches() is None
    assert _images.DECODED_CACHE.bytes == 0 and not _images.DECODED_CACHE.items
    ds.load_task("cifar10", 1, size=8, progress=False)
    assert len(reads) == 2  # read from disk again


def test_stratified_indices_nested_and_errors():
    y = torch.arange(4).repeat(10)
    big, small = ds.stratified_indices(y, 5, seed=3), ds.stratified_indices(y, 2, seed=3)
    assert torch.bincount(y[big]).tolist() == [5] * 4 and set(small.tolist()) <= set(big.tolist())
    assert len(ds.stratified_indices(y, None)) == 40
    with pytest.raises(ValueError, match="fewer than n_per_class=11"):
        ds.stratified_indices(y, 11)


def test_resize_images_keeps_the_centre():
    x = torch.zeros(1, 3, 8, 24, dtype=torch.uint8)
    x[..., 8:16] = 200  # the middle third of a wide image
    out = ds.resize_images(x, 8)
    assert out.shape == (1, 3, 8, 8) and bool((out == 200).all())
    assert ds.resize_images(torch.full((2, 3, 32, 32), 7, dtype=torch.uint8), 16).unique().tolist() == [7]
    with pytest.raises(ValueError, match="uint8"):
        ds.resize_images(torch.zeros(1, 3, 8, 8), 4)


def test_similarity_ladder_and_backbones():
    assert [r["similarity"] for r in ds.similarity_ladder("world")] == [1.0, 0.5, 0.0]
    real = ds.similarity_ladder("real")
    assert {r["name"] for r in real} == set(ds.DATASETS)
    assert [r["similarity"] for r in real] == sorted((r["similarity"] for r in real), reverse=True)
    assert ds.similarity_ladder("eurosat")[0]["name"] == "eurosat"
    with pytest.raises(KeyError):
        ds.similarity_ladder("imagenet")
    import timm

    from transferlab.zoo import ZOO

    assert ds.backbones("zoo") == [n for n, s in ZOO.items() if s.kind == "image"]
    pretrained = set(timm.list_pretrained())
    for kind, names in ds.RECOMMENDED_BACKBONES.items():
        assert set(names) <= pretrained, kind  # every recommendation is a real timm pretrained tag
    assert ds.backbones("timm", device="cpu") == list(ds.RECOMMENDED_BACKBONES["cpu"])
    assert ds.backbones("resnet18, vit_tiny_patch16_224") == ["resnet18", "vit_tiny_patch16_224"]
    assert ds.suggested_batch_size("cpu", 224) == 32
    with pytest.raises(ValueError):
        ds.backbones(" , ")


class _FeatureModel(nn.Module):
    """A stand-in backbone: flattened pixels as features (``blind``: constant features)."""

    def __init__(self, blind=False):
        super().__init__()
        self.blind = blind
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward_features(self, x):
        return x.flatten(1)

    def forward_head(self, x, pre_logits=False):
        return torch.zeros_like(x[:, :4]) if self.blind else x


def test_measure_similarity_separates_informative_from_blind_features():
    gen = torch.Generator().manual_seed(0)
    protos = torch.randint(0, 256, (5, 3, 4, 4), generator=gen)

    def split(n):
        y = torch.arange(5).repeat_interleave(n)
        noise = torch.randint(-20, 21, (len(y), 3, 4, 4), generator=gen)
        return (protos[y] + noise).clamp(0, 255).to(torch.uint8), y

    task = ImageTask("protos", *split(10), *split(10), classes=tuple("abcde"))
    sees = ds.measure_similarity(task, _FeatureModel(), device="cpu")
    blind = ds.measure_similarity(task, _FeatureModel(blind=True), device="cpu")
    assert sees["probe_acc"] == 1.0 and sees["score"] == 1.0
    assert blind["probe_acc"] == pytest.approx(0.2) and blind["score"] == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------------------------------------
# timm models with local weights: saved to safetensors, loaded back as "pretrained" with their config.

TIMM_NAME = "test_resnet.r160_in1k"  # timm's own tiny test model (0.47 M parameters)


@pytest.fixture
def timm_weights(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = timm.create_model(TIMM_NAME, pretrained=False)
    path = tmp_path / "weights" / "test_resnet.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    return src, path


def test_timm_local_weights_load_as_pretrained_with_their_config(timm_weights):
    from transferlab.models import create_model, stage_names

    src, path = timm_weights
    model = create_model(TIMM_NAME, 5, weights=path, device="cpu")
    ref = src.state_dict()
    for k, v in model.state_dict().items():
        if k.startswith("fc."):
            assert v.shape[0] == 5  # a fresh 5-class head
        else:
            assert torch.equal(v, ref[k]), k
    cfg = model.pretrained_cfg
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["input_size"] == (3, 160, 160) and cfg["file"] == str(path)
    same = create_model(TIMM_NAME, 1000, weights=path)
    assert torch.equal(same.fc.weight, src.fc.weight)  # same classes: the source head is kept
    task = ds.load_task("world", 2, n_test_per_class=1, size=16, model=model)
    assert task.mean == (0.5, 0.5, 0.5)
    assert stage_names(model)


def test_timm_weights_in_the_kit_home_are_found_offline(timm_weights):
    from transferlab.models import create_model, timm_weights_path

    src, path = timm_weights
    target = timm_weights_path(TIMM_NAME)
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes())
    model = create_model(TIMM_NAME, 3, pretrained=True)
    assert torch.equal(model.conv1[0].weight, src.conv1[0].weight)


def test_timm_pretrained_offline_says_how_to_get_weights():
    from transferlab.models import create_model, timm_weights_path

    with pytest.raises(OSError, match="fetch_datasets.py --model") as info:
        create_model(TIMM_NAME, 3, pretrained=True)
    assert str(timm_weights_path(TIMM_NAME)) in str(info.value)
    assert create_model(TIMM_NAME, 3).fc.out_features == 3  # not pretrained: no network needed


def test_timm_weights_argument_errors(tmp_path):
    from transferlab.models import create_model

    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_model(TIMM_NAME, 3, weights=tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="should end in"):
        create_model(TIMM_NAME, 3, weights=tmp_path / "weights.txt")


def test_a_short_split_names_itself_and_the_way_out(tmp_path):
    from realpath import make_image_folder

    from transferlab.datasets import TooFewImagesError, load_task

    root = make_image_folder(tmp_path / "imgs", classes=3, per_class=10)  # 2 test, 8 train images per class
    with pytest.raises(TooFewImagesError, match=r"test split's class 'class_00' has only 2 images.*"
                                                r"n_test_per_class=None") as err:
        load_task(f"folder:{root}", 4, n_test_per_class=5, size=16, progress=False)
    assert (err.value.split, err.value.available, err.value.requested) == ("test", 2, 5)
    with pytest.raises(TooFewImagesError, match="train split") as err:
        load_task(f"folder:{root}", 9, size=16, progress=False)
    assert isinstance(err.value, ValueError) and err.value.split == "train"
    assert load_task(f"folder:{root}", 8, n_test_per_class=None, size=16, progress=False).y_test.numel() == 6
