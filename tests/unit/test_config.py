"""Configuration errors: one line naming file, key path and expectation; exit status 78."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from support.cli import Cli

from vcs_acme import config
from vcs_acme.errors import ConfigError

GOOD = """
state_dir = "state"
[acme]
directory = "https://ca.example.net/directory"
contact = ["ops@example.com"]
[[certificate]]
name = "exp-e"
domains = ["exp.example.com"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    return caught.value


def test_a_good_file_gives_typed_settings_with_defaults(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, GOOD))

    assert settings.state_dir == tmp_path / "state"
    assert settings.acme.contact == ("mailto:ops@example.com",)
    assert settings.acme.account_key_type == "ec256"
    certificate = settings.certificate("exp-e")
    assert certificate.key_type == "rsa2048"
    assert certificate.reuse_key is False
    assert (certificate.challenge.type, certificate.challenge.listen_port) == ("http-01", 80)


@pytest.mark.parametrize(
    ("shortcut", "url"),
    [
        ("letsencrypt", "https://acme-v02.api.letsencrypt.org/directory"),
        ("letsencrypt-staging", "https://acme-staging-v02.api.letsencrypt.org/directory"),
    ],
)
def test_directory_shortcuts(tmp_path: Path, shortcut: str, url: str) -> None:
    text = GOOD.replace('"https://ca.example.net/directory"', f'"{shortcut}"')
    assert config.load(write(tmp_path, text)).acme.directory_url == url


@pytest.mark.parametrize(
    ("old", "new", "key_path", "expected"),
    [
        ('name = "exp-e"', "name = 5", "certificate[0].name", "expected a short name"),
        ('["exp.example.com"]', '"exp.example.com"', "certificate[0].domains", "a list"),
        ('["exp.example.com"]', '["exp.example.com", 7]', "certificate[0].domains[1]", "string"),
        ('["exp.example.com"]', '["Exp.Example.com"]', "certificate[0].domains[0]", "lower-case"),
        ('["exp.example.com"]', '["localhost"]', "certificate[0].domains[0]", "fully qualified"),
        ('["exp.example.com"]', "[]", "certificate[0].domains", "at least one"),
        ('name = "exp-e"', 'name = "exp e"', "certificate[0].name", "letters, digits"),
        (
            '"https://ca.example.net/directory"',
            '"http://ca.example.net/dir"',
            "acme.directory",
            "https://",
        ),
        ('"https://ca.example.net/directory"', '"letsencrypt-prod"', "acme.directory", "https://"),
        ('contact = ["ops@example.com"]', 'contact = ["ops"]', "acme.contact[0]", "e-mail"),
        (
            'contact = ["ops@example.com"]',
            'contact = ["ops@example.com"]\ntimeout_seconds = "9"',
            "acme.timeout_seconds",
            "a number",
        ),
    ],
)
def test_wrong_values_name_the_key_path(
    tmp_path: Path, old: str, new: str, key_path: str, expected: str
) -> None:
    error = error_of(tmp_path, GOOD.replace(old, new))

    assert error.key_path == key_path
    assert expected in error.message
    assert str(error).startswith(f"{tmp_path / 'config.toml'}: {key_path}: ")
    assert "\n" not in str(error)


def test_an_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    error = error_of(tmp_path, GOOD + "reuse_keys = true\n")

    assert error.key_path == "certificate[0].reuse_keys"
    assert 'did you mean "reuse_key"?' in error.message


def test_an_unknown_top_level_table_is_refused(tmp_path: Path) -> None:
    error = error_of(tmp_path, GOOD + "[acme_settings]\nx = 1\n")
    assert error.key_path == "acme_settings"
    assert "unknown key" in error.message


def test_missing_fields_are_named(tmp_path: Path) -> None:
    assert error_of(tmp_path, 'state_dir = "s"\n').key_path == "acme"
    no_domains = GOOD.replace('domains = ["exp.example.com"]\n', "")
    assert error_of(tmp_path, no_domains).key_path == "certificate[0].domains"
    no_directory = GOOD.replace('directory = "https://ca.example.net/directory"\n', "")
    error = error_of(tmp_path, no_directory)
    assert (error.key_path, "missing" in error.message) == ("acme.directory", True)


def test_a_choice_lists_what_is_allowed(tmp_path: Path) -> None:
    error = error_of(tmp_path, GOOD + 'key_type = "rsa1024"\n')
    assert error.key_path == "certificate[0].key_type"
    assert '"rsa2048", "rsa3072", "rsa4096", "ec256", "ec384"' in error.message


def test_bad_listen_address(tmp_path: Path) -> None:
    error = error_of(tmp_path, GOOD + 'challenge = { listen = "127.0.0.1:99999" }\n')
    assert error.key_path == "certificate[0].challenge.listen"


def test_duplicate_certificate_names(tmp_path: Path) -> None:
    error = error_of(tmp_path, GOOD + GOOD[GOOD.index("[[certificate]]") :])
    assert error.key_path == "certificate[1].name"
    assert "unique" in error.message


def test_not_toml(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[acme\n")
    assert "not valid TOML" in str(error)


def test_a_missing_ca_bundle_file(tmp_path: Path) -> None:
    text = GOOD.replace("contact = [", 'ca_bundle = "nope.pem"\ncontact = [')
    error = error_of(tmp_path, text)
    assert error.key_path == "acme.ca_bundle"
    assert str(tmp_path / "nope.pem") in error.message


EAB = '\n[acme.eab]\nkey_id = "kid-1"\nhmac_key = {secret}\n'


def with_eab(secret: str) -> str:
    head, tail = GOOD.split("[[certificate]]")
    return head + EAB.format(secret=secret) + "[[certificate]]" + tail


def test_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "hmac").write_text("c2VjcmV0LWhtYWMta2V5\n", encoding="utf-8")
    settings = config.load(write(tmp_path, with_eab(f'{{ file = "{tmp_path / "hmac"}" }}')))

    assert settings.acme.eab is not None
    assert settings.acme.eab.hmac_key.reveal() == "c2VjcmV0LWhtYWMta2V5"
    assert "c2VjcmV0" not in repr(settings)


def test_an_unreadable_secret_file(tmp_path: Path) -> None:
    error = error_of(tmp_path, with_eab(f'{{ file = "{tmp_path / "absent"}" }}'))
    assert error.key_path == "acme.eab.hmac_key.file"
    assert "cannot read secret file" in error.message


def test_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_EAB_HMAC", raising=False)
    error = error_of(tmp_path, with_eab('{ env = "TEST_EAB_HMAC" }'))
    assert (error.key_path, "not set" in error.message) == ("acme.eab.hmac_key.env", True)

    monkeypatch.setenv("TEST_EAB_HMAC", "ZW52LWtleQ")
    settings = config.load(write(tmp_path, with_eab('{ env = "TEST_EAB_HMAC" }')))
    assert settings.acme.eab is not None
    assert settings.acme.eab.hmac_key.reveal() == "ZW52LWtleQ"


def test_secret_from_a_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "eab-hmac").write_text("Y3JlZA", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = config.load(write(tmp_path, with_eab('{ credential = "eab-hmac" }')))
    assert settings.acme.eab is not None
    assert settings.acme.eab.hmac_key.reveal() == "Y3JlZA"

    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    error = error_of(tmp_path, with_eab('{ credential = "eab-hmac" }'))
    assert "LoadCredential" in error.message


def test_a_secret_needs_exactly_one_source(tmp_path: Path) -> None:
    error = error_of(tmp_path, with_eab('{ env = "A", file = "/b" }'))
    assert error.key_path == "acme.eab.hmac_key"
    error = error_of(tmp_path, with_eab('"inline-without-table"'))
    assert error.key_path == "acme.eab.hmac_key"


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VCS_ACME_CONFIG", raising=False)
    assert config.config_path(None) == Path("/etc/vcs-acme/config.toml")
    monkeypatch.setenv("VCS_ACME_CONFIG", "/srv/x.toml")
    assert config.config_path(None) == Path("/srv/x.toml")
    assert config.config_path("/given.toml") == Path("/given.toml")


def test_the_command_exits_78_with_one_line_and_no_traceback(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, GOOD + "reuse_keys = true\n")

    result = cli("--config", str(path), "status")

    assert result.code == 78
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"vcs-acme: configuration error: {path}: certificate[0].reuse_keys")
    assert "Traceback" not in result.err


def test_a_missing_config_file_exits_78(tmp_path: Path, cli: Cli) -> None:
    result = cli("--config", str(tmp_path / "none.toml"), "renew")
    assert result.code == 78
    assert "no such file" in result.err


def test_the_environment_names_the_config(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VCS_ACME_CONFIG", str(write(tmp_path, GOOD)))
    result = cli("status")
    assert result.code == 0, result.err
    assert "exp-e" in result.out
    assert not (tmp_path / "state").exists()  # status only reads


def test_the_shipped_example_configuration_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "example.toml"
    # The example names files under /etc/vcs-acme; give it those files here instead.
    text = example.read_text(encoding="utf-8").replace("/etc/vcs-acme/", f"{tmp_path}/")
    for name in ("devices-ca.pem", "known_hosts", "exp-e-1-password"):
        (tmp_path / name).write_text("x\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("EXP_E_2_ROOT_PASSWORD", "root-password")

    settings = config.parse(tomllib.loads(text), example)

    assert [c.name for c in settings.certificates] == ["expressway-e"]
    assert settings.acme.directory_url.startswith("https://acme-staging-v02.")
    assert [d.access for d in settings.devices] == ["web", "ssh"]
    assert settings.device("exp-e-1").restart.mode == "window"
    assert "root-password" not in repr(settings)


DEVICE = """
[[device]]
name = "exp-c"
host = "expc.example.com"
role = "expressway-c"
password = { value = "pw" }
"""


@pytest.mark.parametrize(
    ("extra", "key_path", "expected"),
    [
        ('restart = "at two"', "device[0].restart", "crontab expression"),
        ('tls_fingerprint = "abc"', "device[0].tls_fingerprint", "64 hex digits"),
        ('tls_verify = false\ntls_ca_file = "ca.pem"', "device[0].tls_verify", "contradicts"),
        ('release = "15.4"', "device[0].release", "X<major>.<minor>"),
        ("verify_ports = [443, 70000]", "device[0].verify_ports[1]", "from 1 to 65535"),
        ('access = "telnet"', "device[0].access", '"web", "rest", "ssh", "folder"'),
        ('access = "folder"', "device[0].folder", "missing"),
    ],
)
def test_device_errors_name_the_key(
    tmp_path: Path, extra: str, key_path: str, expected: str
) -> None:
    (tmp_path / "ca.pem").write_text("x")
    error = error_of(tmp_path, GOOD + DEVICE + extra + "\n")
    assert error.key_path == key_path
    assert expected in error.message


def test_a_device_without_password_is_refused(tmp_path: Path) -> None:
    error = error_of(tmp_path, GOOD + DEVICE.replace('password = { value = "pw" }\n', ""))
    assert (error.key_path, "needs a password" in error.message) == ("device[0].password", True)


def test_a_certificate_names_only_configured_devices(tmp_path: Path) -> None:
    error = error_of(tmp_path, GOOD + 'devices = ["exp-d"]\n' + DEVICE)
    assert error.key_path == "certificate[0].devices[0]"
    assert 'no [[device]] named "exp-d" (configured: exp-c)' in error.message


def test_a_device_that_makes_its_key_gets_its_own_certificate(tmp_path: Path) -> None:
    second = DEVICE.replace('"exp-c"', '"exp-c2"')
    text = GOOD + 'devices = ["exp-c", "exp-c2"]\n' + DEVICE + 'access = "rest"\n' + second
    error = error_of(tmp_path, text)
    assert error.key_path == "certificate[0].devices"
    assert "makes its own key" in error.message


@pytest.mark.parametrize("key_type", ["ec256", "ec384", "rsa3072"])
def test_a_device_that_makes_its_key_makes_rsa_2048_or_4096(tmp_path: Path, key_type: str) -> None:
    text = GOOD + f'key_type = "{key_type}"\ndevices = ["exp-c"]\n' + DEVICE + 'access = "rest"\n'
    error = error_of(tmp_path, text)
    assert error.key_path == "certificate[0].key_type"
    assert f'expected "rsa2048" or "rsa4096", got "{key_type}"' in error.message


def test_device_defaults(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, GOOD + DEVICE))
    device = settings.device("exp-c")
    assert (device.port, device.verify_ports, device.access) == (443, (443, 5061), "web")
    assert (device.restart.mode, device.key_format, device.tls.verify) == ("never", "pkcs8", True)
    assert device.release is None
    assert "pw" not in repr(device)
