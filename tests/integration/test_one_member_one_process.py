"""One member, one process: a second `relayer run` on the data directory of a running daemon (an
operator's slip, a second unit, a container restarted beside the old one) would share its sender
key and fight over nonces. It is refused with exit 2 naming the running pid, and the first daemon
carries on; once the first is gone (even by kill -9) the lock is free again. Key files that the
group or others may read are refused, as ssh refuses them, root or not."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from relayer import devnet
from tests.integration.daemon_runs import REPO, DaemonRuns
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonRuns]:
    directory = tmp_path_factory.mktemp("oneprocess")
    net = devnet.provision(directory, accounts=2, detach=False, progress=False, every_blocks=2)
    r = DaemonRuns(net)
    try:
        yield r
    finally:
        try:
            if r.process is not None and r.process.poll() is None:
                r.process.kill()
                r.process.wait()
        finally:
            devnet.stop(directory)


def relayer(runs: DaemonRuns, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", *args, "--config", str(runs.net.config_path)],
        capture_output=True, text=True, cwd=REPO, timeout=timeout,
    )  # fmt: skip


LOCK = "relayer.sqlite.lock"
"""The lock file beside the devnet's store (relayer/storage/lock.py)."""


def started(runs: DaemonRuns) -> bool:
    return '"daemon.started"' in runs.log.read_text()


def test_a_second_run_on_the_same_data_directory_exits_2_naming_the_pid(runs: DaemonRuns) -> None:
    first = runs.start()
    wait_for("the first daemon started", lambda: started(runs), 60)
    # the slip: a second unit with its own listener (so nothing else stops it), the same store
    twin = runs.net.directory / "twin.toml"
    text = runs.net.config_path.read_text()
    twin.write_text(re.sub(r'listen = "127\.0\.0\.1:\d+"', 'listen = "127.0.0.1:0"', text, count=1))
    second = subprocess.Popen(
        [sys.executable, "-m", "relayer.cli", "run", "--config", str(twin)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        _out, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:  # (the old code ran a second daemon beside the first)
            second.kill()
            second.wait()
    assert second.returncode == 2, err
    assert f"pid {first.pid}" in err and "in use by another relayer process" in err
    assert "Traceback" not in err
    assert (runs.net.directory / LOCK).read_text().strip() == str(first.pid)
    # the first is unharmed: it keeps running and settling
    assert first.poll() is None
    account = runs.accounts[0]
    target = int(runs.vault.functions.collateral(account).call()) + 10**15
    runs.src.eth.wait_for_transaction_receipt(
        runs.vault.functions.deposit().transact({"from": account, "value": 10**15})
    )
    wait_for("the first daemon settled a new deposit", lambda: runs.settled(account) == target, 60)
    assert first.poll() is None


def test_after_kill_9_the_lock_is_free_again(runs: DaemonRuns) -> None:
    if runs.process is None or runs.process.poll() is not None:
        runs.start()
        wait_for("a daemon started", lambda: started(runs), 60)
    assert runs.process is not None
    os.kill(runs.process.pid, signal.SIGKILL)
    assert runs.process.wait(timeout=30) == -signal.SIGKILL
    again = runs.start()
    wait_for("a new daemon started on the same data directory", lambda: started(runs) or again.poll() is not None, 60)
    assert again.poll() is None, runs.log.read_text()[-2000:]
    assert (runs.net.directory / LOCK).read_text().strip() == str(again.pid)
    runs.stop()


def test_a_key_file_readable_by_others_is_refused_and_0600_accepted(runs: DaemonRuns) -> None:
    key = runs.net.directory / "keys" / "sender.key"
    assert key.stat().st_mode & 0o777 == 0o600  # as devnet writes it
    key.chmod(0o644)
    try:
        checked = relayer(runs, "check-config")
        assert checked.returncode == 2, checked.stdout + checked.stderr
        refused = relayer(runs, "run")
        assert refused.returncode == 2, refused.stderr
        for text in (checked.stdout + checked.stderr, refused.stderr):
            assert str(key) in text and "mode 0644" in text and f"chmod 600 {key}" in text
        assert "Traceback" not in refused.stderr
    finally:
        key.chmod(0o600)
    runs.start()
    wait_for("the daemon started with its key at 0600", lambda: started(runs), 60)
    runs.stop()
