"""turnout.policies.master_key: generated once, stored 0600, refused when others can read it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from turnout.exceptions import ConfigError
from turnout.policies.master_key import load_or_create_master_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_with_mode_0600_in_a_private_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "deep" / "data"
    key, created = load_or_create_master_key(data_dir)
    assert created is True
    assert key.startswith("sk-turnout-")
    assert len(key) >= len("sk-turnout-") + 43  # 32 random bytes, url-safe base64
    path = data_dir / "master_key"
    assert mode(path) == 0o600
    assert mode(data_dir) & 0o077 == 0
    assert path.read_text(encoding="ascii") == key + "\n"


def test_reused_on_the_next_start(tmp_path: Path) -> None:
    key, _ = load_or_create_master_key(tmp_path)
    again, created = load_or_create_master_key(tmp_path)
    assert (again, created) == (key, False)
    assert (tmp_path / "master_key").read_text(encoding="ascii") == key + "\n"


def test_two_data_dirs_get_different_keys(tmp_path: Path) -> None:
    first, _ = load_or_create_master_key(tmp_path / "one")
    second, _ = load_or_create_master_key(tmp_path / "two")
    assert first != second


def test_an_operators_own_key_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "master_key"
    path.write_text("  my-own-master-key \n", encoding="ascii")
    path.chmod(0o600)
    assert load_or_create_master_key(tmp_path) == ("my-own-master-key", False)


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o620, 0o644, 0o666])
def test_refuses_a_file_others_can_access(tmp_path: Path, bad_mode: int) -> None:
    load_or_create_master_key(tmp_path)
    path = tmp_path / "master_key"
    path.chmod(bad_mode)
    with pytest.raises(ConfigError) as info:
        load_or_create_master_key(tmp_path)
    message = info.value.message
    assert message == (
        f"{path}: the master key file is readable by others (mode {oct(bad_mode)}); "
        f"run: chmod 600 {path}"
    )
    assert "sk-turnout-" not in message


@pytest.mark.parametrize("content", ["", "\n", "   \n\n"])
def test_refuses_an_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "master_key"
    path.write_text(content, encoding="ascii")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_or_create_master_key(tmp_path)
    assert info.value.message == (
        f"{path}: the master key file is empty; delete it to generate a new one"
    )


def test_unusable_data_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError) as info:
        load_or_create_master_key(blocker / "data")
    message = info.value.message
    assert message.startswith(f"{blocker / 'data'}: cannot create the data directory (")
    assert "set TURNOUT_HOME or server.data_dir to a writable place" in message
