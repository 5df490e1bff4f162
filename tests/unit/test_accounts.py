"""The users file (argon2id hashes), the guard against guessing, and ``python -m assistant users``."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.accounts import PasswordSignIn, SignInGuard, UsersFile, sign_in_for
from assistant.errors import ConfigurationError, InputError
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def test_add_verify_change_and_remove(tmp_path):
    users = UsersFile(tmp_path / "private" / "users.json")
    users.add("Alice", PASSWORD, admin=True)
    users.add("bob", "another long one")
    assert [(a.name, a.admin) for a in users.accounts()] == [("alice", True), ("bob", False)]
    assert users.verify("alice", PASSWORD) and users.verify("ALICE ", PASSWORD)  # names ignore case
    assert not users.verify("alice", "another long one") and not users.verify("nobody", PASSWORD)
    users.set_password("alice", "a brand new password")
    assert not users.verify("alice", PASSWORD) and users.verify("alice", "a brand new password")
    users.remove("bob")
    assert [a.name for a in users.accounts()] == ["alice"] and not users.verify("bob", "another long one")


def test_the_file_holds_hashes_only_and_only_its_owner_can_read_it(tmp_path):
    path = tmp_path / "private" / "users.json"
    UsersFile(path).add("alice", PASSWORD)
    text = path.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(("name", "password", "problem"), [
    ("", PASSWORD, "cannot be a user name"), ("a b", PASSWORD, "cannot be a user name"),
    ("../etc", PASSWORD, "cannot be a user name"), ("x" * 65, PASSWORD, "cannot be a user name"),
    ("carol", "short", "at least 10 characters")])
def test_bad_names_and_short_passwords_are_refused(tmp_path, name, password, problem):
    with pytest.raises(InputError, match=problem):
        UsersFile(tmp_path / "users.json").add(name, password)


def test_a_name_is_added_once_and_only_known_names_change(tmp_path):
    users = UsersFile(tmp_path / "users.json")
    users.add("alice", PASSWORD)
    with pytest.raises(InputError, match="already a user 'alice'"):
        users.add("ALICE", PASSWORD)
    with pytest.raises(InputError, match="no user 'dave'"):
        users.remove("dave")
    with pytest.raises(InputError, match="no user 'dave'"):
        users.set_password("dave", PASSWORD)


def test_repeated_failures_lock_the_name_even_for_the_right_password(tmp_path):
    now = [1000.0]
    users = UsersFile(tmp_path / "users.json")
    users.add("alice", PASSWORD)
    sign_in = PasswordSignIn(users, SignInGuard(max_failures=3, window=60, clock=lambda: now[0]))
    assert [sign_in("alice", f"guess number {i}") for i in range(3)] == [False] * 3
    assert sign_in("alice", PASSWORD) is False  # locked
    now[0] += 61
    assert sign_in("alice", PASSWORD) is True  # the window has passed
    assert sign_in("alice", "wrong again!") is False and sign_in("alice", PASSWORD) is True  # success reset it


def test_a_password_typed_into_the_name_box_is_never_logged(tmp_path, caplog):
    users = UsersFile(tmp_path / "users.json")
    users.add("alice", PASSWORD)
    sign_in = PasswordSignIn(users, SignInGuard())
    with caplog.at_level(logging.INFO, logger="assistant.accounts"):
        assert not sign_in(PASSWORD, "")
        assert not sign_in("alice", "not the password")
        assert sign_in("alice", PASSWORD)
    assert PASSWORD not in caplog.text and "not the password" not in caplog.text
    assert "failed sign-in for an unknown name" in caplog.text and "signed in: alice" in caplog.text


def test_sign_in_follows_the_settings(tmp_path):
    assert sign_in_for(Settings(data_dir=tmp_path)) is None  # local: one user, no sign-in
    settings = Settings(data_dir=tmp_path, auth={"mode": "password"})
    with pytest.raises(ConfigurationError, match="no users yet.*users add NAME"):
        sign_in_for(settings)
    UsersFile(settings.users_file).add("alice", PASSWORD)
    check = sign_in_for(settings)
    import asyncio
    import inspect
    from concurrent.futures import ThreadPoolExecutor

    assert inspect.iscoroutinefunction(check)  # Gradio awaits only real coroutine functions
    with ThreadPoolExecutor(1) as thread:  # a loop of its own (earlier tests may leave one in this thread)
        assert thread.submit(asyncio.run, check("alice", PASSWORD)).result() is True
        assert thread.submit(asyncio.run, check("alice", "nope")).result() is False


def users_cli(tmp_path, *args, stdin: str = ""):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASSISTANT_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "assistant", "users", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_the_users_command(tmp_path):
    out = users_cli(tmp_path, "add", "alice", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert out.returncode == 0 and "added alice (admin)" in out.stdout, out.stderr
    assert users_cli(tmp_path, "add", "bob", "--password-stdin", stdin="another long one\n").returncode == 0
    listing = users_cli(tmp_path, "list")
    assert "alice  (admin)" in listing.stdout and "bob" in listing.stdout and "2 users" in listing.stdout
    changed = users_cli(tmp_path, "passwd", "bob", "--password-stdin", stdin="changed password!\n")
    assert changed.returncode == 0 and UsersFile(tmp_path / "data" / "users.json").verify("bob", "changed password!")
    assert users_cli(tmp_path, "remove", "bob").returncode == 0
    short = users_cli(tmp_path, "add", "carol", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 10 characters" in short.stderr and "Traceback" not in short.stderr
    assert "1 users" in users_cli(tmp_path, "list").stdout


def test_parallel_guesses_cannot_pass_the_limit(tmp_path):
    """Each attempt counts before its (slow) check, so guesses sent at once are held to the limit too."""
    import threading

    class Counting(UsersFile):
        checks = 0

        def verify(self, name, password):
            Counting.checks += 1
            return super().verify(name, password)

    users = Counting(tmp_path / "users.json")
    users.add("alice", PASSWORD)
    sign_in = PasswordSignIn(users, SignInGuard(max_failures=3, window=600))
    threads = [threading.Thread(target=sign_in, args=("alice", f"parallel guess {i}")) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counting.checks == 3


def test_removing_a_user_keeps_their_folder_and_the_name_is_not_reused(tmp_path):
    assert users_cli(tmp_path, "add", "erin", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    folder = tmp_path / "data" / "users" / "erin"
    (folder / "knowledge").mkdir(parents=True)  # as the app makes it at her first sign-in
    removed = users_cli(tmp_path, "remove", "erin")
    assert removed.returncode == 0 and "their documents remain in" in removed.stdout
    again = users_cli(tmp_path, "add", "erin", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "must not inherit" in again.stderr
