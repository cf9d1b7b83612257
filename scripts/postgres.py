"""Start and stop a throw-away PostgreSQL server for the production-storage tests.

    eval "$(python scripts/postgres.py start)"   # prints `export DAGSTER_PG_...=...` lines
    python scripts/postgres.py stop              # stops it and removes its folder

Uses Debian's binaries (/usr/lib/postgresql/<highest version>/bin; installed with apt-get when
absent and running as root). ``initdb`` refuses to run as root, so as root the cluster belongs to
the ``postgres`` user (or a system user created for it). The cluster lives in a temporary folder,
listens on 127.0.0.1 on a free port (its Unix socket in the same folder), and a state file records
where, so ``stop`` can find it. Only stdout carries the export lines; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STATE = Path(tempfile.gettempdir()) / (
    "legal_rag_postgres_" + hashlib.sha256(str(REPO).encode()).hexdigest()[:12] + ".json"
)
DB_USER = "dagster"
DB_NAME = "dagster"
SYSTEM_USER = "legal-rag-pg"


def _log(message: str) -> None:
    print(f"[postgres] {message}", file=sys.stderr, flush=True)


def find_bin_dir(install: bool = True) -> Path:
    """The bin folder of the highest installed PostgreSQL version (installing it as root if absent)."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
    )
    if candidates:
        return candidates[-1]
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        _log("no PostgreSQL binaries: installing Debian's postgresql package")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=sys.stderr, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"], check=True, stdout=sys.stderr, env=env
        )
        return find_bin_dir(install=False)
    raise SystemExit(
        "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin: install Debian's `postgresql` package"
    )


def _run_as_user() -> tuple[list[str], str | None]:
    """(command prefix, user) to run initdb/pg_ctl unprivileged; no prefix when not root."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", SYSTEM_USER):
        try:
            pwd.getpwnam(name)
            break
        except KeyError:
            continue
    else:
        name = SYSTEM_USER
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            stdout=sys.stderr,
        )
    runner = shutil.which("runuser")
    prefix = [runner, "-u", name, "--"] if runner else ["su", "-s", "/bin/sh", name, "-c"]
    return prefix, name


def _as_user(prefix: list[str], argv: list[str]) -> list[str]:
    if prefix and prefix[0] == "su":  # su takes one shell string
        return [*prefix, shlex.join(argv)]
    return [*prefix, *argv]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_of(state: dict) -> dict[str, str]:
    return {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(state["port"]),
        "DAGSTER_PG_USERNAME": DB_USER,
        "DAGSTER_PG_PASSWORD": state["password"],
        "DAGSTER_PG_DB": DB_NAME,
    }


def _is_running(state: dict) -> bool:
    pg_ctl = Path(state["bin_dir"]) / "pg_ctl"
    prefix, _ = _run_as_user()
    result = subprocess.run(
        _as_user(prefix, [str(pg_ctl), "-D", state["data_dir"], "status"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return result.returncode == 0


def start(state_file: Path = DEFAULT_STATE) -> dict:
    """Start a cluster (or reuse the running one recorded in ``state_file``); return its state."""
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if Path(state.get("data_dir", "")).is_dir() and _is_running(state):
            _log(f"reusing the server on port {state['port']} ({state['root']})")
            return state
        stop(state_file)

    bin_dir = find_bin_dir()
    prefix, user = _run_as_user()
    # As root the unprivileged owner must be able to reach the folder: /tmp, not a private TMPDIR.
    root = Path(tempfile.mkdtemp(prefix="legal_rag_pg_", dir="/tmp" if user and Path("/tmp").is_dir() else None))
    data_dir, log_file, pw_file = root / "data", root / "server.log", root / "pw"
    password = secrets.token_hex(16)
    pw_file.write_text(password + "\n")
    if user:
        info = pwd.getpwnam(user)
        os.chown(root, info.pw_uid, info.pw_gid)
        os.chown(pw_file, info.pw_uid, info.pw_gid)
    os.chmod(root, 0o700)
    os.chmod(pw_file, 0o600)
    state = {"root": str(root), "data_dir": str(data_dir), "bin_dir": str(bin_dir), "password": password, "port": 0}
    state_file.write_text(json.dumps(state))  # written early: `stop` can clean up a half-started cluster

    subprocess.run(
        _as_user(
            prefix,
            [
                str(bin_dir / "initdb"),
                "-D", str(data_dir),
                "-U", DB_USER,
                f"--pwfile={pw_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E", "UTF8",
                "--locale=C",
            ],
        ),
        check=True,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    pw_file.unlink()
    for attempt in range(5):
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
        result = subprocess.run(
            _as_user(
                prefix,
                [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-o", options, "-w", "-t", "60", "start"],
            ),
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
        if result.returncode == 0:
            break
        _log(f"start on port {port} failed (attempt {attempt + 1}); log:\n{_tail(log_file)}")
    else:
        raise SystemExit("PostgreSQL did not start; see the log above")
    state["port"] = port
    state_file.write_text(json.dumps(state))

    env = {**os.environ, "PGPASSWORD": password}
    subprocess.run(
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, DB_NAME],
        check=True,
        env=env,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    _log(f"PostgreSQL {bin_dir.parent.name} on 127.0.0.1:{port}, database {DB_NAME}, folder {root}")
    return state


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(state_file: Path = DEFAULT_STATE) -> None:
    """Stop the cluster recorded in ``state_file`` and remove its folder (no-op when none)."""
    if not state_file.exists():
        _log("no server recorded: nothing to stop")
        return
    state = json.loads(state_file.read_text())
    data_dir = Path(state.get("data_dir", ""))
    if (data_dir / "postmaster.pid").exists():
        prefix, _ = _run_as_user()
        subprocess.run(
            _as_user(prefix, [str(Path(state["bin_dir"]) / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"]),
            stdout=sys.stderr,
            stderr=sys.stderr,
        )
    root = state.get("root")
    if root and Path(root).name.startswith("legal_rag_pg_"):
        shutil.rmtree(root, ignore_errors=True)
    state_file.unlink(missing_ok=True)
    _log("stopped and removed")


@contextlib.contextmanager
def running(state_file: Path | None = None) -> Iterator[dict[str, str]]:
    """A server for the duration of a block (tests that find no DAGSTER_PG_* use it): yields its env."""
    if state_file is None:
        state_file = Path(tempfile.mkdtemp(prefix="legal_rag_pg_state_")) / "state.json"
    state = start(state_file)
    try:
        yield env_of(state)
    finally:
        stop(state_file)
        with contextlib.suppress(OSError):
            state_file.parent.rmdir()


def wait_ready(env: dict[str, str], timeout: float = 30.0) -> None:
    """Block until the server accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((env["DAGSTER_PG_HOST"], int(env["DAGSTER_PG_PORT"])), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state-file", type=Path, default=DEFAULT_STATE, help=f"default: {DEFAULT_STATE}")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(args.state_file)
        return 0
    state = start(args.state_file)
    for name, value in env_of(state).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
