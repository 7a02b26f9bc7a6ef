"""credo.config: the files, their order, and their errors (one line naming the file and key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from credo.config import config_paths, load_config
from credo.errors import InputError


def test_later_files_override_earlier_ones_key_by_key(tmp_path: Path) -> None:
    system, user = tmp_path / "system.toml", tmp_path / "user.toml"
    system.write_text('[server]\nurl = "https://a.example.test:8400"\nca_file = "/etc/credo/ca.pem"\n')
    user.write_text('[server]\nurl = "https://b.example.test:8400"\ntoken_file = "admin.token"\n'
                    '[server_process]\nlisten = "0.0.0.0:8400"\n')  # fmt: skip
    config = load_config([system, user, tmp_path / "missing.toml"])
    assert config.server.url == "https://b.example.test:8400"
    assert config.server.ca_file == Path("/etc/credo/ca.pem")
    assert config.server.token_file == tmp_path / "admin.token"  # relative to its file
    assert config.server_process.listen == "0.0.0.0:8400"
    assert config.sources == (system, user)


def test_an_unknown_key_or_a_wrong_type_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "credo.toml"
    path.write_text('[server]\nurl = "https://a"\ntoken = "x"\n')
    with pytest.raises(InputError, match=r"credo.toml: server.token: unknown key"):
        load_config([path])
    path.write_text("[server_process]\nlisten = 8400\n")
    with pytest.raises(InputError, match=r"server_process.listen: expected str, got int 8400"):
        load_config([path])


def test_credo_config_names_the_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDO_CONFIG", str(tmp_path / "nope.toml"))
    assert config_paths() == [tmp_path / "nope.toml"]
    with pytest.raises(InputError, match="no such file"):
        load_config()
    monkeypatch.delenv("CREDO_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_paths() == [Path("/etc/credo/credo.toml"), tmp_path / "credo" / "credo.toml"]
