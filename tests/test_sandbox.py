"""The sandbox behind the ``python_tests`` verifier: verdicts, limits, isolation, forging, cleanup.

Small limits everywhere, so each test takes well under a few seconds; checks that need namespaces or root
are skipped where the machine cannot give them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline import sandbox as sb

REPO = Path(__file__).resolve().parent.parent
ADD = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add('a', 'b') == 'ab'"]
SMALL = sb.SandboxLimits(wall_seconds=3, cpu_seconds=1, memory_mb=128, output_bytes=4096, max_processes=8)
MARGIN = 2.0  # seconds past a limit that a loaded 2-core machine may take to notice and kill
ISOLATION = sb.isolation_available()
needs_fs = pytest.mark.skipif("filesystem" not in ISOLATION, reason="needs mount namespaces")
needs_per_run_uid = pytest.mark.skipif("per_run_uid" not in ISOLATION, reason="needs root and a full uid map")


def run(code: str, tests=TESTS, limits: sb.SandboxLimits = SMALL, **kw) -> sb.RunResult:
    result = sb.run_tests(code, tests, limits, **kw)
    assert result.reason in sb.REASONS
    return result


def sandbox_processes() -> list[str]:
    """Live (not zombie) processes of any per-run sandbox uid."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid >= sb.UID_BASE and \
                    Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(pid)
        except (OSError, IndexError):
            continue
    return found


# --------------------------------------------------------------------------------------------- verdicts
def test_a_correct_solution_passes():
    result = run(ADD + "import os\nassert not os.path.exists('spec.json')  # the nonce is gone before us\n")
    assert (result.passed, result.reason, result.returncode) == (True, "passed", 0)
    assert (result.tests_passed, result.tests_total, result.errors) == (3, 3, ())
    assert result.seconds < SMALL.wall_seconds


def test_a_wrong_solution_fails_with_counts_and_errors():
    result = run("def add(a, b):\n    return a - b if isinstance(a, int) else a + b\n")
    assert (result.passed, result.reason, result.tests_passed, result.tests_total) == (False, "failed", 1, 3)
    assert [e.split(":")[0] for e in result.errors] == ["test 0", "test 1"]
    assert all("AssertionError" in e for e in result.errors)


def test_setup_runs_after_the_code_and_before_the_tests():
    assert run(ADD, ["assert add(X, 1) == 3"], setup="X = 2").passed


def test_a_solution_that_raises_fails_every_test():
    result = run(ADD + "raise ValueError('boom')\n")
    assert (result.reason, result.tests_passed, len(result.errors)) == ("failed", 0, 3)
    assert "the solution failed: ValueError: boom" in result.errors[0]


def test_a_syntax_error():
    result = run("def add(a, b)\n    return a + b\n")
    assert (result.passed, result.reason, result.tests_passed) == (False, "syntax_error", 0)


def test_print_and_main_blocks():
    # __name__ is "solution": a demo under `if __name__ == "__main__"` (often reading input()) does not run.
    result = run(ADD + "print('hello')\nif __name__ == '__main__':\n    input()\n")
    assert result.passed and result.stdout == "hello\n"


def test_no_tests_and_bad_limits_are_refused():
    with pytest.raises(ValueError, match="at least one test"):
        sb.run_tests(ADD, [])
    with pytest.raises(ValueError, match="cpu_seconds must be > 0"):
        sb.SandboxLimits(cpu_seconds=0)


# --------------------------------------------------------------------------------------------- limits
def test_an_idle_loop_times_out_on_the_wall_clock():
    limits = sb.SandboxLimits(wall_seconds=1, cpu_seconds=1)
    result = run("import time\ntime.sleep(60)\n", limits=limits)
    assert (result.passed, result.reason) == (False, "timeout")
    assert result.seconds < limits.wall_seconds + MARGIN


def test_a_busy_loop_hits_the_cpu_limit_or_the_wall_clock():
    limits = sb.SandboxLimits(wall_seconds=3, cpu_seconds=1)
    result = run("while True:\n    pass\n", limits=limits)
    assert result.reason in ("cpu_limit", "timeout")
    assert result.seconds < limits.wall_seconds + MARGIN


def test_a_fork_bomb_is_contained():
    start = time.monotonic()
    result = run("import os\nwhile True:\n    os.fork()\n")
    assert not result.passed and result.reason != "passed"
    assert time.monotonic() - start < SMALL.wall_seconds + MARGIN
    assert sandbox_processes() == []


@needs_per_run_uid
def test_processes_that_left_the_process_group_are_killed_too():
    code = ADD + "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n"
    assert run(code).passed
    assert sandbox_processes() == []


@pytest.mark.parametrize("stream", ["sys.stdout", "sys.stderr"])
def test_huge_output_is_cut_and_the_program_killed(stream):
    result = run(f"import sys\nwhile True:\n    {stream}.write('x' * 1000)\n")
    assert (result.passed, result.reason) == (False, "output_limit")
    out = result.stdout if stream == "sys.stdout" else result.stderr
    assert SMALL.output_bytes - 1000 <= len(out.encode()) <= SMALL.output_bytes
    assert result.seconds < SMALL.wall_seconds


def test_a_memory_hog_gets_a_memory_error():
    result = run(ADD + "hog = bytearray(2 * 10**9)\n")
    assert (result.passed, result.reason) == (False, "memory")
    assert "MemoryError" in result.errors[0]


def test_a_big_file_is_refused():
    result = run(ADD + "open('big', 'wb').write(b'x' * (2 * 1024 * 1024))\n")  # file_size_mb is 1
    assert result.reason == "failed" and "File too large" in result.errors[0]


# --------------------------------------------------------------------------------------------- isolation
def test_the_parents_secrets_are_not_passed_on(monkeypatch):
    secret = "sk-test-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    code = ADD + (
        "import json, os\n"
        "print(json.dumps(dict(os.environ)))\n"
        "for path in ('/proc/self/environ', '/proc/%d/environ' % os.getppid(), '/proc/1/environ'):\n"
        "    try:\n"
        "        print(open(path, 'rb').read())\n"
        "    except OSError as e:\n"
        "        print(e)\n")
    result = run(code, TESTS + ["import os\nos.environ['OPENAI_API_KEY']"])
    assert (result.reason, result.tests_passed) == ("failed", 3)
    assert "KeyError" in result.errors[0]
    assert secret not in repr(result) and "PYTHONPATH" not in result.stdout
    assert json.loads(result.stdout.splitlines()[0]) == {"PATH": "/usr/local/bin:/usr/bin:/bin",
                                                         "LANG": "C.UTF-8"}


def test_nothing_can_be_written_outside_its_folder(tmp_path):
    mine = tmp_path / "private"
    mine.mkdir(mode=0o700)
    targets = [REPO / f"sandbox_escape_{uuid.uuid4().hex}", Path(f"/tmp/sandbox_escape_{uuid.uuid4().hex}"),
               mine / "escape", Path(f"/var/tmp/sandbox_escape_{uuid.uuid4().hex}")]
    code = ADD + "wrote = []\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('x')\n    wrote.append({str(t)!r})\nexcept OSError:\n    pass\n"
        for t in targets) + "open('inside', 'w').write('x')  # its own folder is writable\n"
    result = run(code, TESTS + [f"assert {str(REPO / 'sandbox_escape')!r} not in ' '.join(wrote)"])
    assert result.passed, result
    assert [t for t in targets if t.exists()] == []


# A checkout inside /tmp (or another folder the sandbox covers with a fresh one) is not there at all in a run.
REPO_COVERED = "filesystem" in ISOLATION and any(REPO.is_relative_to(Path(d).resolve()) for d in sb._WRITABLE)


@pytest.mark.skipif("uid" not in ISOLATION, reason="needs root")
def test_without_hidden_folders_the_uid_alone_keeps_the_repo_unwritable():
    target = REPO / f"sandbox_escape_{uuid.uuid4().hex}"
    code = ADD + f"open({str(target)!r}, 'w')\n"
    result = run(code, hidden=[])
    error = "FileNotFoundError" if REPO_COVERED else "PermissionError"
    assert result.reason == "failed" and error in result.errors[0] and not target.exists()
    if not REPO_COVERED:  # ...but world-readable files are readable then: what hiding the project is for.
        assert run(ADD + f"open({str(REPO / 'README.md')!r}).read()\n", hidden=[]).passed


@needs_fs
def test_the_project_and_home_are_hidden():
    code = ADD + (f"import os\nseen = (os.listdir({str(REPO)!r}) if os.path.isdir({str(REPO)!r}) else []) + "
                  "os.listdir(os.path.expanduser('~root'))\n")
    result = run(code, TESTS + ["assert seen == []", "assert not os.path.exists('/proc/1')"])
    assert result.passed, result


def test_forging_a_result_on_stdout_does_not_pass():
    fake = json.dumps({"nonce": "0" * 32, "event": "done", "index": -1, "error": None})
    code = "import os\n" + "".join(
        f"print({json.dumps({'nonce': '0' * 32, 'event': 'test', 'index': i, 'error': None})!r})\n"
        for i in range(3)) + f"print({fake!r})\nprint('3 passed')\nos._exit(0)\n"
    result = run(code)
    assert (result.passed, result.reason, result.tests_passed) == (False, "failed", 0)


def test_forging_a_result_on_every_descriptor_is_caught():
    line = json.dumps({"nonce": "0" * 32, "event": "done", "index": -1, "error": None}) + "\n"
    code = f"import os, sys\nfor fd in [int(sys.argv[1]), *range(3, 1024)]:\n    try:\n" \
           f"        os.write(fd, {line.encode()!r})\n    except OSError:\n        pass\nos._exit(0)\n"
    result = run(code)
    assert (result.passed, result.reason) == (False, "forbidden")


@pytest.mark.parametrize("trick", [
    "import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.compile = lambda *a, **k: None\n",
    "import json, os\njson.dumps = lambda *a, **k: 'x'\nos.write = lambda *a: 0\nos._exit = lambda *a: None\n",
    "import sys\nsys.exit(0)\n",
    "raise SystemExit(0)\n",
])
def test_cheap_tricks_do_not_turn_a_wrong_solution_into_a_pass(trick):
    result = run("def add(a, b):\n    return None\n" + trick)
    assert not result.passed and result.tests_passed == 0


def test_the_network_is_unreachable_even_on_localhost():
    if not sb.network_isolation_available():
        pytest.skip("needs network namespaces")
    with socket.socket() as listener:  # only ever 127.0.0.1
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = run(ADD + f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n")
        assert result.reason == "failed" and "Error" in result.errors[0]  # unreachable, or refused
        with pytest.raises(BlockingIOError):
            listener.accept()


# --------------------------------------------------------------------------------------------- cleanup
@pytest.mark.parametrize("code, limits", [
    (ADD, SMALL),
    (ADD + "open('left_behind', 'w').write('x')\nos.mkdir('sub')\n", SMALL),
    ("time.sleep(60)\n", sb.SandboxLimits(wall_seconds=1)),
])
def test_the_temporary_folder_is_removed_after_every_run(code, limits):
    result = run("import os, sys, time\nprint(os.getcwd(), flush=True)\n" + code, limits=limits)
    folder = result.stdout.splitlines()[0]
    assert Path(folder).name.startswith("sandbox-")
    assert not os.path.exists(folder)


def test_concurrent_runs_get_their_own_uid():
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(ADD + "import os\nprint(os.getuid())\n"), range(4)))
    assert all(r.passed for r in results)
    uids = {int(r.stdout) for r in results}
    assert len(uids) == (4 if "per_run_uid" in ISOLATION else 1 if "uid" in ISOLATION else len(uids))


@pytest.mark.skipif(os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                    reason="runs the sandbox as an unprivileged user, which needs root to set up")
def test_the_sandbox_also_works_for_an_unprivileged_user():
    # As nobody: no uid switch; a user namespace gives the network and mount namespaces when the kernel allows.
    cases = [(ADD, TESTS), ("def add(a, b):\n    return None\n", TESTS),
             ("import os\nwhile True:\n    os.fork()\n", TESTS)]
    script = (f"import json, sys\nsys.path.insert(0, {str(REPO)!r})\nfrom pipeline import sandbox as sb\n"
              "limits = sb.SandboxLimits(wall_seconds=3, cpu_seconds=1, max_processes=8)\n"
              f"runs = [sb.run_tests(code, tests, limits) for code, tests in {cases!r}]\n"
              "print(json.dumps([sb.isolation_available()] + [[r.reason, r.tests_passed] for r in runs]))\n")
    done = subprocess.run(["/usr/bin/python3", "-I", "-c", script], check=False, user=65534, group=65534,
                          extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    isolation, good, bad, bomb = json.loads(done.stdout)
    assert "uid" not in isolation and (good, bad) == (["passed", 3], ["failed", 0]) and bomb[0] != "passed"
