"""Each limit and attack of issue 14, run through execute() on this machine's sandbox."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from unittest import mock

import pytest
from helpers import wait_until

from object_challenge.runs import sandbox
from object_challenge.runs.execute import execute

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not os.path.exists(sandbox.BWRAP), reason="bubblewrap not installed")


class Events:
    def __init__(self):
        self.items = []  # (monotonic time, stream, data)

    def __call__(self, stream, data):
        self.items.append((time.monotonic(), stream, data))

    def text(self, stream="stdout"):
        return "".join(d for _, s, d in self.items if s == stream)


def run_py(source, *, limits=None, stdin="", events=None, **kw):
    small = {"wall_s": 5, "cpu_s": 2, "memory_mb": 128, "processes": 16, "output_kb": 16}
    return execute(
        "python",
        "run",
        [{"name": "main.py", "content": textwrap.dedent(source)}],
        stdin=stdin,
        limits={**small, **(limits or {})},
        on_event=events if events is not None else Events(),
        **kw,
    )


def run_uid_processes(marker):
    """Processes of the run uids whose command line contains ``marker``: runners of other
    stacks on this machine (make test in other checkouts) use the same uids."""
    found = []
    for uid in range(sandbox.RUN_UID_BASE, sandbox.RUN_UID_BASE + 8):
        for pid in sandbox._uid_pids(uid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker in f.read():
                        found.append(pid)
            except OSError:
                pass
    return found


def test_self_test_passes_here():
    ok, reason = sandbox.self_test()
    assert ok, reason


def test_hello_world_is_ok():
    events = Events()
    result = run_py("print('hello')", events=events)
    assert result["verdict"] == "ok"
    assert events.text() == "hello\n"
    assert result["stages"][0]["exit_code"] == 0


def test_infinite_loop_is_time_limit():
    started = time.monotonic()
    result = run_py("while True: pass", limits={"wall_s": 3, "cpu_s": 1})
    assert result["verdict"] == "time_limit"
    assert time.monotonic() - started < 4


def test_sleeping_past_wall_time_is_time_limit():
    result = run_py("import time; time.sleep(60)", limits={"wall_s": 1})
    assert result["verdict"] == "time_limit"
    assert result["stages"][0]["wall_ms"] < 2000


def test_fork_bomb_is_contained_and_the_machine_stays_healthy():
    result = run_py(
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        limits={"wall_s": 2, "processes": 16},
    )
    assert result["verdict"] in ("time_limit", "runtime_error")
    # SIGKILLed processes can take a moment to leave /proc on a loaded machine
    wait_until(lambda: run_uid_processes(b"main.py") == [], timeout=10, message="no process of a run uid left")
    assert subprocess.run(["true"], check=False).returncode == 0
    assert run_py("print('after')")["verdict"] == "ok"


def test_allocating_2gb_is_memory_limit_or_runtime_error():
    result = run_py(
        """
        blocks = []
        for _ in range(2048):
            blocks.append(bytearray(1024 * 1024))
        print('allocated')
        """,
        limits={"memory_mb": 128},
    )
    assert result["verdict"] in ("memory_limit", "runtime_error")


def test_writing_100mb_is_stopped_by_the_file_size_limit():
    # Python ignores SIGXFSZ, so the write fails with EFBIG instead of the signal
    events = Events()
    result = run_py(
        """
        with open('big', 'wb') as f:
            for _ in range(100):
                f.write(b'x' * (1024 * 1024))
        """,
        events=events,
    )
    assert result["verdict"] == "runtime_error"
    assert "File too large" in events.text("stderr")


def test_c_writing_100mb_gets_sigxfsz():
    source = textwrap.dedent("""
        #include <stdio.h>
        #include <string.h>
        int main(void) {
            static char mb[1 << 20];
            memset(mb, 'x', sizeof mb);
            FILE *f = fopen("big", "wb");
            for (int i = 0; i < 100; i++) fwrite(mb, 1, sizeof mb, f);
            fclose(f);
            return 0;
        }
        """)
    result = execute("c", "run", [{"name": "main.c", "content": source}])
    assert result["verdict"] == "runtime_error"
    assert result["stages"][-1]["signal"] == 25  # SIGXFSZ


def test_filling_tmp_is_stopped_by_the_tmpfs_size():
    events = Events()
    result = run_py(
        """
        import os
        n = 0
        try:
            for i in range(100):
                with open(f'/tmp/f{i}', 'wb') as f:
                    f.write(b'x' * (8 * 1024 * 1024))
                n += 8
        except OSError as e:
            print('stopped at', n, 'MB:', e.strerror)
        """,
        events=events,
    )
    assert result["verdict"] == "ok"
    assert "No space left on device" in events.text()


def test_printing_forever_is_output_limit_within_2s():
    started = time.monotonic()
    events = Events()
    result = run_py("while True: print('spam' * 20)", events=events, limits={"output_kb": 16})
    assert result["verdict"] == "output_limit"
    assert time.monotonic() - started < 2
    assert result["stages"][0]["truncated"] is True
    assert len(events.text().encode()) <= 16 * 1024


def test_tcp_connect_to_a_listening_port_outside_fails():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    events = Events()
    try:
        run_py(
            f"""
            import socket
            try:
                socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=2)
                print('connected')
            except OSError as e:
                print('refused', type(e).__name__)
            """,
            events=events,
        )
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert events.text().startswith("refused")


def test_worker_environment_and_files_outside_are_absent(monkeypatch):
    monkeypatch.setenv("OC_SECRET_TOKEN", "s3cr3t")
    events = Events()
    run_py(
        f"""
        import os
        print(sorted(os.environ))
        print('secret' if 's3cr3t' in str(os.environ) else 'no secret')
        for path in [{str(ROOT / "README.md")!r}, '/root', '/work', '/etc/passwd', '/home']:
            print(path, os.path.exists(path))
        """,
        events=events,
    )
    out = events.text()
    assert "no secret" in out and "OC_SECRET_TOKEN" not in out
    assert "True" not in out


def test_setsid_sleep_left_behind_is_gone_after_the_run():
    events = Events()
    result = run_py(
        """
        import subprocess
        p = subprocess.Popen(['setsid', 'sleep', '313'])
        print(p.pid)
        """,
        events=events,
    )
    assert result["verdict"] == "ok"
    assert run_uid_processes(b"sleep\x00313") == []
    # an unusual duration: a `sleep 300` of someone else on this machine is not ours
    sleepers = subprocess.run(["pgrep", "-f", "^sleep 313$"], capture_output=True, text=True, check=False)
    assert sleepers.stdout.strip() == ""


def test_output_arrives_while_the_program_runs():
    events = Events()
    started = time.monotonic()
    result = run_py(
        """
        import sys, time
        for i in range(8):
            print('tick', i)
            time.sleep(0.2)
        """,
        events=events,
    )
    ended = time.monotonic()
    assert result["verdict"] == "ok"
    ticks = [t for t, s, d in events.items if s == "stdout"]
    assert len(ticks) >= 4
    assert ticks[0] - started < 1.0 and ticks[0] < ended - 1.0


def test_c_output_arrives_while_the_program_runs():
    events = Events()
    started = time.monotonic()
    result = execute(
        "c",
        "run",
        [
            {
                "name": "main.c",
                "content": textwrap.dedent("""
        #include <stdio.h>
        #include <unistd.h>
        int main(void) {
            for (int i = 0; i < 6; i++) { printf("tick %d\\n", i); usleep(200000); }
            return 0;
        }
        """),
            }
        ],
        on_event=events,
    )
    ended = time.monotonic()
    assert result["verdict"] == "ok", events.items
    ticks = [t for t, s, d in events.items if s == "stdout"]
    assert len(ticks) >= 3 and ticks[0] < ended - 0.6, (started, ticks, ended)


def test_invalid_utf8_is_replaced():
    events = Events()
    result = run_py(r"import sys; sys.stdout.buffer.write(b'ok \xff\xfe end\n')", events=events)
    assert result["verdict"] == "ok"
    assert events.text() == "ok \ufffd\ufffd end\n"


def test_non_zero_exit_is_runtime_error():
    result = run_py("raise SystemExit(3)")
    assert result["verdict"] == "runtime_error"
    assert result["stages"][0]["exit_code"] == 3


def test_cancel_kills_within_2s():
    started = time.monotonic()
    result = run_py(
        "import time; time.sleep(30)", limits={"wall_s": 30}, should_cancel=lambda: time.monotonic() - started > 0.5
    )
    assert result["cancelled"] is True and result["verdict"] is None
    assert time.monotonic() - started < 2.5
    assert run_uid_processes(b"main.py") == []


def test_args_are_an_argv_never_a_shell():
    events = Events()
    run_py("import sys; print(sys.argv[1:])", args=["$(id)", "; rm -rf /", "a b"], events=events)
    assert events.text() == "['$(id)', '; rm -rf /', 'a b']\n"


def test_c_program_reads_stdin():
    events = Events()
    result = execute(
        "c",
        "run",
        [
            {
                "name": "main.c",
                "content": textwrap.dedent("""
        #include <stdio.h>
        int main(void) {
            int a, b;
            if (scanf("%d %d", &a, &b) != 2) return 1;
            printf("%d\\n", a + b);
            return 0;
        }
        """),
            }
        ],
        stdin="40 2\n",
        on_event=events,
    )
    assert result["verdict"] == "ok", events.items
    assert events.text() == "42\n"
    assert [s["stage"] for s in result["stages"]] == ["build", "run"]


def test_c_build_error_is_build_error():
    events = Events()
    result = execute("c", "run", [{"name": "main.c", "content": "int main(void) { return x; }\n"}], on_event=events)
    assert result["verdict"] == "build_error"
    assert "undeclared" in events.text("stderr")
    assert [s["stage"] for s in result["stages"]] == ["build"]


def test_ada_hello_world():
    events = Events()
    result = execute(
        "ada",
        "run",
        [
            {
                "name": "hello.adb",
                "content": textwrap.dedent("""
        with Ada.Text_IO;
        procedure Hello is
        begin
           Ada.Text_IO.Put_Line ("Hello from Ada");
        end Hello;
        """),
            }
        ],
        on_event=events,
    )
    assert result["verdict"] == "ok", events.items
    assert events.text() == "Hello from Ada\n"


def test_build_mode_only_builds():
    events = Events()
    result = execute("c", "build", [{"name": "main.c", "content": "int main(void){return 0;}\n"}], on_event=events)
    assert result["verdict"] == "ok"
    assert [s["stage"] for s in result["stages"]] == ["build"]


def test_python_build_mode_reports_a_syntax_error():
    result = execute("python", "build", [{"name": "main.py", "content": "def f(:\n"}])
    assert result["verdict"] == "build_error"


@pytest.mark.skipif(os.geteuid() != 0, reason="run uids and cgroups need a root worker")
def test_the_program_runs_as_the_run_uid_without_capabilities_in_its_cgroups_with_its_limits():
    """Seen from outside while it runs: bwrap is spawned from a worker thread that takes
    the run uid and joins the run's cgroups alone, and the rlimits are set on the
    sandbox's pid 1 before it is released (sandbox.run)."""
    seen = {}

    def look(stream, data):
        if stream != "stdout" or "ready" not in data or seen:
            return
        for pid in run_uid_processes(b"main.py"):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if not f.read().startswith(b"/usr/bin/python3\x00"):
                    continue  # bwrap (outside, and the sandbox's pid 1): its argv names main.py too
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            with open(f"/proc/{pid}/cgroup") as f:
                cgroups = f.read()
            with open(f"/proc/{pid}/limits") as f:
                limits = f.read()
            seen[pid] = (status, cgroups, limits)

    result = run_py(
        "import time; print('ready', flush=True); time.sleep(1.5)",
        limits={"processes": 16, "memory_mb": 128},
        events=look,
    )
    assert result["verdict"] == "ok"
    assert seen, "the program was not found from outside"
    for status, cgroups, limits in seen.values():
        uids = set(status["Uid"].split()) | set(status["Gid"].split())
        assert len(uids) == 1 and sandbox.RUN_UID_BASE <= int(uids.pop()) < sandbox.RUN_UID_BASE + sandbox.RUN_UID_COUNT
        assert status["Groups"].strip() == ""
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0 and int(status["CapAmb"], 16) == 0
        for controller in ("memory", "pids", "cpuacct"):
            assert f":{controller}:" in cgroups and "/oc-run-" in cgroups.split(f":{controller}:")[1].split("\n")[0]
        lines = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
        assert lines["Max processes"][:2] == ["19", "19"]
        assert lines["Max address space"][:2] == [str(128 * 1024 * 1024)] * 2
        assert lines["Max open files"][:2] == ["64", "64"]
        assert lines["Max core file size"][:2] == ["0", "0"]
    # the worker thread is back in its own cgroups, network namespace and ids
    assert "/oc-run-" not in Path("/proc/thread-self/cgroup").read_text()
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink(f"/proc/{os.getppid()}/ns/net")
    assert os.geteuid() == 0 and os.getegid() == 0


def test_the_program_has_a_network_namespace_without_interfaces_of_its_own():
    events = Events()
    result = run_py(
        """
        import os
        names = [line.split(':')[0].strip() for line in open('/proc/net/dev').read().splitlines()[2:]]
        flags = open('/sys/class/net/lo/flags').read().strip() if os.path.exists('/sys/class/net/lo') else None
        print(os.readlink('/proc/self/ns/net'), ','.join(names))
        """,
        events=events,
    )
    assert result["verdict"] == "ok", events.text("stderr")
    netns, names = events.text().split()
    assert netns != os.readlink("/proc/self/ns/net")
    assert names == "lo"


@pytest.mark.skipif(os.geteuid() != 0, reason="prepared network namespaces need a root worker")
def test_a_run_uid_network_namespace_left_with_a_socket_is_replaced():
    """A run uid's network namespace is reused by its next run only if no socket is left in it."""
    uid = sandbox.RUN_UID_BASE + sandbox.RUN_UID_COUNT - 4
    fd = sandbox._netns_for(uid)
    assert fd is not None, sandbox._netns_refused
    first = os.fstat(fd).st_ino
    assert os.fstat(sandbox._netns_for(uid)).st_ino == first  # empty: reused
    with sandbox._thread_in_netns(fd):
        left = socket.socket(socket.AF_UNIX)
        left.bind(b"\0oc-test-left-behind")
    try:
        replaced = sandbox._netns_for(uid)
        assert os.fstat(replaced).st_ino != first
        with sandbox._thread_in_netns(replaced):
            assert Path("/proc/thread-self/net/unix").read_text().count("\n") == 1  # the header only
    finally:
        left.close()
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink(f"/proc/{os.getppid()}/ns/net")


def test_the_work_directory_is_deleted_after_the_run():
    """Off the run's critical path (sandbox.discard_dir), but deleted."""
    seen = []
    real_mkdtemp = sandbox.tempfile.mkdtemp

    def remember(*args, **kw):
        seen.append(real_mkdtemp(*args, **kw))
        return seen[-1]

    with mock.patch.object(sandbox.tempfile, "mkdtemp", remember):
        assert run_py("print('hi')")["verdict"] == "ok"
    assert len(seen) == 1
    wait_until(lambda: not os.path.exists(seen[0]), timeout=10, message="the work directory is deleted")


def test_a_worker_that_exits_right_after_a_run_leaves_no_work_directory():
    """The deleting thread is a daemon: at exit the worker finishes its backlog itself."""
    tmp_path = Path(tempfile.mkdtemp(prefix="oc-test-discard-"))  # the run uid must reach it
    os.chmod(tmp_path, 0o711)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from object_challenge.runs import sandbox
        from object_challenge.runs.execute import execute

        sandbox.tempfile.tempdir = {str(tmp_path)!r}
        for _ in range(3):
            assert execute("python", "run", [{{"name": "main.py", "content": "print(1)"}}])["verdict"] == "ok"
        """
    )
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        assert list((tmp_path / "oc-runs").iterdir()) == []
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="run uids need a root worker")
def test_a_run_uid_left_without_the_clean_mark_is_swept_when_taken(monkeypatch):
    """A box that ends with every process gone marks its uid clean, and the next box
    skips the /proc sweep; a crashed worker leaves no mark, so its leftovers die."""
    uid = sandbox.RUN_UID_BASE + sandbox.RUN_UID_COUNT - 3  # a uid other runs rarely reach
    monkeypatch.setattr(sandbox, "RUN_UID_BASE", uid)
    monkeypatch.setattr(sandbox, "RUN_UID_COUNT", 1)
    try:
        with sandbox.Box(cgroups=False) as box:
            assert box.uid == uid
    except sandbox.SandboxError:
        pytest.skip(f"uid {uid} is taken by another run on this machine")
    lock = Path(sandbox.UID_LOCK_DIR, str(uid))
    assert lock.read_bytes() == sandbox.CLEAN_MARK
    leftover = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "317"])
    try:
        wait_until(lambda: sandbox._uid_pids(uid), timeout=10, message="the leftover runs as the run uid")
        lock.write_bytes(sandbox.BUSY_MARK)  # as a worker that crashed with its box open
        with sandbox.Box(cgroups=False):
            pass
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        assert lock.read_bytes() == sandbox.CLEAN_MARK
    finally:
        leftover.kill()
        leftover.wait()
