"""The embedded Redis asks for a password that never appears on its command line."""

from __future__ import annotations

import pathlib
import stat

import pytest
import redis

from voxmesh_dev.embedded import EmbeddedRedis


def test_password_is_in_a_private_file_not_on_the_command_line(tmp_path: pathlib.Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        password = redis.Redis.from_url(url).connection_pool.connection_kwargs["password"]
        assert password and len(password) >= 32
        assert server.pid is not None
        cmdline = pathlib.Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert cmdline  # the process is alive and its command line readable
        assert password.encode() not in cmdline
        config = tmp_path / "redis" / "redis.conf"
        assert config.read_text().count(password) == 1
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        # Auth works with the URL's password and is required without it.
        with redis.Redis.from_url(url) as client:
            assert client.ping() is True
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        anonymous = url.replace(f":{password}@", "")
        with (
            redis.Redis.from_url(anonymous) as client,
            pytest.raises(redis.exceptions.AuthenticationError),
        ):
            client.ping()
    finally:
        server.stop()
