"""Running model-written Python against assert tests, for the ``python_tests`` verifier (reward = all pass).

:func:`run_tests` writes a small runner and the inputs into an empty temporary folder (removed afterwards,
whatever happens) and runs ``<python> -I -S runner.py`` there: no user site, no ``PYTHON*`` variables, an
environment that is empty but for ``PATH`` and ``LANG`` (so no API keys), stdin ``/dev/null``, a session and
process group of its own. The runner executes the code, then the setup, then each test on its own, and
reports each verdict on a pipe of its own. What the child gets, and why:

- **limits** (:class:`SandboxLimits`, set in ``preexec_fn``): ``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``,
  ``RLIMIT_NPROC`` (fork bombs), ``RLIMIT_NOFILE``, ``RLIMIT_CORE`` 0; the wall clock is watched by the parent,
  which then kills the process group with SIGKILL; stdout and stderr are read with a cap (a program printing
  gigabytes is killed once it passes the cap; at most the cap is kept).
- **another uid, when we are root**: ``RLIMIT_NPROC`` counts the processes of a uid and does not bind root,
  and root reads every file, so as root the child runs as an unprivileged uid. That uid is
  ``UID_BASE + the child's pid``: unique while the child lives (its pid stays taken, as a zombie, until the
  parent has killed everything left), so concurrent sandboxes share neither the process budget nor the
  right to signal one another, and ``kill(-1)`` run as that uid afterwards ends every process the program
  left, those that escaped the process group with ``setsid`` included. Where the uid map cannot hold that
  range (a rootless container), the child runs as ``nobody`` (65534) and only the process group is killed.
  Not root: the child keeps the user's uid; in a user namespace ``RLIMIT_NPROC`` counts that namespace's
  processes only (Linux 5.14+), without one it is set above the user's current count; a process that left
  the process group with ``setsid`` outlives the run.
- **namespaces, where the kernel allows them** (as root; otherwise through an unprivileged user namespace):
  a network namespace (no interface up, so nothing, not even 127.0.0.1, can be reached) and a mount
  namespace in which the project, the home folder and ``/proc`` are covered by empty read-only file systems
  and ``/tmp``, ``/var/tmp``, ``/dev/shm`` by fresh small ones that vanish with the run (the run's own folder
  is mounted back at its path). Without them the program can reach the network, write to the world-writable
  folders, and read whatever its uid can: every world-readable file (this repository is one), and when not
  root the user's own files and the parent's ``/proc/<pid>/environ``, secrets included. So run as root, or
  where unprivileged user namespaces are allowed; ``RunResult.isolation`` and :func:`isolation_available`
  say what a run got.
- **the interpreter** is ``sys.executable`` when the sandbox's uid can run it, else a system ``python3.X`` (a
  virtual environment under a hidden folder, or a pyenv under ``/root`` (0700), is out of its reach). The
  runner uses ``-S``, so the project's packages are never importable anyway.

Verdicts are not read from stdout or the exit status: the runner writes one JSON line per test, each with a
random nonce, to a pipe that is not stdout. The nonce travels in ``spec.json``, which the runner deletes
before it runs anything untrusted, so printing a fake result, exiting 0 or writing guessed lines to open
descriptors does not pass, and a line without the nonce marks the run ``forbidden``; the runner binds what
it calls before the code runs, so patching ``builtins.exec`` or ``json.dumps`` does not either. This is a
bar against reward hacking by accident or by a cheap trick, not against a program that reads the runner's
memory: the tests run in its process, so nothing in that process is secret from it (an object whose
``__eq__`` always returns True passes an ``assert x == y`` too).

Not isolated: CPU time is per process (a program may fork up to ``max_processes`` busy children, bounded by
the wall clock), the temporary folder's total size (``RLIMIT_FSIZE`` caps each file), other processes'
command lines where ``/proc`` is not covered, and the network and files as said above. ``preexec_fn`` runs
Python in the forked child; it does little more than system calls on values prepared before the fork and
imports nothing, which is why it is safe enough from a thread pool in practice (Python's documentation warns
against ``preexec_fn`` with threads in general; a test runs four sandboxes from threads).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from pipeline.errors import StageError

REASONS = ("passed", "failed", "syntax_error", "timeout", "cpu_limit", "memory", "output_limit", "crashed",
           "forbidden")
UID_BASE = 0x70000000  # 1879048192: above the ranges systemd hands to users and containers, below 2**31
NOBODY = 65534
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 0x4000, 1 << 18
_DRAIN_SECONDS = 0.5  # after the end, how long output already written may still be read


class SandboxUnavailable(StageError):
    """No Python interpreter can be run as the sandbox's user; the message says what to change."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use; the child is killed (or gets an error) past any of them."""

    wall_seconds: float = 5.0
    cpu_seconds: int = 2
    memory_mb: int = 256  # address space, so MemoryError rather than the OOM killer
    output_bytes: int = 64 * 1024  # per stream (stdout, stderr)
    max_processes: int = 16  # processes and threads of the sandbox's uid
    file_size_mb: int = 1  # largest file it may write; also the size of each fresh /tmp-like folder
    open_files: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"SandboxLimits.{f.name} must be > 0, got {getattr(self, f.name)!r}")


@dataclass(frozen=True)
class RunResult:
    passed: bool  # every test ran and passed, and nothing was forged
    reason: str  # one of REASONS
    returncode: int  # negative: killed by that signal
    stdout: str  # at most output_bytes of it
    stderr: str
    seconds: float
    tests_passed: int
    tests_total: int
    errors: tuple[str, ...] = ()  # "test 2: AssertionError: ..." per failed test, for feedback prompts
    isolation: tuple[str, ...] = ()  # of "uid", "per_run_uid", "network", "filesystem"


@dataclass(frozen=True)
class _Plan:
    """How children are started on this machine; found once per set of hidden folders."""

    interpreter: str
    namespaces: bool
    switch_uid: bool
    per_run_uid: bool
    hidden: tuple[str, ...]

    @property
    def isolation(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("uid", self.switch_uid), ("per_run_uid", self.per_run_uid),
                                           ("network", self.namespaces), ("filesystem", self.namespaces)) if on)


# ------------------------------------------------------------------------------------------------- runner
# Runs inside the sandbox. Reads its inputs and deletes them before any untrusted line runs; a fork of the
# program that returns into the runner exits silently, so only the first process ever reports.
_RUNNER = r'''
import json, os, sys

def main(write=os.write, quote=json.encoder.encode_basestring_ascii, getpid=os.getpid, exit_=os._exit,
         compile_=compile, exec_=exec, enumerate_=enumerate, str_=str, type_=type, Base=BaseException,
         Syntax=SyntaxError, Value=ValueError):
    # Everything the runner calls after untrusted code has run is bound here first, so that patching
    # builtins or modules (builtins.exec = ..., json.dumps = ...) cannot turn a failure into a pass; the
    # line is built by hand for the same reason (json.dumps looks up its encoder at each call).
    results = int(sys.argv[1])
    with open("spec.json", encoding="utf-8") as f:
        spec = json.load(f)
    os.remove("spec.json")
    nonce, me, namespace = spec["nonce"], getpid(), {"__name__": "solution"}

    def report(event, index=-1, error=None):
        line = '{"nonce": "%s", "event": "%s", "index": %d, "error": %s}\n' % (
            nonce, event, index, "null" if error is None else quote(error))
        write(results, line.encode())

    def describe(e):
        try:
            return (type_(e).__name__ + ": " + str_(e))[:300]
        except Base:
            return "exception"

    def run(source, name):
        try:
            exec_(compile_(source, name, "exec") if type_(source) is str_ else source, namespace)
            return None
        except Base as e:  # SystemExit too: exit(0) in the middle is not a pass
            return describe(e)
        finally:
            if getpid() != me:
                exit_(0)

    try:
        code = compile_(spec["code"], "solution.py", "exec")
    except (Syntax, Value) as e:  # ValueError: a null byte, before Python 3.12
        report("syntax_error", error=describe(e))
    else:
        failure = run(code, "solution.py") or run(spec["setup"], "setup")
        for i, test in enumerate_(spec["tests"]):
            error = ("the solution failed: " + failure) if failure else run(test, "test_" + str_(i))
            report("test", i, error)
    report("done")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Base:
            pass
    exit_(0)  # skips the program's atexit handlers and threads

main()
'''


# ------------------------------------------------------------------------------------------------- API
def run_tests(code: str, tests: Sequence[str], limits: SandboxLimits = SandboxLimits(), setup: str = "",
              hidden: Sequence[str] | None = None) -> RunResult:
    """Run ``code``, then ``setup``, then each test snippet in one namespace; passed = every test passed.

    ``hidden``: folders the program must not see (default :func:`default_hidden_paths`).
    """
    if not tests:
        raise ValueError("run_tests needs at least one test: with none, every program would pass")
    plan = _plan(_hidden_tuple(hidden))
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="sandbox-")
    try:
        _write_inputs(workdir, {"nonce": nonce, "code": code, "setup": setup, "tests": list(tests)})
        return _execute(workdir, nonce, len(tests), limits, plan)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def default_hidden_paths() -> tuple[str, ...]:
    """The project, the current folder, the home folder, and ``/proc`` (other processes, our environ)."""
    project = Path(__file__).resolve().parents[1]
    return _hidden_tuple([str(project), os.getcwd(), str(Path.home()), "/proc"])


def isolation_available(hidden: Sequence[str] | None = None) -> tuple[str, ...]:
    """What :func:`run_tests` gets on this machine, as in ``RunResult.isolation``."""
    return _plan(_hidden_tuple(hidden)).isolation


def network_isolation_available() -> bool:
    return "network" in isolation_available()


# ------------------------------------------------------------------------------------------------- plan
def _hidden_tuple(hidden: Sequence[str] | None) -> tuple[str, ...]:
    if hidden is None:
        return default_hidden_paths()
    # Covering "/" would hide the interpreter and the run's own folder; a missing folder has nothing to hide.
    paths = {os.path.realpath(p) for p in hidden}
    return tuple(sorted(p for p in paths if p != "/" and os.path.isdir(p)))


@functools.cache
def _plan(hidden: tuple[str, ...]) -> _Plan:
    root = os.geteuid() == 0
    namespaces = _namespaces_work(hidden, root)
    per_run = root and _uid_range_mapped()
    for candidate in _interpreter_candidates():
        plan = _Plan(candidate, namespaces, root, per_run, hidden)
        if _interpreter_runs(plan):
            return plan
    tried = ", ".join(_interpreter_candidates())
    raise SandboxUnavailable(f"no Python interpreter can be run as the sandbox's user (tried {tried}): install a "
                             "system python3 (apt-get install python3) or make its folders world-readable")


def _interpreter_candidates() -> list[str]:
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    system = "/usr/local/bin:/usr/bin:/bin"
    found = [sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", ""),
             shutil.which(version, path=system) or "", shutil.which("python3", path=system) or ""]
    return list(dict.fromkeys(p for p in found if p))


def _interpreter_runs(plan: _Plan) -> bool:
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as workdir:
        try:
            done = subprocess.run([plan.interpreter, "-I", "-S", "-c", "pass"], check=False, cwd=workdir,
                                  env=_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=30,
                                  preexec_fn=_child_setup(plan, SandboxLimits(), workdir))
        except (OSError, subprocess.SubprocessError):
            return False
    return done.returncode == 0


def _namespaces_work(hidden: tuple[str, ...], root: bool) -> bool:
    """Try them in a forked child: whether the kernel allows them depends on its settings and the container."""
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as workdir:
        pid = os.fork()
        if pid == 0:
            try:
                os.chdir(workdir)
                _enter_namespaces(hidden, root, size_mb=1, workdir=workdir)
                os._exit(0)
            finally:
                os._exit(1)
        return os.waitpid(pid, 0)[1] == 0


def _uid_range_mapped() -> bool:
    """Whether every ``UID_BASE + pid`` is a valid uid and gid here (not so in a rootless container)."""
    try:
        top = UID_BASE + int(Path("/proc/sys/kernel/pid_max").read_text())
        maps = [[line.split() for line in Path(f"/proc/self/{m}").read_text().splitlines()]
                for m in ("uid_map", "gid_map")]
        return all(any(int(a) <= UID_BASE and int(a) + int(n) >= top for a, _, n in lines) for lines in maps)
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------------------------------------- child
def _child_setup(plan: _Plan, limits: SandboxLimits, workdir: str) -> Callable[[], None]:
    """The ``preexec_fn``: runs in the child between fork and exec, with ``workdir`` as its cwd."""
    counted = plan.switch_uid or plan.namespaces  # a fresh uid, or a user namespace, counts from zero
    nproc = limits.max_processes + (0 if counted else _user_tasks())

    def setup() -> None:
        if plan.namespaces:
            _enter_namespaces(plan.hidden, plan.switch_uid, size_mb=limits.file_size_mb, workdir=workdir)
        if plan.switch_uid:
            uid = UID_BASE + os.getpid() if plan.per_run_uid else NOBODY
            os.chown(".", uid, uid)  # its own folder, 0700: the only place it can write to
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _set_limits(limits, nproc)

    return setup


def _set_limits(limits: SandboxLimits, nproc: int) -> None:
    mb = 1024 * 1024
    for which, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, limits.open_files),
                         (resource.RLIMIT_NPROC, nproc), (resource.RLIMIT_FSIZE, limits.file_size_mb * mb)):
        resource.setrlimit(which, (value, value))
    # Soft then hard: SIGXCPU first (told apart as cpu_limit), SIGKILL a second later if it is caught.
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    # Last: the forked copy of the parent may be far larger than the limit, and must not allocate after it.
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))


def _enter_namespaces(hidden: tuple[str, ...], root: bool, size_mb: int, workdir: str | None) -> None:
    uid, gid = os.getuid(), os.getgid()
    _libc_call("unshare", _CLONE_NEWNS | _CLONE_NEWNET | (0 if root else _CLONE_NEWUSER))
    if not root:  # the same uid inside and out: no privilege is gained, and mounting becomes possible
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    _libc_call("mount", b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)  # nothing leaks back to the host
    for path in hidden:
        _libc_call("mount", b"tmpfs", path.encode(), b"tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                   b"size=4k,mode=0555")
    for path in _WRITABLE:
        if os.path.isdir(path) and path not in hidden:  # checked now: one inside a hidden folder is gone
            _libc_call("mount", b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                       f"size={size_mb}m,mode=1777".encode())
    if workdir is not None:  # in the /tmp just covered: mount it back at its path, found through the cwd
        os.makedirs(workdir, exist_ok=True)
        _libc_call("mount", b".", workdir.encode(), None, _MS_BIND, None)
        os.chdir(workdir)


def _libc_call(name: str, *args: object) -> None:
    if getattr(_libc(), name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _user_tasks() -> int:
    """Processes and threads of our uid: what ``RLIMIT_NPROC`` counts when the child keeps that uid."""
    uid, count = os.getuid(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return count


# ------------------------------------------------------------------------------------------------- parent
def _write_inputs(workdir: str, spec: dict[str, object]) -> None:
    for name, text in (("runner.py", _RUNNER), ("spec.json", json.dumps(spec))):
        path = os.path.join(workdir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, 0o644)  # read by the sandbox's uid


def _execute(workdir: str, nonce: str, ntests: int, limits: SandboxLimits, plan: _Plan) -> RunResult:
    results_r, results_w = os.pipe()
    start = time.monotonic()
    try:
        proc = subprocess.Popen([plan.interpreter, "-I", "-S", "runner.py", str(results_w)], cwd=workdir,
                                env=_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(results_w,), start_new_session=True,
                                preexec_fn=_child_setup(plan, limits, workdir))  # noqa: PLW1509 (module notes)
    except (OSError, subprocess.SubprocessError) as e:
        os.close(results_r)
        raise SandboxUnavailable(f"the sandbox could not start its child ({e}); it worked when probed") from e
    finally:
        os.close(results_w)
    uid = UID_BASE + proc.pid if plan.per_run_uid else None
    streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), results_r: bytearray()}
    caps = {proc.stdout.fileno(): limits.output_bytes, proc.stderr.fileno(): limits.output_bytes,
            results_r: 4096 * (ntests + 2)}  # a line is at most ~2 KB (300 characters, escaped)
    try:
        stop, status, cpu = _supervise(proc.pid, streams, caps, results_r, start + limits.wall_seconds, uid)
    finally:
        os.close(results_r)
        proc.stdout.close()
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by _supervise; Popen must not wait again
    out, err, raw = (bytes(streams[fd][:caps[fd]]) for fd in streams)
    report = _parse_report(raw, nonce, ntests)
    reason = _classify(stop, report, ntests, proc.returncode, cpu, limits, err)
    return RunResult(passed=reason == "passed", reason=reason, returncode=proc.returncode,
                     stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
                     seconds=round(time.monotonic() - start, 3), tests_total=ntests,
                     tests_passed=len(report.passed) if report else 0, errors=report.errors if report else (),
                     isolation=plan.isolation)


def _supervise(pid: int, streams: dict[int, bytearray], caps: dict[int, int], results_fd: int,
               deadline: float, uid: int | None) -> tuple[str | None, int, float]:
    """Read until the child ends, breaks a limit or runs out of time; kill all it left; reap it."""
    with selectors.DefaultSelector() as sel:
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        try:
            stop = _pump(sel, streams, caps, results_fd, deadline, pid)
        finally:
            _kill_all(pid, uid)  # before reaping: the zombie keeps the pid, hence the uid, from being reused
        late = _pump(sel, streams, caps, results_fd, time.monotonic() + _DRAIN_SECONDS, None)
    _, status, usage = os.wait4(pid, 0)
    return stop or (late if late != "timeout" else None), status, usage.ru_utime + usage.ru_stime


def _pump(sel: selectors.BaseSelector, streams: dict[int, bytearray], caps: dict[int, int], results_fd: int,
          until: float, leader: int | None) -> str | None:
    """Move pipe data into ``streams`` until the leader exits (or, with none, every pipe is closed)."""
    while not (_exited(leader) if leader is not None else not sel.get_map()):
        remaining = until - time.monotonic()
        if remaining <= 0:
            return "timeout"
        if not sel.get_map():  # every pipe closed, the child still running
            time.sleep(min(remaining, 0.05))
            continue
        for key, _ in sel.select(min(remaining, 0.05)):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fd)
            elif len(streams[key.fd]) + len(chunk) > caps[key.fd]:
                streams[key.fd] += chunk[:caps[key.fd] + 1 - len(streams[key.fd])]
                return "forbidden" if key.fd == results_fd else "output_limit"
            else:
                streams[key.fd] += chunk
    return None


def _exited(pid: int) -> bool:
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None  # leaves it a zombie


def _kill_all(pid: int, uid: int | None) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:
        _kill_uid(uid)


def _kill_uid(uid: int) -> None:
    """``kill(-1)`` as the run's own uid: every process it can signal, i.e. every one the program left."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(3):  # again, for a child forked while the first signal went out
                os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


# ------------------------------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class _Report:
    passed: frozenset[int]
    errors: tuple[str, ...]
    syntax_error: str | None
    done: bool


def _parse_report(raw: bytes, nonce: str, ntests: int) -> _Report | None:
    """The runner's lines; None when any is not its own (wrong nonce, unknown, repeated, after done)."""
    passed, errors, seen, syntax, done = set(), [], set(), None, False
    for line in raw.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict) or event.get("nonce") != nonce or done:
            return None
        kind, index, error = event.get("event"), event.get("index"), event.get("error")
        if kind == "test" and isinstance(index, int) and 0 <= index < ntests and index not in seen:
            seen.add(index)
            passed.update([index] if error is None else [])
            errors += [] if error is None else [f"test {index}: {error}"]
        elif kind == "syntax_error" and not seen:
            syntax = str(error)
        elif kind == "done":
            done = True
        else:
            return None
    return _Report(frozenset(passed), tuple(errors), syntax, done)


def _classify(stop: str | None, report: _Report | None, ntests: int, returncode: int, cpu: float,
              limits: SandboxLimits, stderr: bytes) -> str:
    if stop is not None:
        return stop  # output_limit, forbidden (results pipe flooded) or timeout: we killed it
    if report is None:
        return "forbidden"
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu >= limits.cpu_seconds):
        return "cpu_limit"
    if report.syntax_error is not None:
        return "syntax_error"
    if report.done and returncode == 0 and len(report.passed) == ntests:
        return "passed"
    if any(": MemoryError" in e for e in report.errors) or (
            not report.done and b"MemoryError" in stderr):
        return "memory"
    return "crashed" if returncode < 0 else "failed"
