"""What the data tests share: IDX bytes, small fake MNIST files, gzip bombs, and a hostile HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy

from minivae.data import idx, mnist
from minivae.data.idx import parse_idx

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def idx_bytes(array: numpy.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic (0, 0, type code, ndim), big-endian sizes, big-endian items."""
    code = {numpy.dtype(v): k for k, v in idx.IDX_DTYPES.items()}[numpy.dtype(array.dtype).newbyteorder(">")]
    header = bytes([0, 0, code, array.ndim]) + numpy.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(numpy.dtype(array.dtype).newbyteorder(">")).tobytes()


def write(path: Path, payload: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def fake_mnist(n: int = 7, seed: int = 0) -> dict:
    """Small IDX files under the official names: {name: uncompressed bytes}."""
    rng = numpy.random.default_rng(seed)
    files = {}
    for images, labels in mnist.MNIST_FILES.values():
        files[images] = idx_bytes(rng.integers(0, 256, (n, 28, 28)).astype(numpy.uint8))
        files[labels] = idx_bytes(rng.integers(0, 10, n).astype(numpy.uint8))
    return files


class Server:
    """A real HTTP server on 127.0.0.1; the first part of the path picks how it (mis)behaves:

    /good/ serves the files, /drop/ cuts them off halfway, /404/ has none, /html/ sends an error page,
    /corrupt/ a damaged gzip stream, /trickle/ the right file 50 bytes every 0.1 s, /slowhead/ its headers one
    byte every 0.1 s, /endless/ a gzip stream of empty blocks without Content-Length that never ends,
    /huge/ announces a terabyte, /bomb/ serves ``self.bomb`` whatever the name, /redirect/ answers 302 to
    ``self.location`` (``{name}`` stands for the requested file name), /length/ serves the file announcing the
    Content-Length ``self.length``.
    """

    def __init__(self, files: dict) -> None:
        self.files = {f"{name}.gz": gzip.compress(raw) for name, raw in files.items()}
        self.requests: list = []
        self.bomb = b""
        self.location, self.length = "", ""
        self.stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                outer.requests.append(self.path)
                mode, _, name = self.path.strip("/").partition("/")
                body = outer.bomb if mode == "bomb" else outer.files.get(name)
                try:
                    if mode == "redirect" and body is not None:
                        self.send_response(302)
                        self.send_header("Location", outer.location.format(name=name))
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    else:
                        self.answer(mode, body)
                except OSError:  # the client hung up: that is what the slow modes are for
                    pass
                self.close_connection = True

            def answer(self, mode: str, body: bytes | None) -> None:
                if mode == "404" or body is None:
                    self.send_error(404)
                    return
                if mode == "slowhead":
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                    while not outer.stop.wait(0.1):
                        self.wfile.write(b"a")
                    return
                if mode == "html":
                    body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
                elif mode == "corrupt":
                    body = body[:-6]
                self.send_response(200)
                if mode == "huge":
                    self.send_header("Content-Length", str(10**12))
                if mode == "length":
                    self.send_header("Content-Length", outer.length)
                elif mode != "endless" and mode != "huge":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode in ("endless", "huge"):
                    # a gzip header, then empty stored deflate blocks: valid, endless, and inflating to nothing
                    self.wfile.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
                    while not outer.stop.is_set():
                        self.wfile.write(b"\x00\x00\x00\xff\xff" * 1000)
                elif mode == "trickle":
                    for i in range(0, len(body), 50):
                        if outer.stop.wait(0.1):
                            return
                        self.wfile.write(body[i:i + 50])
                else:
                    self.wfile.write(body[:len(body) // 2] if mode == "drop" else body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{mode}/"

    def modes(self) -> list:
        return [r.split("/")[1] for r in self.requests]

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def use_mirrors(monkeypatch, *urls: str) -> None:
    monkeypatch.setenv("MINIVAE_MNIST_MIRRORS", ",".join(urls))


def leftovers(root: Path) -> list:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def expected(files: dict, split: str) -> tuple:
    images, labels = (parse_idx(files[n]) for n in mnist.MNIST_FILES[split])
    return images.reshape(len(images), -1) / numpy.float32(255), labels


def zero_bomb(megabytes: int, prefix: bytes = b"") -> bytes:
    """A gzip file of ``prefix`` and ``megabytes`` MiB of zero bytes: about a thousandth of that on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join([packer.compress(prefix)] + [packer.compress(block) for _ in range(megabytes)]
                    + [packer.flush()])


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def serve(monkeypatch) -> Iterator:
    """The body of the ``served`` fixture: a :class:`Server` of :func:`fake_mnist`, whose MD5s MNIST takes on."""
    files = fake_mnist()
    for name, raw in files.items():
        monkeypatch.setitem(mnist.MNIST_MD5, name, hashlib.md5(raw).hexdigest())
    server = Server(files)
    yield server, files
    server.close()
