from __future__ import annotations

from pathlib import Path

import pytest

from quartchat.config import ConfigError, Settings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.broker.url == "memory://"
    assert settings.store.url.startswith("sqlite+aiosqlite:///")
    assert settings.limits.message_max_chars == 2000
    assert settings.limits.history_on_join == 50


def test_layers_apply_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[limits]\nrate_burst = 3\nqueue_length = 7\n[server]\nbind = "0.0.0.0:9000"\n'
    )
    settings = load_settings(
        path,
        environ={"QUARTCHAT_LIMITS_RATE_BURST": "4", "QUARTCHAT_SERVER_WORKERS": "2"},
        overrides={"server": {"workers": 3}},
    )
    assert settings.limits.queue_length == 7  # file
    assert settings.limits.rate_burst == 4  # environment beats file
    assert settings.server.workers == 3  # overrides beat environment
    assert settings.server.bind == "0.0.0.0:9000"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nhistory_on_join = 5\n")
    settings = load_settings(environ={"QUARTCHAT_CONFIG": str(path)})
    assert settings.limits.history_on_join == 5


def test_store_url_from_environment(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/chat.db"
    assert load_settings(environ={"QUARTCHAT_STORE_URL": url}).store.url == url


def test_list_values_from_environment() -> None:
    environ = {"QUARTCHAT_ICE_STUN_URLS": "stun:a.example:3478, stun:b.example:3478"}
    assert load_settings(environ=environ).ice.stun_urls == [
        "stun:a.example:3478",
        "stun:b.example:3478",
    ]


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nmesage_max_chars = 10\n")
    with pytest.raises(ConfigError, match=r"limits\.mesage_max_chars: unknown setting"):
        load_settings(path, environ={})


def test_unknown_section_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[limit]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"limit: unknown setting"):
        load_settings(path, environ={})


def test_bad_value_names_key_and_source(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"limits\.queue_length: .*\(from \$QUARTCHAT_LIMITS_QUEUE_LENGTH\)"
    ):
        load_settings(environ={"QUARTCHAT_LIMITS_QUEUE_LENGTH": "many"})
    path = write(tmp_path, '[server]\nbind = "nowhere"\n')
    with pytest.raises(ConfigError, match=r"server\.bind: .*HOST:PORT.*config\.toml"):
        load_settings(path, environ={})


def test_unknown_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="QUARTCHAT_LIMITS_NOPE"):
        load_settings(environ={"QUARTCHAT_LIMITS_NOPE": "1"})


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[limits\n"), environ={})


def test_shipped_config_toml_documents_the_defaults() -> None:
    shipped = Path(__file__).resolve().parents[1] / "config.toml"
    assert load_settings(shipped, environ={}) == Settings()


def test_broker_url_is_memory_or_redis() -> None:
    for url in ("memory://", "redis://localhost:6379/0", "rediss://user:secret@cache:6380/1"):
        assert load_settings(environ={"QUARTCHAT_BROKER_URL": url}).broker.url == url
    with pytest.raises(ConfigError, match=r"broker\.url: .*memory://.*redis://.*rediss://"):
        load_settings(environ={"QUARTCHAT_BROKER_URL": "amqp://rabbit"})
    with pytest.raises(ConfigError, match=r"broker\.url: .*needs a host"):
        load_settings(environ={"QUARTCHAT_BROKER_URL": "redis:///0"})
    with pytest.raises(ConfigError, match=r"broker\.url: .*[Pp]ort"):
        load_settings(environ={"QUARTCHAT_BROKER_URL": "redis://cache:sixty/0"})


def test_trusted_proxies_are_addresses_or_networks() -> None:
    environ = {"QUARTCHAT_SERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8, ::1"}
    assert load_settings(environ=environ).server.trusted_proxies == [
        "127.0.0.1",
        "10.0.0.0/8",
        "::1",
    ]
    for bad, problem in (("nginx.local", "does not appear"), ("10.0.0.1/8", "host bits set")):
        with pytest.raises(ConfigError, match=rf"server\.trusted_proxies: .*{problem}.*networks"):
            load_settings(environ={"QUARTCHAT_SERVER_TRUSTED_PROXIES": bad})


def test_the_example_secret_placeholder_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"server.secret_key: .*placeholder"):
        load_settings(environ={}, overrides={"server": {"secret_key": "CHANGE-ME-secret-key"}})


def test_allowed_origins_are_origins() -> None:
    environ = {
        "QUARTCHAT_SERVER_ALLOWED_ORIGINS": "https://Chat.Example.org/, http://a.example:8080"
    }
    assert load_settings(environ=environ).server.allowed_origins == [
        "https://chat.example.org",
        "http://a.example:8080",
    ]
    with pytest.raises(ConfigError, match=r"server\.allowed_origins: .*not an origin"):
        load_settings(environ={"QUARTCHAT_SERVER_ALLOWED_ORIGINS": "chat.example.org"})


def test_connection_limits_from_environment() -> None:
    environ = {
        "QUARTCHAT_LIMITS_CONNECTIONS_PER_IP": "1000",
        "QUARTCHAT_LIMITS_HANDSHAKES_PER_IP_PER_SECOND": "0.5",
        "QUARTCHAT_LIMITS_HANDSHAKE_BURST": "5",
    }
    limits = load_settings(environ=environ).limits
    assert (limits.connections_per_ip, limits.handshakes_per_ip_per_second) == (1000, 0.5)
    assert limits.handshake_burst == 5
    with pytest.raises(ConfigError, match=r"limits\.connections_per_ip"):
        load_settings(environ={"QUARTCHAT_LIMITS_CONNECTIONS_PER_IP": "0"})
