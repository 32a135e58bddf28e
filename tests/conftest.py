"""Shared fixtures, the "measured" summary, and where the SocketCAN tier (``-m socketcan``) runs.

The tier needs a real SocketCAN ``vcan0`` (``CHARGER_SIM_VCAN`` names another channel):

- this kernel has it up (a Linux host with vcan, or the User-Mode Linux guest of ``.ci/vcan_uml.sh``):
  the tests run here;
- no ``vcan0``, but ``.ci/vcan_uml.sh --check`` says its kernel is installed: the selected tier tests
  run in ONE guest run of the script, started with the test loop (alongside the other tests), and
  each test here reports the guest's outcome and output for it (a guest run that fails without a
  test to blame fails the last one); ``CHARGER_SIM_VCAN_UML=0`` turns this off;
- neither: the tests skip, with one line saying how to get one or the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
UML_SCRIPT = ROOT / ".ci" / "vcan_uml.sh"
GUEST_ENV = "CHARGER_SIM_VCAN_VM"  # set by .ci/vcan_uml.sh inside its guest
REPORT_ENV = "CHARGER_SIM_GUEST_REPORT"  # inside the guest: where to write the per-test reports


@pytest.fixture
def scenarios_dir() -> Path:
    return ROOT / "scenarios"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures some tests report without asserting them tightly (e.g. cadence measured on vcan0)."""
    from tests.buses import REPORT

    if REPORT:
        terminalreporter.section("measured")
        for line in REPORT:
            terminalreporter.write_line(line)


# ---- the SocketCAN tier: here, in User-Mode Linux, or skipped ------------------------------------------
def vcan_channel() -> str:
    return os.environ.get("CHARGER_SIM_VCAN", "vcan0")


def vcan_available(channel: str) -> bool:
    """``channel`` exists, is up (IFF_UP) and a CAN_RAW socket binds to it."""
    try:
        if not int(Path(f"/sys/class/net/{channel}/flags").read_text(), 16) & 0x1:
            return False
    except (OSError, ValueError):
        return False
    if not hasattr(socket, "AF_CAN"):
        return False
    try:
        with socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW) as s:
            s.bind((channel,))
    except OSError:
        return False
    return True


def uml_available() -> bool:
    """The script's kernel and busybox are installed (``.ci/vcan_uml.sh --check``, installs nothing)."""
    bash = shutil.which("bash")
    if os.environ.get("CHARGER_SIM_VCAN_UML") == "0" or bash is None or not sys.platform.startswith("linux"):
        return False
    try:
        check = [bash, str(UML_SCRIPT), "--check"]
        return subprocess.run(check, capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def skip_reason(channel: str) -> str:
    if os.environ.get(GUEST_ENV):
        return f"no SocketCAN {channel} in the {os.environ[GUEST_ENV]} guest (VCAN_VM_IFACES must name it)"
    if os.environ.get("CHARGER_SIM_VCAN_UML") == "0":
        return f"no SocketCAN {channel} here, and CHARGER_SIM_VCAN_UML=0 keeps the tier out of UML"
    return (
        f"no SocketCAN {channel} here and no User-Mode Linux kernel for .ci/vcan_uml.sh: "
        "install it (as root: bash .ci/vcan_uml.sh --setup, Debian packages user-mode-linux "
        f"busybox-static) or bring up {channel} "
        f"(ip link add dev {channel} type vcan && ip link set up {channel})"
    )


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: only the selected tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tier = [item for item in items if item.get_closest_marker("socketcan")]
    if not tier:
        return
    channel = vcan_channel()
    if vcan_available(channel):
        return  # run them here
    if os.environ.get(GUEST_ENV) or not uml_available():
        skip = pytest.mark.skip(reason=skip_reason(channel))
        for item in tier:
            item.add_marker(skip)
        return
    guest = config.stash[GUEST] = GuestRun([item.nodeid for item in tier])
    proxies = {item.nodeid: GuestItem.proxy(item, guest) for item in tier}
    items[:] = [proxies.get(item.nodeid, item) for item in items]


class GuestFailure(Exception):
    """A test that failed (or was not run) in the guest: the message is the guest's report."""


class GuestRun:
    """One run of ``.ci/vcan_uml.sh python -m pytest NODEIDS`` for all the selected tier tests.

    It starts when the test loop starts (the guest's real-time tests then run alongside the host's
    simulated-time ones, on another CPU) and is waited for by the first tier test; a session that ends
    first (``-x``, Ctrl-C) ends it.
    """

    def __init__(self, nodeids: list[str]) -> None:
        self.nodeids = nodeids
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self.returncode: int | None = None
        self.output = ""
        self.blamed: str | None = None  # the test a failed run without a failed test is reported on
        self._proc: subprocess.Popen[bytes] | None = None
        self._work: Path | None = None
        self._started = 0.0

    def start(self) -> None:
        if self._work is not None:
            return
        # under ROOT (the one host folder the guest may write to), in a git-ignored folder
        cache = ROOT / ".pytest_cache"
        cache.mkdir(exist_ok=True)
        self._work = Path(tempfile.mkdtemp(prefix="socketcan-guest-", dir=cache))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_CURRENT")}
        env[REPORT_ENV] = str(self._work / "reports.jsonl")
        pytest_cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *self.nodeids]
        self._started = time.monotonic()
        try:
            with (self._work / "output.txt").open("wb") as out:
                self._proc = subprocess.Popen(
                    ["bash", str(UML_SCRIPT), *pytest_cmd],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own session: stop() finds every process of the run
                )
        except OSError as err:
            self.returncode, self.output = 125, f"cannot run .ci/vcan_uml.sh: {err}"

    def wait(self) -> None:
        """Wait for the guest run (starting it if need be) and read its reports, once."""
        self.start()
        if self._proc is not None and self.returncode is None:
            self.returncode = self._proc.wait()
            self._collect(time.monotonic() - self._started)

    def _collect(self, elapsed: float) -> None:
        from tests.buses import REPORT

        assert self._work is not None
        self.output = (self._work / "output.txt").read_text(encoding="utf-8", errors="replace")
        path = self._work / "reports.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        shutil.rmtree(self._work, ignore_errors=True)
        for line in lines:
            entry = json.loads(line)
            if "measured" in entry:
                REPORT.extend(f"{text} (in User-Mode Linux)" for text in entry["measured"])
            else:
                self.reports.setdefault(entry["nodeid"], []).append(entry)
        failed = any(e["outcome"] == "failed" for entries in self.reports.values() for e in entries)
        if self.returncode != 0 and not failed:
            self.blamed = self.nodeids[-1]
        REPORT.append(
            f"socketcan tier: {len(self.nodeids)} test(s) run in User-Mode Linux by .ci/vcan_uml.sh "
            f"(no {vcan_channel()} here), {elapsed:.0f} s from the start of the tests, "
            f"exit status {self.returncode}"
        )

    def stop(self) -> None:
        """End a run still going (the session ended first): the script and all its descendants
        (timeout, the UML kernel's processes, which run in a session of their own)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            family = _descendants(proc.pid)

            def alive() -> list[int]:
                proc.poll()  # reap the script itself
                return [pid for pid, started in family if _start_time(pid) == started]

            for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
                for pid in alive():
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
                end = time.monotonic() + grace
                while alive() and time.monotonic() < end:
                    time.sleep(0.1)
                if not alive():
                    break
        if self._work is not None and self.returncode is None:
            shutil.rmtree(self._work, ignore_errors=True)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ..., starttime at index 19)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return None if fields is None or fields[0] in ("Z", "X") else fields[19]


def _descendants(root: int) -> list[tuple[int, str]]:
    """``root`` and every process below it, with their start times."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    family, todo = [], [root]
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if started is not None:
            family.append((pid, started))
        todo += children.get(pid, [])
    return family


GUEST = pytest.StashKey[GuestRun]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    guest = session.config.stash.get(GUEST, None)
    if guest is not None and not session.config.option.collectonly:
        guest.start()
        # a SIGTERM (a CI timeout) ends this session like Ctrl-C, so that sessionfinish ends the guest
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            with contextlib.suppress(ValueError):  # not the main thread: leave it
                signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    guest = session.config.stash.get(GUEST, None)
    if guest is not None:
        guest.stop()
    _write_guest_measured()


class GuestItem(pytest.Item):
    """Stands for a tier test that runs in the guest: reports its outcome and output there."""

    def __init__(self, *, guest: GuestRun, original: pytest.Item, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guest = guest
        self.original = original
        # the test's own marks, but not the skip/xfail conditions: those are evaluated in the guest
        local = {"skip", "skipif", "xfail", "usefixtures"}
        self.own_markers = [m for m in original.own_markers if m.name not in local]

    @classmethod
    def proxy(cls, item: pytest.Item, guest: GuestRun) -> GuestItem:
        assert item.parent is not None
        proxy: GuestItem = cls.from_parent(item.parent, name=item.name, guest=guest, original=item)
        return proxy

    def runtest(self) -> None:
        guest = self.guest
        guest.wait()
        entries = guest.reports.get(self.nodeid, [])
        for title, content in entries[-1]["sections"] if entries else ():  # the last report has them all
            parts = title.split()  # "Captured stdout call"
            if len(parts) == 3 and parts[0] == "Captured":
                self.add_report_section(parts[2], parts[1], content)
        failures = [e for e in entries if e["outcome"] == "failed"]
        if failures:
            raise GuestFailure(
                "\n".join(f"(in User-Mode Linux, {e['when']})\n{e['longrepr']}" for e in failures)
            )
        if not entries:
            raise GuestFailure(
                f"not run in the guest: .ci/vcan_uml.sh exited {guest.returncode}; its output ends:\n"
                f"{guest.tail()}"
            )
        skipped = [e for e in entries if e["outcome"] == "skipped"]
        if self.nodeid == guest.blamed:
            raise GuestFailure(
                f"the guest run failed (.ci/vcan_uml.sh exited {guest.returncode}) though no test "
                f"failed there; its output ends:\n{guest.tail()}"
            )
        if skipped:
            pytest.skip(f"(in User-Mode Linux) {skipped[0]['reason']}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GuestFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.original.reportinfo()


# ---- inside the guest: write every test's report for the host ------------------------------------------
def _guest_report_path() -> Path | None:
    path = os.environ.get(REPORT_ENV)
    return Path(path) if path and os.environ.get(GUEST_ENV) else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = _guest_report_path()
    if path is None:
        return
    reason = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    entry = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "longrepr": report.longreprtext if report.failed else "",
        "reason": reason,
        "sections": [list(s) for s in report.sections],
    }
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def _write_guest_measured() -> None:
    path = _guest_report_path()
    if path is None:
        return
    from tests.buses import REPORT

    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"measured": list(REPORT)}) + "\n")
