"""A catalogue of hostile cases, grouped by the classes of issue 23, each run in its own subprocess.

    python tests/fault_catalogue.py [--base DIR] [--only WORD] [--jobs N] [--verbose]

``--base DIR`` runs the cases against the minivae in DIR (e.g. a ``git worktree`` of an older commit) instead of
this checkout. Each case gets a fresh folder, a memory cap (RLIMIT_AS) and a timeout, and ends in one verdict:

- ``clear``: one sentence (a ValueError, OSError or the NaN guard's error; for a script, a non-zero exit with a
  message and no traceback); ``ok``: it did what it should (or refused in the way the case expects);
- ``obscure``: a raw exception (KeyError, MemoryError, RecursionError, a traceback from a script);
- ``silent``: it returned a wrong or meaningless result without complaint; ``hang``: it ran past its timeout;
- ``lost``: a file that existed before was damaged; ``unbounded``: it used far more memory than the task needs;
- ``orphan``: it left a temporary file (``*.part``, ``*.tmp``) behind.

Not collected by pytest (no ``test_`` prefix): it runs for a few minutes and prints a tally by verdict.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
D = textwrap.dedent
VERDICTS = ("clear", "ok", "obscure", "silent", "hang", "lost", "unbounded", "orphan")

# what every API case runs first: a memory cap, a fit() that works with either signature, small models and data,
# and markers the case prints for what only it can judge
PRELUDE = r'''
import os, sys, resource, json, signal, time
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import numpy
from minivae.models import VAE, AE
from minivae.objectives import vae_objective, iwae_objective
from minivae.optim import Adam, SGD
import minivae.train as _train
from minivae import save_params, load_params

def FIT(objective, params, x, *, epochs=1, batch_size=50, seed=0, binarize=None, checkpoint=None, resume=None,
        metrics=None, **kw):
    run = getattr(_train, "TrainSettings", None) or getattr(_train, "Settings", None)
    if run is not None:
        return _train.fit(objective, params, x, settings=run(epochs=epochs, batch_size=batch_size,
                          seed=seed, binarize=binarize, progress=False),
                          files=_train.RunFiles(checkpoint=checkpoint, resume=resume, metrics=metrics), **kw)
    return _train.fit(objective, params, x, epochs=epochs, batch_size=batch_size, seed=seed, binarize=binarize,
                      checkpoint=checkpoint, resume=resume, metrics_path=metrics, progress=False, **kw)

def mark(verdict, why):
    print(f"@@{verdict} {why}", flush=True)

def SILENT(why): mark("silent", why)
def LOST(why): mark("lost", why)
def UNBOUNDED(why): mark("unbounded", why)
def OK(why=""): mark("ok", why)

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

RNG = numpy.random.default_rng(0)
TINY = VAE(12, [8], 2)
X = RNG.random((200, 12)).astype(numpy.float32)
def tiny_params(): return TINY.init(numpy.random.default_rng(1))
'''

# the wrapper: the case's code, then one verdict line from what it raised
WRAPPER = r'''
try:
    exec(compile(CASE, "case", "exec"))
except BaseException as err:
    name, text = type(err).__name__, str(err)
    clear_types = ("ValueError", "FileNotFoundError", "PermissionError", "OSError", "IsADirectoryError",
                   "NotADirectoryError", "NonFiniteLossError", "FileExistsError", "TimeoutError")
    one_sentence = 20 <= len(text) <= 1200 and text.count("\n") <= 2
    if name in clear_types and one_sentence:
        print(f"@@raised-clear {name}: {text[:300]}", flush=True)
    else:
        print(f"@@raised-obscure {name}: {text[:300]}", flush=True)
'''


def api(cls: str, name: str, code: str, timeout: float = 20) -> dict:
    return {"cls": cls, "name": name, "kind": "api", "code": textwrap.dedent(code), "timeout": timeout}


def cli(cls: str, name: str, shell: str, check: str = "", timeout: float = 60) -> dict:
    """A walkthrough (or other command) run through the shell; ``check`` is Python run after it, in its folder."""
    return {"cls": cls, "name": name, "kind": "cli", "shell": shell, "check": textwrap.dedent(check),
            "timeout": timeout}


# --------------------------------------------------------------------------------------------- the cases

def resume_cases() -> list:
    """Item 5: a resume with changed settings must be refused, naming the setting (silent at the base)."""
    start = D("""
    p = tiny_params()
    FIT(vae_objective(TINY), p, X, epochs=1, checkpoint="c.npz", optimizer=Adam(1e-3))
    """)
    changes = {
        "lr": "FIT(vae_objective(TINY), p, X, epochs=2, resume='c.npz', optimizer=Adam(1e-1))",
        "b1": "FIT(vae_objective(TINY), p, X, epochs=2, resume='c.npz', optimizer=Adam(1e-3, b1=0.5))",
        "b2": "FIT(vae_objective(TINY), p, X, epochs=2, resume='c.npz', optimizer=Adam(1e-3, b2=0.9))",
        "adam eps": "FIT(vae_objective(TINY), p, X, epochs=2, resume='c.npz', optimizer=Adam(1e-3, eps=1e-4))",
        "batch size": "FIT(vae_objective(TINY), p, X, epochs=2, batch_size=10, resume='c.npz', optimizer=Adam(1e-3))",
        "data values": "FIT(vae_objective(TINY), p, 1 - X, epochs=2, resume='c.npz', optimizer=Adam(1e-3))",
        "data size": "FIT(vae_objective(TINY), p, X[:100], epochs=2, resume='c.npz', optimizer=Adam(1e-3))",
        "beta": "FIT(vae_objective(TINY, 0.5), p, X, epochs=2, resume='c.npz', optimizer=Adam(1e-3))",
        "iwae k": "FIT(iwae_objective(TINY, 5), p, X, epochs=2, resume='c.npz', optimizer=Adam(1e-3))",
        "binarize": "FIT(vae_objective(TINY), p, X, epochs=2, binarize='threshold', resume='c.npz', "
                    "optimizer=Adam(1e-3))",
    }
    cases = [api("resume", f"resume with a changed {what}", start + code + f"\nSILENT('accepted a changed {what}')\n")
             for what, code in changes.items()]
    cases.append(api("resume", "resume with another optimizer kind", start + D("""
    FIT(vae_objective(TINY), p, X, epochs=2, resume='c.npz', optimizer=SGD(1e-3))
    SILENT('accepted SGD for Adam')
    """)))
    cases.append(api("resume", "resume with the same settings goes on", start + D("""
    r = FIT(vae_objective(TINY), p, X, epochs=2, resume='c.npz', optimizer=Adam(1e-3))
    OK() if len(r.history) == 2 else SILENT('history lost')
    """)))
    cases.append(api("resume", "metrics.json records the learning rate", """
    FIT(vae_objective(TINY), tiny_params(), X, epochs=1, metrics="m.json", optimizer=Adam(2e-3))
    body = json.load(open("m.json"))
    OK() if body.get("lr") == 2e-3 else SILENT("metrics.json does not say which lr the history ran with")
    """))
    return cases


def cap_cases() -> list:
    """Item 8: sizes that cannot fit are one sentence naming the memory, never a MemoryError or an endless run."""
    cases = [
        ("VAE with a hidden width of 10^9", "VAE(784, [10**9], 20).init(RNG)"),
        ("VAE with a hidden width of 10^8", "VAE(784, [10**8], 20).init(RNG)"),
        ("AE with a hidden width of 10^9", "AE(784, [10**9], 20).init(RNG)"),
        ("init_mlp of width 10^9", "from minivae.nn import init_mlp; init_mlp([784, 10**9, 10], RNG)"),
        ("M1 classifier of width 10^9", "from minivae.m1 import M1; M1(TINY, [10**9]).init(RNG)"),
        ("Classifier of width 10^9", "from minivae.m1 import Classifier; Classifier(784, [10**9], 10).init(RNG)"),
        ("CVAE of width 10^9", "from minivae.cvae import CVAE; CVAE(784, 10, [10**9], 20).init(RNG)"),
        ("IWAE k = 10^9 in fit", "FIT(iwae_objective(TINY, 10**9), tiny_params(), X, epochs=1)"),
        ("IWAE k = 10^7 in fit", "FIT(iwae_objective(TINY, 10**7), tiny_params(), X, epochs=1)"),
        ("iwae_bound of a broadcast 10^9-sample eps",
         "TINY.iwae_bound(tiny_params(), X[:3], numpy.broadcast_to(numpy.zeros((1, 1, 2), numpy.float32), "
         "(10**9, 3, 2)))"),
        ("sample(10^10)", "TINY.sample(tiny_params(), 10**10, RNG)"),
        ("sample(10^9)", "TINY.sample(tiny_params(), 10**9, RNG)"),
        ("log_likelihood with k = 10^9", "TINY.log_likelihood(tiny_params(), X[:5], 10**9, RNG)"),
    ]
    out = [api("caps", name, code + "\nSILENT('ran without a cap')\n", timeout=15) for name, code in cases]
    out.append(api("caps", "a sensible IWAE k trains", """
    r = FIT(iwae_objective(TINY, 5), tiny_params(), X, epochs=1)
    OK()
    """))
    return out


def cause_cases() -> list:
    """Misleading causes and obscure tracebacks: float16, no home folder, NaN pixels, another model's params."""
    f16 = "from minivae.tree import tree_map\np16 = tree_map(lambda a: a.astype(numpy.float16), tiny_params())\n"
    cases = [
        api("causes", "float16 params and data in fit", f16 + D("""
        FIT(vae_objective(TINY), p16, X.astype(numpy.float16), epochs=3)
        SILENT('trained float16 without a word')
        """)),
        api("causes", "float16 params, float32 data in fit", f16 + D("""
        FIT(vae_objective(TINY), p16, X, epochs=3)
        SILENT('trained float16 without a word')
        """)),
        api("causes", "float16 params with SGD", f16 + D("""
        FIT(vae_objective(TINY), p16, X, epochs=3, optimizer=SGD(1e-3))
        SILENT('trained float16 without a word')
        """)),
        api("causes", "float16 data, float32 params train (cast exactly)", """
        r = FIT(vae_objective(TINY), tiny_params(), X.astype(numpy.float16), epochs=2)
        OK() if numpy.isfinite(r.history[-1]['train_elbo']) else SILENT('NaN')
        """),
        api("causes", "HOME unset and uid not in /etc/passwd", """
        import pwd
        os.environ.pop("HOME", None); os.environ.pop("MINIVAE_DATA", None)
        os.environ["MINIVAE_MNIST_MIRRORS"] = ""
        def missing(uid): raise KeyError(uid)
        pwd.getpwuid = missing
        from minivae.data import load_mnist
        load_mnist("test")
        """),
    ]
    predicts = {
        "M1.predict on NaN pixels": "from minivae.m1 import M1\nm = M1(TINY)\nx = X.copy(); x[0, 0] = numpy.nan\n"
                                    "m.predict(m.init(RNG), x)",
        "M1.predict on inf pixels": "from minivae.m1 import M1\nm = M1(TINY)\nx = X.copy(); x[3] = numpy.inf\n"
                                    "m.predict(m.init(RNG), x)",
        "Classifier.predict on NaN": "from minivae.m1 import Classifier\nc = Classifier(12, [4], 3)\n"
                                     "x = X.copy(); x[:, 1] = numpy.nan\nc.predict(c.init(RNG), x)",
    }
    cases += [api("causes", name, code + "\nSILENT('predicted labels from NaN')\n") for name, code in predicts.items()]
    gauss, ae = "VAE(12, [8], 2, likelihood='gaussian')", "AE(12, [8], 2)"
    other = {
        "VAE.elbo on AE params": f"TINY.elbo({ae}.init(RNG), X, RNG.standard_normal((200, 2)))",
        "VAE.encode on AE params": f"TINY.encode({ae}.init(RNG), X)",
        "VAE.sample on gaussian params": f"TINY.sample({gauss}.init(RNG), 3, RNG)",
        "VAE.decode on gaussian params": f"TINY.decode({gauss}.init(RNG), numpy.zeros((3, 2)))",
        "VAE.log_likelihood on AE params": f"TINY.log_likelihood({ae}.init(RNG), X[:3], 5, RNG)",
        "gaussian VAE.elbo on bernoulli params": f"{gauss}.elbo(tiny_params(), X, RNG.standard_normal((200, 2)))",
        "AE.loss on VAE params": f"{ae}.loss(tiny_params(), X)",
        "M1.predict on VAE params": "from minivae.m1 import M1\nM1(TINY).predict(tiny_params(), X)",
        "fantasies on gaussian params": "from minivae.fantasies import fantasies_html\n"
                                        "fantasies_html(VAE(784, [8], 2), VAE(784, [8], 2, likelihood='gaussian')"
                                        ".init(RNG))",
        "fantasies on AE params": "from minivae.fantasies import fantasies_html\n"
                                  "fantasies_html(VAE(784, [8], 2), AE(784, [8], 2).init(RNG))",
    }
    cases += [api("causes", name, code + "\nSILENT('no complaint')\n") for name, code in other.items()]
    return cases


def file_cases() -> list:
    """Item 1: atomic writes; errors name the final file; no data loss under kill -9, no temp file left."""
    big = "big = {'w': numpy.ones((4000, 4000), numpy.float32)}\n"
    keep = "save_params('p.npz', {'w': numpy.arange(3.0)})\nbefore = open('p.npz', 'rb').read()\n"
    cases = [
        api("files", "save_params('')", "save_params('', {'w': numpy.zeros(2)})\nSILENT('wrote to no file')"),
        api("files", "save_params('.')", "save_params('.', {'w': numpy.zeros(2)})\nSILENT('?')"),
        api("files", "save_params('dir/')", "os.mkdir('d')\nsave_params('d/', {'w': numpy.zeros(2)})\nSILENT('?')"),
        api("files", "save_params into a missing folder", "save_params('no/such/p.npz', {'w': numpy.zeros(2)})"),
        api("files", "save_params over a folder", "os.mkdir('p.npz')\nsave_params('p.npz', {'w': numpy.zeros(2)})"),
        api("files", "save_params round trip", "save_params('p.npz', {'w': numpy.arange(3.0)})\n"
                                               "OK() if load_params('p.npz')['w'][2] == 2 else SILENT('changed')"),
        api("files", "kill -9 while save_params writes", keep + big + D("""
        pid = os.fork()
        if pid == 0:
            save_params('p.npz', big); os._exit(0)
        time.sleep(0.05); os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
        if open('p.npz', 'rb').read() not in (before,) and load_params('p.npz')['w'].shape != (4000, 4000):
            LOST('p.npz damaged')
        save_params('p.npz', {'w': numpy.zeros(1)})  # the next write cleans what the killed one left
        OK()
        """)),
        api("files", "ENOSPC: a full disk while writing params", keep + D("""
        import builtins, minivae.files as files
        real = os.fsync
        def full(fd): raise OSError(28, 'No space left on device')
        os.fsync = full
        try:
            save_params('p.npz', {'w': numpy.ones(10)})
        finally:
            os.fsync = real
            if open('p.npz', 'rb').read() != before: LOST('p.npz damaged')
        """)),
        api("files", "two processes write one params file", """
        pids = []
        for i in range(2):
            pid = os.fork()
            if pid == 0:
                for _ in range(20): save_params('p.npz', {'w': numpy.full(50000, float(i))})
                os._exit(0)
            pids.append(pid)
        codes = [os.waitpid(p, 0)[1] for p in pids]
        w = load_params('p.npz')['w']
        OK() if codes == [0, 0] and len(set(w.tolist())) == 1 else SILENT(f'exit codes {codes}')
        """),
        api("files", "kill -9 while a checkpoint is written", """
        p = tiny_params()
        FIT(vae_objective(TINY), p, X, epochs=1, checkpoint='c.npz')
        before = open('c.npz', 'rb').read()
        pid = os.fork()
        if pid == 0:
            FIT(vae_objective(TINY), p, numpy.tile(X, (50, 1)), epochs=50, checkpoint='c.npz'); os._exit(0)
        time.sleep(1.5); os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
        from minivae.checkpoint import load_checkpoint
        load_checkpoint('c.npz')
        OK()
        """, timeout=30),
        api("files", "metrics path is a folder", "os.mkdir('m.json')\nFIT(vae_objective(TINY), tiny_params(), X, "
                                                 "metrics='m.json')\nSILENT('wrote metrics nowhere')"),
        api("files", "checkpoint path in a missing folder", "FIT(vae_objective(TINY), tiny_params(), X, "
                                                            "checkpoint='no/such/c.npz')"),
        api("files", "a stale .part of a live writer in another namespace survives", """
        import fcntl
        open('p.npz', 'wb').close()
        part = '.p.npz.abcdef.part'
        f = open(part, 'wb'); fcntl.flock(f, fcntl.LOCK_EX)  # a live writer holds its lock
        pid = os.fork()
        if pid == 0:
            save_params('p.npz', {'w': numpy.zeros(2)}); os._exit(0)
        os.waitpid(pid, 0)
        present = os.path.exists(part)
        f.close(); os.unlink(part)
        OK() if present else LOST("a live writer's .part was deleted")
        """),
    ]
    return cases


def reading_cases() -> list:
    """Item 2: FIFOs, devices, folders and hostile .npz / IDX files are one sentence, never a hang or a blow-up."""
    fifo = "os.mkfifo('f')\n"
    cases = [
        api("reading", "load_params on a FIFO", fifo + "load_params('f')", timeout=8),
        api("reading", "resume from a FIFO", fifo + "FIT(vae_objective(TINY), tiny_params(), X, resume='f')",
            timeout=8),
        api("reading", "read_idx on a FIFO", fifo + "from minivae.data import read_idx\nread_idx('f')", timeout=8),
        api("reading", "load_params on /dev/zero", "load_params('/dev/zero')", timeout=8),
        api("reading", "load_params on /dev/null", "load_params('/dev/null')", timeout=8),
        api("reading", "load_params on a folder", "os.mkdir('d')\nload_params('d')"),
        api("reading", "read_idx on /dev/zero", "from minivae.data import read_idx\nread_idx('/dev/zero')", timeout=8),
        api("reading", "load_params of a missing file", "load_params('nope.npz')"),
        api("reading", "load_params of an empty file", "open('e.npz', 'wb').close()\nload_params('e.npz')"),
        api("reading", "load_params of a text file", "open('t.npz', 'w').write('hello')\nload_params('t.npz')"),
        api("reading", "load_params of a pickle", "import pickle\npickle.dump({'w': 1}, open('k.npz', 'wb'))\n"
                                                   "load_params('k.npz')"),
        api("reading", "load_params of an object .npz", "numpy.savez('o.npz', w=numpy.array([{}], dtype=object))\n"
                                                        "load_params('o.npz')"),
        api("reading", "load_params of someone else's .npz", "numpy.savez('s.npz', w=numpy.zeros(3))\n"
                                                             "load_params('s.npz')"),
        api("reading", "load_params of a truncated file", "save_params('p.npz', {'w': numpy.ones(1000)})\n"
                                                          "b = open('p.npz', 'rb').read()\n"
                                                          "open('p.npz', 'wb').write(b[:len(b) // 2])\n"
                                                          "load_params('p.npz')"),
        api("reading", "load_params of a bit-flipped file", "save_params('p.npz', {'w': numpy.ones(1000)})\n"
                                                            "b = bytearray(open('p.npz', 'rb').read())\n"
                                                            "b[len(b) // 3] ^= 0xFF\nopen('p.npz', 'wb').write(b)\n"
                                                            "w = load_params('p.npz')['w']\n"
                                                            "SILENT('bytes changed') if (w != 1).any() else OK()"),
        api("reading", "load_params with a huge declared shape", """
        import zipfile, io
        save_params('p.npz', {'w': numpy.ones(4)})
        z = zipfile.ZipFile('p.npz'); members = {n: z.read(n) for n in z.namelist()}; z.close()
        key = [n for n in members if n != 'meta.npy'][0]
        members[key] = members[key].replace(b"(4,)", b"(4000000000000,)".ljust(4))
        with zipfile.ZipFile('p.npz', 'w') as z:
            for n, b in members.items(): z.writestr(n, b)
        load_params('p.npz')
        """),
        api("reading", "load_params inflates members its metadata never names", """
        import zipfile
        save_params('p.npz', {'w': numpy.ones(4)})
        with zipfile.ZipFile('p.npz', 'a', zipfile.ZIP_DEFLATED) as z, z.open('junk.npy', 'w') as junk:
            for _ in range(1200): junk.write(bytes(1 << 20))
        load_params('p.npz')
        UNBOUNDED(f'peak {peak_mib():.0f} MiB') if peak_mib() > 800 else OK()
        """, timeout=40),
        api("reading", "load_params of an unsupported compression", """
        import zipfile
        save_params('p.npz', {'w': numpy.ones(4)})
        z = zipfile.ZipFile('p.npz'); members = {n: z.read(n) for n in z.namelist()}; z.close()
        with zipfile.ZipFile('p.npz', 'w', zipfile.ZIP_BZIP2) as z:
            for n, b in members.items(): z.writestr(n, b)
        w = load_params('p.npz')
        """),
        api("reading", "load_params of an encrypted-flag member", """
        import zipfile
        save_params('p.npz', {'w': numpy.ones(4)})
        b = bytearray(open('p.npz', 'rb').read())
        i = 0
        while (i := b.find(b'PK\\x01\\x02', i)) >= 0: b[i + 8] |= 1; i += 4
        i = 0
        while (i := b.find(b'PK\\x03\\x04', i)) >= 0: b[i + 6] |= 1; i += 4
        open('p.npz', 'wb').write(b)
        load_params('p.npz')
        """),
        api("reading", "load_params of deeply nested metadata", """
        import zipfile, io
        meta = '{"format": "minivae-params-1", "params": ' + '[' * 100000 + ']' * 100000 + '}'
        buf = io.BytesIO(); numpy.save(buf, numpy.array(meta))
        with zipfile.ZipFile('p.npz', 'w') as z: z.writestr('meta.npy', buf.getvalue())
        load_params('p.npz')
        """),
        api("reading", "save_params of a self-referencing nest", "a = []\na.append(a)\nsave_params('p.npz', a)"),
        api("reading", "save_params of a 10,000-deep nest", "a = numpy.zeros(1)\nfor _ in range(10000): a = [a]\n"
                                                             "save_params('p.npz', a)"),
        api("reading", "save_params of a string leaf", "save_params('p.npz', {'w': 'text'})\n"
                                                       "load_params('p.npz')\nOK()"),
        api("reading", "save_params of an object array", "save_params('p.npz', {'w': numpy.array([None])})"),
        api("reading", "read_idx with a bad magic number", "open('i', 'wb').write(b'\\1\\2\\3\\4' + bytes(100))\n"
                                                           "from minivae.data import read_idx\nread_idx('i')"),
        api("reading", "read_idx with huge declared dims", """
        import struct
        open('i', 'wb').write(b'\\0\\0\\x08\\x03' + struct.pack('>III', 60000, 28000, 28000))
        from minivae.data import read_idx
        read_idx('i')
        """),
        api("reading", "read_idx of a truncated file", """
        import struct
        open('i', 'wb').write(b'\\0\\0\\x08\\x01' + struct.pack('>I', 100) + bytes(10))
        from minivae.data import read_idx
        read_idx('i')
        """),
        api("reading", "read_idx of a gzip bomb", """
        import gzip, struct
        with gzip.open('i.gz', 'wb') as g:
            g.write(b'\\0\\0\\x08\\x01' + struct.pack('>I', 100))
            for _ in range(1500): g.write(bytes(1 << 20))
        from minivae.data import read_idx
        read_idx('i.gz')
        UNBOUNDED(f'peak {peak_mib():.0f} MiB') if peak_mib() > 800 else OK()
        """, timeout=40),
        api("reading", "read_idx round trip", """
        import struct
        open('i', 'wb').write(b'\\0\\0\\x08\\x01' + struct.pack('>I', 3) + bytes([1, 2, 3]))
        from minivae.data import read_idx
        OK() if read_idx('i').tolist() == [1, 2, 3] else SILENT('wrong values')
        """),
        api("reading", "load_params(like=) of another model", """
        save_params('p.npz', AE(12, [8], 2).init(RNG))
        try:
            load_params('p.npz', like=tiny_params())
        except TypeError:
            TINY.elbo(load_params('p.npz'), X, RNG.standard_normal((200, 2)))
        SILENT('no complaint')
        """),
    ]
    return cases


SERVER = r'''
import http.server, threading
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        ROUTE(self)
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
URL = f"http://127.0.0.1:{srv.server_address[1]}/"
os.environ["MINIVAE_MNIST_MIRRORS"] = URL
from minivae.data import load_mnist
'''


def download_cases() -> list:
    """Item 3: downloads follow only http(s) redirects, and hostile headers are one sentence."""
    routes = {
        "a redirect to ftp://": "s.send_response(302); s.send_header('Location', 'ftp://127.0.0.1:9/x'); "
                                "s.end_headers()",
        "a redirect to file://": "s.send_response(302); s.send_header('Location', 'file:///etc/passwd'); "
                                 "s.end_headers()",
        "a Content-Length of '²'": "s.send_response(200); s.send_header('Content-Length', '\\u00b2'); "
                                   "s.end_headers(); s.wfile.write(b'xx')",
        "a Content-Length of 5,000 digits": "s.send_response(200); s.send_header('Content-Length', '9' * 5000); "
                                            "s.end_headers(); s.wfile.write(b'xx')",
        "a Content-Length of -5": "s.send_response(200); s.send_header('Content-Length', '-5'); s.end_headers(); "
                                  "s.wfile.write(b'xx')",
        "a body shorter than its Content-Length": "s.send_response(200); s.send_header('Content-Length', '1000'); "
                                                  "s.end_headers(); s.wfile.write(b'xx')",
        "a 404 on every file": "s.send_response(404); s.end_headers()",
        "garbage instead of gzip": "s.send_response(200); s.send_header('Content-Length', '100'); "
                                   "s.end_headers(); s.wfile.write(bytes(100))",
    }
    cases = []
    for name, body in routes.items():
        code = "def ROUTE(s):\n    " + body + "\n" + SERVER + "load_mnist('test', root='data')\n"
        cases.append(api("downloads", f"a mirror with {name}", code + "SILENT('loaded?')\n", timeout=30))
    return cases


def page_cases() -> list:
    """Item 6: pages refuse what they cannot draw, and text goes in as text."""
    setup = "from minivae.fantasies import write_fantasies\nV = VAE(784, [8], 2)\nP = V.init(RNG)\n"
    cases = {
        "a NaN code": "write_fantasies('f.html', V, P, codes=numpy.array([[numpy.nan, 0.0]]), labels=[1])\n"
                      "SILENT('page written') if 'NaN' in open('f.html').read() else OK()",
        "an inf code": "write_fantasies('f.html', V, P, codes=numpy.array([[numpy.inf, 0.0]]), labels=[1])\n"
                       "SILENT('page written')",
        "codes of 1e7": "write_fantasies('f.html', V, P, codes=numpy.array([[1e7, -1e7], [0, 0]]), labels=[1, 2])\n"
                        "SILENT('a page that never finishes drawing')",
        "NaN weights": "P['decoder']['logits'][0][0, 0] = numpy.nan\nwrite_fantasies('f.html', V, P)\n"
                       "SILENT('a page of NaN pixels')",
        "a title with <!--<script>": "write_fantasies('f.html', V, P, title='<!--<script>')\n"
                                     "t = open('f.html').read()\n"
                                     "SILENT('raw comment opener') if '<!--<script>' in t else OK()",
        "a title with </script>": "write_fantasies('f.html', V, P, title='</script><b>x</b>')\n"
                                  "t = open('f.html').read()\nSILENT('raw') if '</script><b>' in t else OK()",
        "a title with <img onerror>": "write_fantasies('f.html', V, P, title='<img src=x onerror=alert(1)>')\n"
                                      "t = open('f.html').read()\nSILENT('raw') if '<img src=x' in t else OK()",
        "codes of the wrong width": "write_fantasies('f.html', V, P, codes=numpy.zeros((3, 5)), labels=[1, 2, 3])\n"
                                    "SILENT('drawn')",
        "labels that do not match the codes": "write_fantasies('f.html', V, P, codes=numpy.zeros((3, 2)), "
                                              "labels=[1])\nSILENT('drawn')",
        "a gaussian VAE": "G = VAE(784, [8], 2, likelihood='gaussian')\nwrite_fantasies('f.html', G, G.init(RNG))\n"
                          "SILENT('drawn')",
        "a good page": "write_fantasies('f.html', V, P, codes=RNG.standard_normal((5, 2)), labels=[1, 2, 3, 4, 5])\n"
                       "OK() if os.path.getsize('f.html') > 1000 else SILENT('empty page')",
    }
    return [api("pages", f"fantasies page with {name}", setup + code) for name, code in cases.items()]


def training_cases() -> list:
    """The NaN guard and the data checks of fit: stop with the step named, keep the last good checkpoint."""
    cases = {
        "SGD(1e30) diverges": "FIT(vae_objective(TINY), tiny_params(), X, epochs=3, optimizer=SGD(1e30))\n"
                              "SILENT('trained on garbage')",
        "NaN in x_train": "x = X.copy(); x[5, 5] = numpy.nan\nFIT(vae_objective(TINY), tiny_params(), x)\n"
                          "SILENT('trained on NaN')",
        "inf in x_test": "x = X.copy(); x[5, 5] = numpy.inf\nFIT(vae_objective(TINY), tiny_params(), X, x_test=x)\n"
                         "SILENT('evaluated inf')",
        "pixels above 1 for a Bernoulli decoder": "FIT(vae_objective(TINY), tiny_params(), X * 255)\n"
                                                  "SILENT('trained on bytes')",
        "rows of the wrong width": "FIT(vae_objective(TINY), tiny_params(), X[:, :10])",
        "batch_size 0": "FIT(vae_objective(TINY), tiny_params(), X, batch_size=0)\nSILENT('ran')",
        "epochs -1": "FIT(vae_objective(TINY), tiny_params(), X, epochs=-1)\nSILENT('ran')",
        "integer data": "FIT(vae_objective(TINY), tiny_params(), (X > 0.5).astype(int))",
        "NaN params": "p = tiny_params(); p['encoder']['mean'][0][0, 0] = numpy.nan\n"
                      "FIT(vae_objective(TINY), p, X)\nSILENT('trained from NaN')",
        "a divergence keeps the last good checkpoint and strict metrics": """
        try:
            with numpy.errstate(all='ignore'):
                FIT(vae_objective(VAE(12, [8], 2, likelihood='gaussian')),
                    VAE(12, [8], 2, likelihood='gaussian').init(RNG), X, x_test=X, epochs=40, batch_size=200,
                    optimizer=SGD(0.3), checkpoint='c.npz', metrics='m.json')
        except FloatingPointError:
            pass
        from minivae.checkpoint import load_checkpoint
        s = load_checkpoint('c.npz'); t = open('m.json').read()
        LOST('bad files') if ('NaN' in t or 'Infinity' in t) else OK()
        """,
    }
    return [api("training", name, code) for name, code in cases.items()]


def stream_cases() -> list:
    """Item 7, and the walkthroughs as scripts: closed streams, broken pipes, ASCII consoles, odd flags."""
    run = "{py} {root}/walkthroughs/01_ring_mapping.py --quick --out out"
    wrote = "import os\nprint('@@ok') if os.path.exists('out/metrics.json') else print('@@lost no metrics.json')\n"
    return [
        cli("streams", "walkthrough 01 with stderr closed", run + " 2>&-", wrote),
        cli("streams", "walkthrough 01 with stdout closed", run + " >&-", wrote),
        cli("streams", "walkthrough 01 into | head -1", "set -o pipefail; " + run + " | head -1", wrote),
        cli("streams", "walkthrough 01 on an ASCII console", "PYTHONIOENCODING=ascii " + run, wrote),
        cli("streams", "walkthrough 01 with --out ''", "{py} {root}/walkthroughs/01_ring_mapping.py --quick "
                                                       "--out ''",
            "import os\nprint('@@silent wrote into the current folder') if os.path.exists('metrics.json') else 0\n"),
        cli("streams", "walkthrough 01 with --out in a FIFO's place",
            "mkfifo out; {py} {root}/walkthroughs/01_ring_mapping.py --quick --out out"),
        cli("streams", "walkthrough 01 with --seed -1", "{py} {root}/walkthroughs/01_ring_mapping.py --quick "
                                                        "--seed -1 --out out"),
        cli("streams", "walkthrough 01 with a bad MINIVAE_WALKTHROUGH_ARGS",
            "MINIVAE_WALKTHROUGH_ARGS='--quick \"' {py} {root}/walkthroughs/01_ring_mapping.py --out out"),
        cli("streams", "walkthrough 01 with --out a file", "touch f; {py} {root}/walkthroughs/01_ring_mapping.py "
                                                           "--quick --out f"),
    ]


def all_cases() -> list:
    return (resume_cases() + cap_cases() + cause_cases() + file_cases() + reading_cases() + download_cases()
            + page_cases() + training_cases() + stream_cases())


# ---------------------------------------------------------------------------------------------- running

def run_case(case: dict, base: Path) -> tuple[str, str]:
    """``(verdict, detail)`` of one case, run in a fresh folder with a timeout."""
    env = {**os.environ, "PYTHONPATH": str(base), "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="fault-") as folder:
        try:
            if case["kind"] == "api":
                program = PRELUDE + f"\nCASE = {case['code']!r}\n" + WRAPPER
                done = subprocess.run([sys.executable, "-c", program], cwd=folder, env=env, capture_output=True,
                                      text=True, timeout=case["timeout"], start_new_session=True)
            else:
                shell = case["shell"].format(py=sys.executable, root=base)
                done = subprocess.run(["bash", "-c", shell], cwd=folder, env=env, capture_output=True, text=True,
                                      timeout=case["timeout"], start_new_session=True)
        except subprocess.TimeoutExpired:
            return "hang", f"still running after {case['timeout']} s"
        verdict, detail = judge(case, done, folder, env)
        leftovers = [p.name for p in Path(folder).rglob("*") if p.name.endswith((".part", ".tmp"))]
        if leftovers and verdict not in ("lost", "unbounded"):
            return "orphan", f"left {leftovers}"
        return verdict, detail


def judge(case: dict, done: subprocess.CompletedProcess, folder: str, env: dict) -> tuple[str, str]:
    out = done.stdout + done.stderr
    marks = [line[2:] for line in done.stdout.splitlines() if line.startswith("@@")]
    if case["kind"] == "cli":
        if case["check"]:
            check = subprocess.run([sys.executable, "-c", case["check"]], cwd=folder, env=env, capture_output=True,
                                   text=True, timeout=20)
            marks += [line[2:] for line in check.stdout.splitlines() if line.startswith("@@")]
        for verdict in ("lost", "silent"):
            found = [m for m in marks if m.startswith(verdict)]
            if found:
                return verdict, found[0]
        if "Traceback" in done.stderr:
            return "obscure", done.stderr.strip().splitlines()[-1][:200]
        if done.returncode != 0:
            return ("clear", done.stderr.strip()[-200:]) if done.stderr.strip() else ("obscure", "no message")
        return "ok", ""
    for verdict in ("lost", "unbounded"):
        found = [m for m in marks if m.startswith(verdict)]
        if found:
            return verdict, found[0]
    raised = [m for m in marks if m.startswith("raised-")]
    if raised:
        return raised[0].split(" ", 1)[0][len("raised-"):], raised[0].split(" ", 1)[1]
    for verdict in ("silent", "ok"):
        found = [m for m in marks if m.startswith(verdict)]
        if found:
            return verdict, found[0]
    if done.returncode != 0:
        lines = out.strip().splitlines()
        return "obscure", f"exit {done.returncode}: {lines[-1][:200] if lines else 'no output'}"
    return "ok", ""


def main(argv: list | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=ROOT, help="the minivae checkout to test (default: this one)")
    parser.add_argument("--only", default="", help="run only the cases whose class or name holds this word")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--verbose", action="store_true", help="print every case, not only the failures")
    args = parser.parse_args(argv)
    cases = [c for c in all_cases() if args.only in c["cls"] or args.only in c["name"]]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: run_case(c, args.base.resolve()), cases))
    tally = collections.Counter(verdict for verdict, _ in results)
    for case, (verdict, detail) in zip(cases, results):
        if args.verbose or verdict not in ("clear", "ok"):
            print(f"{verdict:9} [{case['cls']}] {case['name']}: {detail[:160]}")
    print(f"\n{len(cases)} cases against {args.base.resolve()} in {time.perf_counter() - started:.0f} s:")
    print("  " + ", ".join(f"{v} {tally[v]}" for v in VERDICTS))
    by_class = collections.defaultdict(collections.Counter)
    for case, (verdict, _) in zip(cases, results):
        by_class[case["cls"]][verdict] += 1
    for cls, counts in by_class.items():
        print(f"  {cls:10} " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
