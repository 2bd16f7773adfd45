"""Run fuzz examples in a worker subprocess, with a time bound and crash detection.

The parent (pytest) sends each example to a long-lived worker process over a pipe and waits
at most ``timeout`` seconds for its findings (a hang watchdog: minutes, far above any honest
example on a busy machine).  A worker that does not answer in time is killed
and the example is reported as ``unbounded work``; a worker that dies (a segfault, an abort,
the memory limit) is reported as ``crash`` with the signal and the tail of its stderr.  Either
way a fresh worker is started for the next example, so one bad input never ends the run.
The worker runs under an address-space limit (``RANKREF_FUZZ_MEMORY_GB``, default 4), so an
argument that asks for unbounded memory fails fast instead of swapping the machine.

``RANKREF_FUZZ_INPROCESS=1`` runs the examples in the pytest process instead (for debugging
with pdb; a crash then ends the run, and the time bound uses SIGALRM).

Run as a script (``python _fuzz_runner.py --worker``) it is the worker.
"""
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def _run_example(pkg, case):
    """Check one example in this process; returns a plain dict."""
    if pkg == "__selftest__":  # exercises the isolation itself (see test_fuzz)
        if case == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if case == "hang":
            time.sleep(3600)
        return {"findings": [], "tags": [], "calls": {"selftest": 1}}
    try:
        if pkg == "rankref.torch":
            import _fuzz_torch_checks
            F = _fuzz_torch_checks.check(case)
        else:
            import _fuzz_checks
            F = _fuzz_checks.check(pkg, case)
        return {"findings": F.items, "tags": sorted(F.tags), "calls": F.calls}
    except Exception:  # noqa: BLE001 - a bug of the checker itself, reported as such
        return {"findings": [("harness error", traceback.format_exc()[-1500:])], "tags": [],
                "calls": {}}


# ------------------------------------------------------------------------------ framing

def _write_frame(fh, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack("<Q", len(data)))
    fh.write(data)
    fh.flush()


def _read_exact(fh, n):
    buf = b""
    while len(buf) < n:
        chunk = fh.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_frame(fh):
    head = _read_exact(fh, 8)
    if head is None:
        return None
    (n,) = struct.unpack("<Q", head)
    data = _read_exact(fh, n)
    return None if data is None else pickle.loads(data)


def worker_main():
    gb = float(os.environ.get("RANKREF_FUZZ_MEMORY_GB", "4"))
    try:
        import resource
        lim = int(gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    except (ImportError, ValueError, OSError):
        pass
    import faulthandler
    faulthandler.enable()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the result pipe
    inp = os.fdopen(0, "rb")
    sys.path.insert(0, HERE)
    while True:
        msg = _read_frame(inp)
        if msg is None:
            return
        pkg, case = msg
        if case is None:  # warm-up: import what the package's checks need, untimed
            _write_frame(out, _warm_up(pkg))
            continue
        _write_frame(out, _run_example(pkg, case))


def _warm_up(pkg):
    if pkg == "__selftest__":
        return {"findings": [], "tags": [], "calls": {}}
    import importlib
    names = ["_fuzz_checks", "rankref", "rankref_gpu"]
    if pkg == "rankref.torch":
        names += ["_fuzz_torch_checks", "rankref.torch"]
    for name in names:
        importlib.import_module(name)
    return {"findings": [], "tags": [], "calls": {}}


# ------------------------------------------------------------------------------ parent side

class Runner:
    """Sends examples to a worker; restarts it after a timeout or a crash."""

    def __init__(self, timeout=600.0, inprocess=False):
        self.timeout = float(timeout)
        self.inprocess = inprocess
        self.proc = None
        self.errfile = None
        self.restarts = 0
        self.warm = set()

    def _start(self):
        self.errfile = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", os.path.join(HERE, "_fuzz_runner.py"),
             "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errfile,
            cwd=tempfile.gettempdir(), env=env)  # cwd: import the installed package

    def _stderr_tail(self):
        try:
            self.errfile.seek(0)
            return self.errfile.read().decode(errors="replace")[-800:]
        except (OSError, ValueError):
            return ""

    def _kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()  # this worker was started by us
            self.proc.wait()
            self.proc = None
            self.restarts += 1

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def run(self, pkg, case):
        t0 = time.perf_counter()
        res = self._run_inprocess(pkg, case) if self.inprocess else self._run_worker(pkg, case)
        res["seconds"] = time.perf_counter() - t0
        return res

    def _run_inprocess(self, pkg, case):
        if HERE not in sys.path:
            sys.path.insert(0, HERE)

        def alarm(signum, frame):
            raise TimeoutError

        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            return _run_example(pkg, case)
        except TimeoutError:
            return {"findings": [("unbounded work", f"no result within {self.timeout:g} s")],
                    "tags": [], "calls": {}}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def _run_worker(self, pkg, case):
        if self.proc is None or self.proc.poll() is not None:
            self._start()
            self.warm = set()
        if pkg not in self.warm:
            res = self._exchange(pkg, None, max(self.timeout, 600.0))  # imports: the watchdog only
            if res["findings"]:
                return res
            self.warm.add(pkg)
        return self._exchange(pkg, case, self.timeout)

    def _exchange(self, pkg, case, timeout):
        try:
            _write_frame(self.proc.stdin, (pkg, case))
        except (BrokenPipeError, OSError):
            return self._died()
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            self._kill()
            return {"findings": [("unbounded work", f"no result within {timeout:g} s "
                                  f"(worker killed)")], "tags": [], "calls": {}}
        msg = _read_frame(self.proc.stdout)
        if msg is None:
            return self._died()
        return msg

    def _died(self):
        self.proc.wait()
        code = self.proc.returncode
        tail = self._stderr_tail()
        self.proc = None
        self.restarts += 1
        how = f"signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else \
            f"exit status {code}"
        return {"findings": [("crash", f"the worker died with {how}: {tail[-400:]}")],
                "tags": [], "calls": {}}


if __name__ == "__main__" and "--worker" in sys.argv:
    worker_main()
