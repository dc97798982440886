r"""Downloads of IDX files: one file from the first mirror that serves a verified copy, within hard limits.

A download streams into ``minivae.files.atomic_write`` and is refused on the way (each reason a predicate for
the mirror's URL): more bytes than any copy can have, a start that is neither gzip nor IDX, a gzip bomb, a
wrong MD5. A watchdog thread cuts the connection past ``DOWNLOAD_DEADLINE`` or below ``DOWNLOAD_MIN_RATE``,
and only http(s) redirects to http(s) are followed, so every byte comes through a socket it can cut.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minivae.data.idx import GZIP_MAGIC, Inflater, RefusedError
from minivae.files import atomic_write

# limits on one file from one mirror; past any of them the next mirror is tried (tests make them small)
DOWNLOAD_TIMEOUT = 15.0     # seconds without an answer or data before a mirror counts as unreachable
DOWNLOAD_WINDOW = 30.0      # seconds over which the rate is measured, connecting and headers included
DOWNLOAD_MIN_RATE = 8192    # bytes per second, on average over each window
DOWNLOAD_DEADLINE = 1800.0  # seconds per file, whatever the rate


class UnsavedError(RefusedError):
    """The download was fine but could not be written into the data folder."""


def download_file(urls: tuple[str, ...], name: str, root: Path, size: int, md5: str, failures: list) -> Path | None:
    r"""Fetch ``name + ".gz"`` into ``root`` from the first base URL that serves a copy of ``size`` bytes
    (uncompressed) whose MD5 is ``md5``; else None, with one reason per URL appended to ``failures``."""
    problem = _unwritable(root)
    if problem:
        failures.append(problem)
        return None
    final, errors = root / f"{name}.gz", []
    for base in urls:
        url = f"{base.rstrip('/')}/{name}.gz"
        try:
            _fetch(url, final, name, size, md5)
            return final
        except UnsavedError as err:  # the folder, not the mirror, is the problem: the next mirror would fail too
            failures.append(f"{url} arrived but could not be saved into {root} ({err})")
            return None
        except RefusedError as err:
            errors.append(f"{url} {err}")
    failures.extend(errors)
    return None


def mismatch(got: str, md5: str) -> str:
    """Why a file fails its checksum, as a predicate."""
    return f"fails verification: the MD5 of its uncompressed bytes is {got}, not the official {md5}"


def _unwritable(root: Path) -> str | None:
    """Why nothing can be downloaded into ``root``, or None when it is a writable folder."""
    if root.exists() and not root.is_dir():
        return f"{root} is a file, not a folder, so nothing was downloaded into it"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"the folder {root} could not be created ({err.strerror}), so nothing was downloaded"
    if not os.access(root, os.W_OK | os.X_OK):
        return f"the folder {root} is read-only, so nothing was downloaded into it"
    return None


def _fetch(url: str, final: Path, name: str, size: int, md5: str) -> None:
    """Stream ``url`` into ``final`` with ``atomic_write``, checking rate, size and MD5 on the way."""
    with _Watchdog() as watchdog:
        try:
            response = _opener(watchdog).open(url, timeout=DOWNLOAD_TIMEOUT)
        except RefusedError:  # a redirect the opener would not follow
            raise
        except _NETWORK_ERRORS as err:
            raise RefusedError(watchdog.reason or _reason(err)) from None
        with response:
            try:
                atomic_write(final, lambda out: _receive(response, out, name, size, md5, watchdog))
            except UnsavedError:
                raise
            except RefusedError as err:  # a cut connection shows as a short or damaged stream: say why
                raise RefusedError(watchdog.reason or str(err)) from None
            except OSError as err:  # network errors are caught in _receive: this is the folder or the disk
                raise UnsavedError(err.strerror or str(err)) from None


_NETWORK_ERRORS = (OSError, ValueError, http.client.HTTPException)


def _receive(response: Any, out: Any, name: str, size: int, md5: str, watchdog: _Watchdog) -> None:
    """Copy the response into ``out``, refusing anything but a gzip or IDX file of ``size`` bytes and ``md5``."""
    from minivae.console import bar, show_progress

    # the most bytes any copy can take: raw, or gzip at its worst (stored blocks add 5 bytes per 65,535)
    cap = size + size // 10000 + 4096
    announced = _announced(response.headers.get("Content-Length"), name, cap)
    inflater = Inflater(size, f"the official {name} has {size:,} bytes", keep=False)
    received, head = 0, b""
    with bar(desc=f"downloading {name}.gz", total=announced, leave=False, unit="B", unit_scale=True,
             disable=not show_progress()) as shown:
        while chunk := _read(response, watchdog):
            received += len(chunk)
            watchdog.received = received
            if received > cap:
                raise RefusedError(f"sent more than {cap:,} bytes, more than any copy of {name} can have")
            if len(head) < 64:
                head += chunk[:64]
                _check_start(head, name)
            inflater.feed(chunk)
            try:
                out.write(chunk)
            except OSError as err:
                raise UnsavedError(err.strerror or str(err)) from None
            shown.update(len(chunk))
    if watchdog.reason:
        raise RefusedError(watchdog.reason)
    if announced is not None and received != announced:
        raise RefusedError(f"closed the connection after {received:,} of the {announced:,} bytes it announced")
    got = inflater.finish()
    if got != md5:
        raise RefusedError(mismatch(got, md5))


def _announced(value: str | None, name: str, cap: int) -> int | None:
    """The size a ``Content-Length`` header announces (None when absent or empty), refused unless it is a plain
    ASCII number of at most ``cap`` bytes."""
    value = (value or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        shown = repr(value[:20]) + ("..." if len(value) > 20 else "")
        raise RefusedError(f"sent the Content-Length {shown}, which is not a number of bytes")
    # compare the digits' count first: int() of thousands of digits is slow, and refused by Python 3.11+
    if len(value) > len(str(cap)) or int(value) > cap:
        amount = f"{int(value):,}" if len(value) <= 30 else f"a {len(value):,}-digit number of"
        raise RefusedError(f"announced {amount} bytes, more than any copy of {name} can have ({cap:,})")
    return int(value)


def _read(response: Any, watchdog: _Watchdog) -> bytes:
    """The next piece of the response, from one socket read (``read1``) so that the watchdog is heard."""
    try:
        return getattr(response, "read1", response.read)(1 << 16)
    except _NETWORK_ERRORS as err:
        raise RefusedError(watchdog.reason or _reason(err)) from None


def _check_start(head: bytes, name: str) -> None:
    """Refuse a response at its first bytes unless it starts like a gzip file or a raw IDX file."""
    if len(head) < 2 or head[:2] in (GZIP_MAGIC, b"\x00\x00"):
        return
    if head.lstrip()[:1] == b"<":
        raise RefusedError(f"sent an HTML page, not {name}.gz (an error, login or captive-portal page?)")
    raise RefusedError(f"sent neither a gzip nor an IDX file (it starts with {head[:8]!r})")


def _reason(err: Exception) -> str:
    """What went wrong with one mirror, as a predicate for its URL."""
    if isinstance(err, urllib.error.HTTPError):
        return f"answered HTTP {err.code} ({err.reason})"
    if isinstance(err, urllib.error.URLError):
        if isinstance(err.reason, TimeoutError):
            return f"did not answer within {DOWNLOAD_TIMEOUT:g} s (DOWNLOAD_TIMEOUT)"
        return f"could not be reached ({err.reason})"
    if isinstance(err, TimeoutError):
        return f"sent nothing for {DOWNLOAD_TIMEOUT:g} s (DOWNLOAD_TIMEOUT)"
    if isinstance(err, ValueError):
        return f"is not a URL minivae can fetch ({err})"
    return f"broke off ({type(err).__name__}: {err})"


class _Watchdog:
    """Cuts a download's connections once it runs past DOWNLOAD_DEADLINE or below DOWNLOAD_MIN_RATE.

    A socket timeout alone bounds each read, not the whole file: a mirror that trickles a few bytes every
    few seconds would hold a download for hours. The watchdog thread shuts the sockets down, so the
    blocked read returns, and ``reason`` says why.
    """

    def __init__(self) -> None:
        self.sockets: list = []
        self.received, self.reason = 0, None
        self.start = self.mark = time.monotonic()
        self.marked = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Watchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        self.thread.join()

    def connection(self, http_class: Callable) -> Callable:
        """``http_class`` whose sockets are recorded here, so that they can be cut."""
        def connect(*args: Any, **kwargs: Any) -> socket.socket:
            sock = socket.create_connection(*args, **kwargs)
            self.sockets.append(sock)
            return sock

        def make(*args: Any, **kwargs: Any) -> Any:
            conn = http_class(*args, **kwargs)
            conn._create_connection = connect
            return conn
        return make

    def _watch(self) -> None:
        while not self.done.wait(0.05):
            self.reason = self.reason or self._verdict(time.monotonic())
            if self.reason:  # every round, in case a connection was still being opened
                for sock in self.sockets:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _verdict(self, now: float) -> str | None:
        if now - self.start > DOWNLOAD_DEADLINE:
            return f"was not complete after {DOWNLOAD_DEADLINE:g} s (DOWNLOAD_DEADLINE)"
        if now - self.mark >= DOWNLOAD_WINDOW:
            got = self.received - self.marked
            if got < DOWNLOAD_MIN_RATE * (now - self.mark):
                return (f"sent {got:,} bytes in {now - self.mark:.1f} s, below the minimum rate of "
                        f"{DOWNLOAD_MIN_RATE:,} bytes/s (DOWNLOAD_MIN_RATE)")
            self.mark, self.marked = now, self.received
        return None


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an http(s) URL: any other scheme (ftp://, file://) would open a connection
    the watchdog cannot cut, so it is refused before anything connects."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            shown = newurl if len(newurl) <= 200 else newurl[:200] + "..."
            raise RefusedError(f"redirected to {shown}, which is not an http or https URL; minivae follows only "
                               "http(s) redirects (use a mirror that serves the file over http or https)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's opener (proxies and http(s) redirects included) whose sockets the watchdog can cut."""
    class Watched:
        def do_open(self, http_class: Any, request: Any, **kwargs: Any) -> Any:
            return super().do_open(watchdog.connection(http_class), request, **kwargs)

    class HTTP(Watched, urllib.request.HTTPHandler):
        pass

    class HTTPS(Watched, urllib.request.HTTPSHandler):
        pass
    return urllib.request.build_opener(HTTP, HTTPS, _HttpRedirectsOnly)
