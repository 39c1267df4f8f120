"""Tests for s3func._config: credentials, region, endpoint and addressing-style resolution.

Every test passes its own ``env`` mapping and points the shared files into ``tmp_path``; the
autouse fixture below also scrubs the process environment, so nothing here can read the real
``~/.aws`` or the developer's variables.
"""

from __future__ import annotations

import ast
import builtins
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from s3func import _config
from s3func._config import (
    B2Credentials,
    S3Config,
    describe,
    resolve_b2_credentials,
    resolve_s3_config,
    validate_endpoint_url,
)
from s3func.errors import ConfigurationError

SECRET = "sEcReT/ShouldNeverAppear+0123456789"
TOKEN = "ToKeN-ShouldNeverAppear-9876543210"


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "B2_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "no-home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "no-home"))


def make_env(
    tmp_path: Path,
    *,
    credentials: str | None = None,
    config: str | None = None,
    **variables: str,
) -> dict[str, str]:
    """Write the given shared files into tmp_path and return an env pointing at them."""
    cred_path = tmp_path / "aws" / "credentials"
    config_path = tmp_path / "aws" / "config"
    cred_path.parent.mkdir(exist_ok=True)
    if credentials is not None:
        cred_path.write_text(textwrap.dedent(credentials), encoding="utf-8")
    if config is not None:
        config_path.write_text(textwrap.dedent(config), encoding="utf-8")
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(cred_path),
        "AWS_CONFIG_FILE": str(config_path),
        "HOME": str(tmp_path / "home"),
    }
    env.update(variables)
    return env


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    texts = [str(exc), repr(exc), str(exc.args)]
    for secret in secrets or (SECRET, TOKEN):
        for text in texts:
            assert secret not in text


def helper_script(tmp_path: Path, body: str) -> str:
    """Write a tiny Python credential_process helper and return its command line."""
    script = tmp_path / "helper.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"


CREDS = f"""\
[default]
aws_access_key_id = AKIDDEFAULTFILE
aws_secret_access_key = {SECRET}

[work]
aws_access_key_id = AKIDWORKFILE
aws_secret_access_key = {SECRET}
aws_session_token = {TOKEN}

[other]
aws_access_key_id = AKIDOTHERFILE
aws_secret_access_key = {SECRET}
"""

CONFIG = f"""\
[default]
region = eu-central-1

[profile work]
region = eu-west-1
aws_access_key_id = AKIDWORKCONFIG
aws_secret_access_key = {SECRET}

[profile cfgonly]
region = ap-south-1
aws_access_key_id = AKIDCFGONLY
aws_secret_access_key = {SECRET}

[other]
region = sa-east-1
"""


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    ("kwargs", "variables", "expected_key", "expected_source"),
    [
        pytest.param(
            {"access_key_id": "AKIDARG", "secret_access_key": SECRET},
            {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": SECRET},
            "AKIDARG",
            "arguments",
            id="arguments-beat-environment",
        ),
        pytest.param(
            {"access_key_id": "AKIDARG", "secret_access_key": SECRET, "profile": "work"},
            {},
            "AKIDARG",
            "arguments",
            id="arguments-beat-explicit-profile",
        ),
        pytest.param(
            {},
            {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": SECRET},
            "AKIDENV",
            "environment",
            id="environment-beats-files",
        ),
        pytest.param(
            {},
            {
                "AWS_ACCESS_KEY_ID": "AKIDENV",
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_PROFILE": "work",
            },
            "AKIDENV",
            "environment",
            id="environment-beats-AWS_PROFILE",
        ),
        pytest.param(
            {"profile": "work"},
            {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": SECRET},
            "AKIDWORKFILE",
            "shared credentials file (profile 'work')",
            id="explicit-profile-beats-environment",
        ),
        pytest.param(
            {},
            {"AWS_PROFILE": "work"},
            "AKIDWORKFILE",
            "shared credentials file (profile 'work')",
            id="AWS_PROFILE",
        ),
        pytest.param(
            {},
            {"AWS_DEFAULT_PROFILE": "other"},
            "AKIDOTHERFILE",
            "shared credentials file (profile 'other')",
            id="AWS_DEFAULT_PROFILE",
        ),
        pytest.param(
            {},
            {"AWS_PROFILE": "work", "AWS_DEFAULT_PROFILE": "other"},
            "AKIDWORKFILE",
            "shared credentials file (profile 'work')",
            id="AWS_PROFILE-beats-AWS_DEFAULT_PROFILE",
        ),
        pytest.param(
            {"profile": "other"},
            {"AWS_PROFILE": "work"},
            "AKIDOTHERFILE",
            "shared credentials file (profile 'other')",
            id="profile-argument-beats-AWS_PROFILE",
        ),
        pytest.param(
            {},
            {},
            "AKIDDEFAULTFILE",
            "shared credentials file (profile 'default')",
            id="default-profile",
        ),
        pytest.param(
            {},
            {"AWS_PROFILE": "cfgonly"},
            "AKIDCFGONLY",
            "config file (profile 'cfgonly')",
            id="static-keys-in-config-file",
        ),
        pytest.param(
            {},
            {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "  ", "AWS_PROFILE": ""},
            "AKIDDEFAULTFILE",
            "shared credentials file (profile 'default')",
            id="empty-variables-are-unset",
        ),
    ],
)
def test_credential_precedence(
    tmp_path: Path,
    kwargs: dict[str, Any],
    variables: dict[str, str],
    expected_key: str,
    expected_source: str,
) -> None:
    env = make_env(tmp_path, credentials=CREDS, config=CONFIG, **variables)
    config = resolve_s3_config(env=env, **kwargs)
    assert config.access_key_id == expected_key
    assert config.secret_access_key == SECRET
    assert config.source == expected_source


def test_credentials_file_wins_over_config_file_for_same_profile(tmp_path: Path) -> None:
    env = make_env(tmp_path, credentials=CREDS, config=CONFIG, AWS_PROFILE="work")
    config = resolve_s3_config(env=env)
    assert config.access_key_id == "AKIDWORKFILE"  # not AKIDWORKCONFIG
    assert config.session_token == TOKEN
    assert config.region == "eu-west-1"  # settings still come from the config file


@pytest.mark.parametrize(
    ("variables", "credentials", "expected"),
    [
        pytest.param(
            {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T"},
            None,
            "T",
            id="AWS_SESSION_TOKEN",
        ),
        pytest.param(
            {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SECURITY_TOKEN": "L"},
            None,
            "L",
            id="legacy-AWS_SECURITY_TOKEN",
        ),
        pytest.param(
            {
                "AWS_ACCESS_KEY_ID": "A",
                "AWS_SECRET_ACCESS_KEY": "S",
                "AWS_SESSION_TOKEN": "T",
                "AWS_SECURITY_TOKEN": "L",
            },
            None,
            "T",
            id="session-token-beats-security-token",
        ),
        pytest.param(
            {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S"}, None, None, id="no-token"
        ),
        pytest.param(
            {},
            "[default]\naws_access_key_id = A\naws_secret_access_key = S\naws_security_token = F\n",
            "F",
            id="file-aws_security_token",
        ),
    ],
)
def test_session_tokens(
    tmp_path: Path, variables: dict[str, str], credentials: str | None, expected: str | None
) -> None:
    env = make_env(tmp_path, credentials=credentials, **variables)
    assert resolve_s3_config(env=env).session_token == expected


def test_explicit_session_token(tmp_path: Path) -> None:
    config = resolve_s3_config(
        access_key_id="A", secret_access_key="S", session_token="T", env=make_env(tmp_path)
    )
    assert config.session_token == "T"


@pytest.mark.parametrize(
    ("credentials", "config", "profile"),
    [
        pytest.param(
            "[profile work]\naws_access_key_id = A\naws_secret_access_key = S\n",
            None,
            "work",
            id="credentials-file-has-no-profile-prefix",
        ),
        pytest.param(
            None,
            "[work]\naws_access_key_id = A\naws_secret_access_key = S\n",
            "work",
            id="config-file-needs-profile-prefix",
        ),
    ],
)
def test_section_naming_rules(
    tmp_path: Path, credentials: str | None, config: str | None, profile: str
) -> None:
    env = make_env(tmp_path, credentials=credentials, config=config)
    with pytest.raises(ConfigurationError, match=r"profile 'work'.*was not found"):
        resolve_s3_config(profile=profile, env=env)


def test_config_file_default_section_forms(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        config="""\
        [default]
        region = eu-north-1
        aws_access_key_id = AKIDPLAIN
        aws_secret_access_key = S

        [profile default]
        aws_access_key_id = AKIDPREFIXED
        """,
    )
    config = resolve_s3_config(env=env)
    assert config.access_key_id == "AKIDPREFIXED"
    assert config.region == "eu-north-1"
    assert config.source == "config file (profile 'default')"


def test_colon_delimiters_and_comments(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        credentials="""\
        # a comment
        ; another comment
        [default]
        aws_access_key_id: AKIDCOLON   ; inline comment
        aws_secret_access_key = S%not-interpolated
        """,
    )
    config = resolve_s3_config(env=env)
    assert config.access_key_id == "AKIDCOLON"
    assert config.secret_access_key == "S%not-interpolated"


def test_home_expansion_uses_injected_env(tmp_path: Path) -> None:
    home = tmp_path / "fakehome"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDHOME\naws_secret_access_key = S\n"
    )
    (home / ".aws" / "config").write_text("[default]\nregion = ca-central-1\n")
    config = resolve_s3_config(env={"HOME": str(home)})
    assert (config.access_key_id, config.region) == ("AKIDHOME", "ca-central-1")


def test_env_none_reads_os_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = {
        "AWS_ACCESS_KEY_ID": "AKIDOSENV",
        "AWS_SECRET_ACCESS_KEY": "S",
        "AWS_REGION": "us-west-2",
        "AWS_CONFIG_FILE": str(tmp_path / "missing-config"),
        "HOME": str(tmp_path),
    }
    monkeypatch.setattr(os, "environ", fake)
    config = resolve_s3_config()
    assert (config.access_key_id, config.source, config.region) == (
        "AKIDOSENV",
        "environment",
        "us-west-2",
    )


# --------------------------------------------------------------------------- bogus profiles


def test_bogus_aws_profile_with_explicit_keys_never_raises(tmp_path: Path) -> None:
    env = make_env(tmp_path, credentials=CREDS, config=CONFIG, AWS_PROFILE="does-not-exist")
    config = resolve_s3_config(access_key_id="AKIDARG", secret_access_key=SECRET, env=env)
    assert config.source == "arguments"
    assert config.region == "us-east-1"  # the missing profile simply adds nothing


def test_bogus_aws_profile_with_environment_keys_never_raises(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        AWS_PROFILE="does-not-exist",
        AWS_ACCESS_KEY_ID="AKIDENV",
        AWS_SECRET_ACCESS_KEY=SECRET,
    )
    assert resolve_s3_config(env=env).source == "environment"


def test_fully_explicit_configuration_does_no_file_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file was opened")

    monkeypatch.setattr(builtins, "open", no_open)
    env = make_env(tmp_path, AWS_PROFILE="does-not-exist")
    env["AWS_CONFIG_FILE"] = str(tmp_path)  # a directory: reading it would fail
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path)
    config = resolve_s3_config(
        access_key_id="AKIDARG",
        secret_access_key=SECRET,
        region="eu-west-3",
        endpoint_url="https://s3.example.com/",
        env=env,
    )
    assert config == S3Config(
        access_key_id="AKIDARG",
        secret_access_key=SECRET,
        region="eu-west-3",
        endpoint_url="https://s3.example.com",
        addressing_style="auto",
        source="arguments",
    )
    explicit_style = resolve_s3_config(
        access_key_id="AKIDARG",
        secret_access_key=SECRET,
        region="eu-west-3",
        endpoint_url="https://s3.example.com",
        addressing_style="path",
        profile="anything",
        env=env,
    )
    assert explicit_style.addressing_style == "path"


def test_explicit_keys_do_not_read_the_credentials_file(tmp_path: Path) -> None:
    env = make_env(tmp_path, config="[default]\nregion = eu-south-1\n")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path)  # a directory: reading it would fail
    config = resolve_s3_config(access_key_id="A", secret_access_key="S", env=env)
    assert config.region == "eu-south-1"


def test_bogus_aws_profile_without_keys_names_profile_and_files(tmp_path: Path) -> None:
    env = make_env(tmp_path, credentials=CREDS, config=CONFIG, AWS_PROFILE="nope")
    with pytest.raises(ConfigurationError) as info:
        resolve_s3_config(env=env)
    message = str(info.value)
    assert "'nope'" in message
    assert "AWS_PROFILE" in message
    assert env["AWS_SHARED_CREDENTIALS_FILE"] in message
    assert env["AWS_CONFIG_FILE"] in message
    assert_no_secret(info.value)


def test_bogus_profile_argument_skips_environment_keys_and_raises(tmp_path: Path) -> None:
    env = make_env(tmp_path, AWS_ACCESS_KEY_ID="AKIDENV", AWS_SECRET_ACCESS_KEY=SECRET)
    with pytest.raises(ConfigurationError, match="'nope' \\(from the profile argument\\)"):
        resolve_s3_config(profile="nope", env=env)


def test_missing_default_profile_is_not_a_profile_error(tmp_path: Path) -> None:
    env = make_env(tmp_path)  # neither file exists
    with pytest.raises(ConfigurationError) as info:
        resolve_s3_config(env=env)
    message = str(info.value)
    assert message.startswith("no S3 credentials found")
    assert "access_key_id/secret_access_key arguments" in message
    assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)" in message
    assert f"{env['AWS_SHARED_CREDENTIALS_FILE']!r} (file does not exist)" in message
    assert "credential_process" in message
    assert f"{env['AWS_CONFIG_FILE']!r} (file does not exist)" in message
    assert "IMDS" in message


def test_no_credentials_message_describes_each_source(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        credentials="[other]\naws_access_key_id = A\naws_secret_access_key = S\n",
        config="[profile work]\nregion = eu-west-1\n",
        AWS_PROFILE="work",
        AWS_WEB_IDENTITY_TOKEN_FILE="/var/run/token",
    )
    with pytest.raises(ConfigurationError) as info:
        resolve_s3_config(env=env)
    message = str(info.value)
    assert "(no profile 'work')" in message
    assert "(no keys in profile 'work')" in message
    assert "AWS_WEB_IDENTITY_TOKEN_FILE is set" in message


def test_unsupported_profile_kind_gets_a_hint(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        config="""\
        [profile admin]
        role_arn = arn:aws:iam::123456789012:role/admin
        source_profile = default
        """,
    )
    with pytest.raises(ConfigurationError, match=r"assume-role.*credential_process"):
        resolve_s3_config(profile="admin", env=env)


@pytest.mark.parametrize(
    ("variables", "credentials", "match"),
    [
        pytest.param(
            {"AWS_ACCESS_KEY_ID": "AKIDENV"}, None, "AWS_SECRET_ACCESS_KEY is not set", id="env"
        ),
        pytest.param(
            {"AWS_SECRET_ACCESS_KEY": SECRET}, None, "AWS_ACCESS_KEY_ID is not set", id="env2"
        ),
        pytest.param(
            {},
            f"[default]\naws_secret_access_key = {SECRET}\n",
            "has aws_secret_access_key but no aws_access_key_id",
            id="file",
        ),
    ],
)
def test_partial_credentials(
    tmp_path: Path, variables: dict[str, str], credentials: str | None, match: str
) -> None:
    env = make_env(tmp_path, credentials=credentials, **variables)
    with pytest.raises(ConfigurationError, match=match) as info:
        resolve_s3_config(env=env)
    assert_no_secret(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"access_key_id": "A"}, "missing secret_access_key argument"),
        ({"secret_access_key": SECRET}, "missing access_key_id argument"),
        ({"session_token": TOKEN}, "session_token was passed without"),
        ({"access_key_id": "", "secret_access_key": SECRET}, "access_key_id"),
        ({"access_key_id": "A", "secret_access_key": SECRET, "session_token": ""}, "token"),
        ({"profile": "  "}, "profile must be a non-empty string"),
        ({"access_key_id": "A", "secret_access_key": "S", "addressing_style": "dns"}, "'dns'"),
        ({"access_key_id": "A", "secret_access_key": "S", "region": "us east"}, "us east"),
        ({"access_key_id": "A", "secret_access_key": "S", "endpoint_url": "ftp://x"}, "ftp"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        resolve_s3_config(env=make_env(tmp_path), **kwargs)
    assert_no_secret(info.value)


def test_unparseable_file_does_not_leak_lines(tmp_path: Path) -> None:
    env = make_env(tmp_path, credentials=f"aws_secret_access_key = {SECRET}\n[default]\n")
    with pytest.raises(ConfigurationError, match="line 1 comes before any") as info:
        resolve_s3_config(env=env)
    assert_no_secret(info.value)
    assert info.value.__context__ is None

    env = make_env(tmp_path, credentials=f"[default]\nsecret {SECRET}\n")
    with pytest.raises(ConfigurationError, match="syntax error on line 2") as info:
        resolve_s3_config(env=env)
    assert_no_secret(info.value)
    assert info.value.__context__ is None


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path)
    with pytest.raises(ConfigurationError, match="it is a directory"):
        resolve_s3_config(env=env)


# --------------------------------------------------------------------------- credential_process


GOOD_HELPER = f"""\
import json
print(json.dumps({{"Version": 1, "AccessKeyId": "AKIDPROCESS",
                  "SecretAccessKey": "{SECRET}", "SessionToken": "{TOKEN}",
                  "Expiration": "2099-01-01T00:00:00Z"}}))
"""


def test_credential_process_success(tmp_path: Path) -> None:
    command = helper_script(tmp_path, GOOD_HELPER)
    env = make_env(
        tmp_path,
        config=f"[profile proc]\nregion = us-west-1\ncredential_process = {command}\n",
    )
    config = resolve_s3_config(profile="proc", env=env)
    assert config.access_key_id == "AKIDPROCESS"
    assert config.secret_access_key == SECRET
    assert config.session_token == TOKEN
    assert config.source == "credential_process (profile 'proc')"
    assert config.region == "us-west-1"


def test_credential_process_without_session_token(tmp_path: Path) -> None:
    command = helper_script(
        tmp_path,
        'print(\'{"Version": 1, "AccessKeyId": "AKIDP", "SecretAccessKey": "S"}\')\n',
    )
    env = make_env(tmp_path, credentials=f"[default]\ncredential_process = {command}\n")
    config = resolve_s3_config(env=env)
    assert (config.access_key_id, config.session_token) == ("AKIDP", None)


def test_credential_process_order(tmp_path: Path) -> None:
    command = helper_script(tmp_path, GOOD_HELPER)
    # Static keys in the credentials file beat the process ...
    env = make_env(
        tmp_path,
        credentials="[p]\naws_access_key_id = AKIDFILE\naws_secret_access_key = S\n",
        config=f"[profile p]\ncredential_process = {command}\n",
    )
    assert resolve_s3_config(profile="p", env=env).access_key_id == "AKIDFILE"
    # ... and the process beats static keys in the config file.
    env = make_env(
        tmp_path,
        credentials="",
        config=(
            f"[profile p]\ncredential_process = {command}\n"
            "aws_access_key_id = AKIDCONFIG\naws_secret_access_key = S\n"
        ),
    )
    assert resolve_s3_config(profile="p", env=env).access_key_id == "AKIDPROCESS"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        pytest.param(
            f"import sys\nprint('{SECRET}')\nprint('{TOKEN}', file=sys.stderr)\nsys.exit(3)\n",
            "failed: exited with status 3",
            id="non-zero-exit",
        ),
        pytest.param(
            f"print('not json {SECRET} {TOKEN}')\n",
            "did not print a JSON object",
            id="not-json",
        ),
        pytest.param(f"print('[\"{SECRET}\"]')\n", "did not print a JSON object", id="array"),
        pytest.param(
            f'print(\'{{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "{SECRET}"}}\')\n',
            "unsupported Version",
            id="version-2",
        ),
        pytest.param(
            f'print(\'{{"Version": true, "AccessKeyId": "A", "SecretAccessKey": "{SECRET}"}}\')\n',
            "unsupported Version",
            id="version-bool",
        ),
        pytest.param(
            f'print(\'{{"Version": 1, "SecretAccessKey": "{SECRET}"}}\')\n',
            "printed no AccessKeyId",
            id="missing-access-key",
        ),
        pytest.param(
            'print(\'{"Version": 1, "AccessKeyId": "A"}\')\n',
            "printed no SecretAccessKey",
            id="missing-secret",
        ),
        pytest.param(
            f'print(\'{{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "{SECRET}", '
            f'"SessionToken": 5}}\')\n',
            "invalid SessionToken",
            id="bad-token",
        ),
        pytest.param(
            "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe')\n",
            "did not print a JSON object",
            id="binary-output",
        ),
    ],
)
def test_credential_process_failures(tmp_path: Path, body: str, match: str) -> None:
    command = helper_script(tmp_path, body)
    env = make_env(tmp_path, config=f"[profile proc]\ncredential_process = {command}\n")
    with pytest.raises(ConfigurationError, match=match) as info:
        resolve_s3_config(profile="proc", env=env)
    assert "credential_process of profile 'proc'" in str(info.value)
    assert_no_secret(info.value)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("command", "match"),
    [
        ("/nonexistent/dir/cred-helper --flag", "program '/nonexistent/dir/cred-helper' was not"),
        ("helper 'unbalanced", "not a valid command line"),
    ],
)
def test_credential_process_bad_commands(tmp_path: Path, command: str, match: str) -> None:
    env = make_env(tmp_path, config=f"[default]\ncredential_process = {command}\n")
    with pytest.raises(ConfigurationError, match=match):
        resolve_s3_config(env=env)


def test_credential_process_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    env = make_env(tmp_path, config=f"[default]\ncredential_process = {script}\n")
    with pytest.raises(ConfigurationError, match="is not executable"):
        resolve_s3_config(env=env)


def test_credential_process_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    command = helper_script(tmp_path, GOOD_HELPER) + f" && touch {marker}"
    env = make_env(tmp_path, config=f"[default]\ncredential_process = {command}\n")
    resolve_s3_config(env=env)  # "&&" and the rest are plain arguments to the helper
    assert not marker.exists()


def test_credential_process_timeout_does_not_keep_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run(argv: list[str], **kwargs: object) -> None:
        raise subprocess.TimeoutExpired(argv, 1.0, output=SECRET.encode())

    monkeypatch.setattr(subprocess, "run", fake_run)
    env = make_env(tmp_path, config="[default]\ncredential_process = helper --go\n")
    with pytest.raises(ConfigurationError, match="did not finish within") as info:
        resolve_s3_config(env=env)
    assert info.value.__context__ is None
    assert_no_secret(info.value)


def test_credential_process_gets_argv_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        seen["argv"] = argv
        seen["shell"] = kwargs.get("shell", False)
        out = b'{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S"}'
        return subprocess.CompletedProcess(argv, 0, stdout=out)

    monkeypatch.setattr(subprocess, "run", fake_run)
    env = make_env(
        tmp_path, config="[default]\ncredential_process = /bin/helper --profile 'my name'\n"
    )
    resolve_s3_config(env=env)
    assert seen == {"argv": ["/bin/helper", "--profile", "my name"], "shell": False}


# --------------------------------------------------------------------------- region


@pytest.mark.parametrize(
    ("kwargs", "variables", "expected"),
    [
        ({"region": "ap-east-1"}, {"AWS_REGION": "us-west-2"}, "ap-east-1"),
        ({}, {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-east-2"}, "us-west-2"),
        ({}, {"AWS_DEFAULT_REGION": "us-east-2"}, "us-east-2"),
        ({}, {}, "eu-west-1"),  # profile 'work' region
        ({"profile": "other"}, {}, "us-east-1"),  # [other] lacks the "profile " prefix
        ({}, {"AWS_PROFILE": "nosuch"}, "us-east-1"),
    ],
)
def test_region_precedence(
    tmp_path: Path, kwargs: dict[str, Any], variables: dict[str, str], expected: str
) -> None:
    env = make_env(
        tmp_path,
        credentials=CREDS,
        config=CONFIG,
        AWS_ACCESS_KEY_ID="A",
        AWS_SECRET_ACCESS_KEY="S",
        **variables,
    )
    kwargs = dict(kwargs)
    kwargs.setdefault("access_key_id", "A")
    kwargs.setdefault("secret_access_key", "S")
    if "profile" not in kwargs and "AWS_PROFILE" not in variables:
        kwargs["profile"] = "work"
    assert resolve_s3_config(env=env, **kwargs).region == expected


def test_default_region(tmp_path: Path) -> None:
    env = make_env(tmp_path, AWS_ACCESS_KEY_ID="A", AWS_SECRET_ACCESS_KEY="S")
    assert resolve_s3_config(env=env).region == "us-east-1"


def test_invalid_region_names_its_source(tmp_path: Path) -> None:
    env = make_env(tmp_path, AWS_ACCESS_KEY_ID="A", AWS_SECRET_ACCESS_KEY="S", AWS_REGION="a b")
    with pytest.raises(ConfigurationError, match="from AWS_REGION"):
        resolve_s3_config(env=env)
    env = make_env(
        tmp_path,
        config="[default]\nregion = eu/west\n",
        AWS_ACCESS_KEY_ID="A",
        AWS_SECRET_ACCESS_KEY="S",
    )
    with pytest.raises(ConfigurationError, match="profile 'default' in config file"):
        resolve_s3_config(env=env)


# --------------------------------------------------------------------------- endpoint


ENDPOINT_CONFIG = """\
[profile svc]
services = my-services
endpoint_url = https://profile.example.com

[profile plain]
endpoint_url = https://profile.example.com/

[profile nos3]
services = empty-services
endpoint_url = https://profile.example.com

[services my-services]
s3 =
    endpoint_url = http://localhost:9000   ; nested, with an inline comment
dynamodb =
    endpoint_url = http://localhost:8000

[services empty-services]
dynamodb =
    endpoint_url = http://localhost:8000

[profile ignore]
ignore_configure_endpoint_urls = true
endpoint_url = https://profile.example.com
"""


@pytest.mark.parametrize(
    ("profile", "kwargs", "variables", "expected"),
    [
        pytest.param(
            "svc",
            {"endpoint_url": "https://arg.example.com"},
            {"AWS_ENDPOINT_URL_S3": "https://s3env.example.com"},
            "https://arg.example.com",
            id="argument",
        ),
        pytest.param(
            "svc",
            {},
            {
                "AWS_ENDPOINT_URL_S3": "https://s3env.example.com",
                "AWS_ENDPOINT_URL": "https://env.example.com",
            },
            "https://s3env.example.com",
            id="AWS_ENDPOINT_URL_S3",
        ),
        pytest.param(
            "svc",
            {},
            {"AWS_ENDPOINT_URL": "https://env.example.com/"},
            "https://env.example.com",
            id="AWS_ENDPOINT_URL",
        ),
        pytest.param("svc", {}, {}, "http://localhost:9000", id="services-section"),
        pytest.param("nos3", {}, {}, "https://profile.example.com", id="services-without-s3-block"),
        pytest.param("plain", {}, {}, "https://profile.example.com", id="profile-endpoint"),
        pytest.param("default", {}, {}, None, id="none"),
        pytest.param(
            "svc",
            {},
            {
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "TRUE",
                "AWS_ENDPOINT_URL_S3": "https://s3env.example.com",
                "AWS_ENDPOINT_URL": "https://env.example.com",
            },
            None,
            id="ignore-variable",
        ),
        pytest.param(
            "svc",
            {"endpoint_url": "https://arg.example.com"},
            {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "https://arg.example.com",
            id="ignore-variable-keeps-argument",
        ),
        pytest.param(
            "svc",
            {},
            {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false"},
            "http://localhost:9000",
            id="ignore-variable-false",
        ),
        pytest.param(
            "ignore",
            {},
            {"AWS_ENDPOINT_URL": "https://env.example.com"},
            None,
            id="ignore-profile-setting",
        ),
        pytest.param(
            "ignore",
            {},
            {
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
                "AWS_ENDPOINT_URL": "https://env.example.com",
            },
            "https://env.example.com",
            id="ignore-variable-beats-profile-setting",
        ),
    ],
)
def test_endpoint_precedence(
    tmp_path: Path,
    profile: str,
    kwargs: dict[str, Any],
    variables: dict[str, str],
    expected: str | None,
) -> None:
    env = make_env(tmp_path, config=ENDPOINT_CONFIG, **variables)
    config = resolve_s3_config(
        access_key_id="A", secret_access_key="S", profile=profile, env=env, **kwargs
    )
    assert config.endpoint_url == expected


def test_missing_services_section_is_an_error(tmp_path: Path) -> None:
    env = make_env(tmp_path, config="[default]\nservices = gone\n")
    with pytest.raises(ConfigurationError, match="services section 'gone'"):
        resolve_s3_config(access_key_id="A", secret_access_key="S", env=env)


def test_invalid_endpoint_names_its_source(tmp_path: Path) -> None:
    env = make_env(tmp_path, AWS_ENDPOINT_URL="localhost:9000")
    with pytest.raises(ConfigurationError, match="from AWS_ENDPOINT_URL\\)"):
        resolve_s3_config(access_key_id="A", secret_access_key="S", env=env)
    env = make_env(tmp_path, config="[default]\nendpoint_url = s3.example.com\n")
    with pytest.raises(ConfigurationError, match="profile 'default' in config file"):
        resolve_s3_config(access_key_id="A", secret_access_key="S", env=env)


# --------------------------------------------------------------------------- addressing style


@pytest.mark.parametrize(
    ("config_text", "kwargs", "expected"),
    [
        pytest.param(
            "[default]\ns3 =\n    addressing_style = path\n", {}, "path", id="nested-block"
        ),
        pytest.param(
            "[default]\ns3 =\n  # comment\n  max_concurrent_requests = 4\n"
            "  addressing_style = Virtual   ; why\nregion = eu-west-1\n",
            {},
            "virtual",
            id="nested-with-comments-and-other-keys",
        ),
        pytest.param(
            "[default]\ns3 =\n    addressing_style = path\n",
            {"addressing_style": "virtual"},
            "virtual",
            id="argument-wins",
        ),
        pytest.param("[default]\nregion = eu-west-1\n", {}, "auto", id="default-auto"),
        pytest.param(
            "[default]\ns3 =\n    use_accelerate_endpoint = true\n", {}, "auto", id="no-key"
        ),
    ],
)
def test_addressing_style(
    tmp_path: Path, config_text: str, kwargs: dict[str, Any], expected: str
) -> None:
    env = make_env(tmp_path, config=config_text)
    config = resolve_s3_config(access_key_id="A", secret_access_key="S", env=env, **kwargs)
    assert config.addressing_style == expected


def test_profile_argument_with_everything_explicit_still_reads_style(tmp_path: Path) -> None:
    env = make_env(tmp_path, config="[profile p]\ns3 =\n    addressing_style = path\n")
    config = resolve_s3_config(
        access_key_id="A",
        secret_access_key="S",
        region="us-east-1",
        endpoint_url="http://localhost:9000",
        profile="p",
        env=env,
    )
    assert config.addressing_style == "path"


@pytest.mark.parametrize(
    ("config_text", "match"),
    [
        ("[default]\ns3 =\n    addressing_style = dns\n", "invalid addressing style 'dns'"),
        ("[default]\ns3 = path\n", "must be a nested block"),
        ("[default]\ns3 =\n    addressing_style path\n", "nested line 1 is not of the form"),
    ],
)
def test_bad_nested_blocks(tmp_path: Path, config_text: str, match: str) -> None:
    env = make_env(tmp_path, config=config_text)
    with pytest.raises(ConfigurationError, match=match):
        resolve_s3_config(access_key_id="A", secret_access_key="S", env=env)


def test_reference_example_config(tmp_path: Path) -> None:
    """The annotated example of S3-FACTS section 8 parses, inline comments included."""
    env = make_env(
        tmp_path,
        credentials=f"""\
        [default]
        aws_access_key_id = AKIADEFAULT
        aws_secret_access_key = {SECRET}
        aws_session_token = {TOKEN}        ; optional

        [work]                       ; NO "profile " prefix in this file
        aws_access_key_id = AKIAWORK
        aws_secret_access_key = {SECRET}
        """,
        config="""\
        [default]
        region = us-east-1
        retry_mode = standard
        max_attempts = 3

        [profile work]               ; "profile " prefix required here (except for default)
        region = eu-west-1
        endpoint_url = https://s3.us-west-004.backblazeb2.com
        s3 =
            addressing_style = path  ; nested keys are indented under "s3 ="
        credential_process = /usr/bin/my-cred-helper   ; prints JSON
        services = my-services

        [services my-services]
        s3 =
            endpoint_url = http://localhost:9000
        """,
    )
    config = resolve_s3_config(profile="work", env=env)
    assert config.access_key_id == "AKIAWORK"  # the credentials file beats credential_process
    assert config.region == "eu-west-1"
    assert config.endpoint_url == "http://localhost:9000"
    assert config.addressing_style == "path"
    assert config.source == "shared credentials file (profile 'work')"
    default = resolve_s3_config(env=env)
    assert (default.access_key_id, default.session_token) == ("AKIADEFAULT", TOKEN)
    assert (default.region, default.endpoint_url, default.addressing_style) == (
        "us-east-1",
        None,
        "auto",
    )


# --------------------------------------------------------------------------- endpoint URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s3.example.com", ("https", "s3.example.com", 443, "")),
        ("http://localhost:9000/", ("http", "localhost", 9000, "")),
        ("http://127.0.0.1", ("http", "127.0.0.1", 80, "")),
        (
            "HTTPS://S3.Example.COM:8443/base/path/",
            ("https", "s3.example.com", 8443, "/base/path"),
        ),
        ("http://[::1]:9000", ("http", "[::1]", 9000, "")),
        ("https://[2001:db8::1]/gw", ("https", "[2001:db8::1]", 443, "/gw")),
        (
            "  https://s3.us-west-004.backblazeb2.com  ",
            ("https", "s3.us-west-004.backblazeb2.com", 443, ""),
        ),
        ("http://minio_1:9000", ("http", "minio_1", 9000, "")),
    ],
)
def test_validate_endpoint_url(url: str, expected: tuple[str, str, int, str]) -> None:
    assert validate_endpoint_url(url) == expected


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("ftp://example.com", "must start with http:// or https://"),
        ("localhost:9000", "must start with http:// or https://"),
        ("s3.example.com", "must start with http:// or https://"),
        ("https://", "has no host"),
        ("https://:9000", "has no host"),
        ("https:///path", "has no host"),
        ("https://host:notaport", "invalid port"),
        ("https://host:0", "invalid port"),
        ("https://host:70000", "invalid port"),
        ("https://host/?x=1", "query or fragment"),
        ("https://host/#frag", "query or fragment"),
        ("https://host?", "query or fragment"),
        ("https://ho st", "whitespace or control"),
        ("https://host\n/x", "whitespace or control"),
        ("https://exa..mple.com", "invalid host"),
        ("https://exämple.com", "invalid host"),
        ("http://[zz::1]", "valid"),
    ],
)
def test_validate_endpoint_url_rejects(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        validate_endpoint_url(url)


def test_validate_endpoint_url_masks_user_info() -> None:
    with pytest.raises(ConfigurationError, match="user info") as info:
        validate_endpoint_url(f"https://AKID:{SECRET}@s3.example.com/")
    assert_no_secret(info.value)
    assert "https://***@s3.example.com/" in str(info.value)
    with pytest.raises(ConfigurationError, match="user info") as info:
        validate_endpoint_url(f"AKID:{SECRET}@s3.example.com")  # no scheme either
    assert_no_secret(info.value)


def test_validate_endpoint_url_rejects_non_strings() -> None:
    with pytest.raises(ConfigurationError):
        validate_endpoint_url(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- results


def test_s3config_normalizes_and_validates() -> None:
    config = S3Config("AKID", SECRET, endpoint_url="HTTPS://S3.example.com:443/base/")
    assert config.endpoint_url == "https://s3.example.com/base"
    assert config.region == "us-east-1"
    assert config.addressing_style == "auto"
    assert S3Config("A", "S", endpoint_url="http://h:80").endpoint_url == "http://h"
    assert S3Config("A", "S", endpoint_url="http://h:9000").endpoint_url == "http://h:9000"
    with pytest.raises(ConfigurationError):
        S3Config("A", "S", addressing_style="dns")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        S3Config("A", "")
    with pytest.raises(ConfigurationError):
        S3Config("A", "S", region="")
    with pytest.raises(ConfigurationError):
        B2Credentials("", "K")


def test_secrets_never_in_repr_str_or_describe() -> None:
    s3 = S3Config(
        "AKIAEXAMPLEKEY1234",
        SECRET,
        session_token=TOKEN,
        endpoint_url="https://s3.example.com",
        source="environment",
    )
    b2 = B2Credentials("0001234567890ab0000000001", SECRET, source="arguments")
    for obj in (s3, b2):
        for text in (repr(obj), str(obj), describe(obj)):
            assert SECRET not in text
            assert TOKEN not in text
    assert "AKIAEXAMPLEKEY1234" in repr(s3)
    assert describe(s3) == (
        "credentials from environment (access key ****1234, with session token); "
        "region us-east-1; endpoint https://s3.example.com; addressing style auto"
    )
    assert describe(b2) == "B2 credentials from arguments (key id ****0001)"
    assert "AWS default" in describe(S3Config("AK", "S"))
    assert "****" in describe(S3Config("AK", "S"))


def test_configs_are_frozen() -> None:
    config = S3Config("A", "S")
    with pytest.raises(AttributeError):
        config.region = "eu-west-1"  # type: ignore[misc]


# --------------------------------------------------------------------------- B2


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        (
            {"key_id": "argid", "key": SECRET},
            {"B2_APPLICATION_KEY_ID": "envid", "B2_APPLICATION_KEY": "k"},
            ("argid", "arguments"),
        ),
        (
            {},
            {"B2_APPLICATION_KEY_ID": "envid", "B2_APPLICATION_KEY": SECRET},
            ("envid", "environment"),
        ),
    ],
)
def test_b2_credentials(
    kwargs: dict[str, str], env: dict[str, str], expected: tuple[str, str]
) -> None:
    creds = resolve_b2_credentials(env=env, **kwargs)
    assert (creds.key_id, creds.source) == expected
    assert SECRET not in repr(creds)


@pytest.mark.parametrize(
    ("kwargs", "env", "match"),
    [
        ({"key_id": "id"}, {}, "missing key argument"),
        ({"key": SECRET}, {}, "missing key_id argument"),
        ({}, {"B2_APPLICATION_KEY_ID": "id"}, "B2_APPLICATION_KEY is not set"),
        ({}, {"B2_APPLICATION_KEY": SECRET}, "B2_APPLICATION_KEY_ID is not set"),
        ({}, {}, "B2_APPLICATION_KEY_ID/B2_APPLICATION_KEY"),
        ({}, {"B2_APPLICATION_KEY_ID": " ", "B2_APPLICATION_KEY": ""}, "no B2 credentials"),
        ({"key_id": "", "key": SECRET}, {}, "key_id must be a non-empty"),
    ],
)
def test_b2_credentials_errors(kwargs: dict[str, str], env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        resolve_b2_credentials(env=env, **kwargs)
    assert_no_secret(info.value)


def test_b2_env_none_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", {"B2_APPLICATION_KEY_ID": "osid", "B2_APPLICATION_KEY": "k"})
    assert resolve_b2_credentials().source == "environment"


# --------------------------------------------------------------------------- startup cost


def test_heavy_modules_are_imported_lazily() -> None:
    source = Path(_config.__file__).read_text(encoding="utf-8")
    top_level: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top_level.add(node.module.split(".")[0])
    lazy = {"configparser", "os", "shlex", "subprocess", "json", "urllib", "ipaddress", "re"}
    assert not top_level & lazy


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ('"2099-01-01T00:00:00Z"', 4070908800.0),
        ('"2099-01-01T02:00:00+02:00"', 4070908800.0),
        ('"2099-01-01T00:00:00"', 4070908800.0),  # no zone: UTC, as AWS tools write it
        ("null", None),
    ],
)
def test_credential_process_expiration(
    tmp_path: Path, printed: str, expected: float | None
) -> None:
    command = helper_script(
        tmp_path,
        'print(\'{"Version": 1, "AccessKeyId": "AKIDP", "SecretAccessKey": "S", '
        f'"Expiration": {printed}}}\')\n',
    )
    env = make_env(tmp_path, credentials=f"[default]\ncredential_process = {command}\n")
    assert resolve_s3_config(env=env).expires_at == expected


def test_credential_process_bad_expiration(tmp_path: Path) -> None:
    command = helper_script(
        tmp_path,
        f'print(\'{{"Version": 1, "AccessKeyId": "AKIDP", "SecretAccessKey": "{SECRET}", '
        '"Expiration": "tomorrow"}\')\n',
    )
    env = make_env(tmp_path, credentials=f"[default]\ncredential_process = {command}\n")
    with pytest.raises(ConfigurationError, match="Expiration") as info:
        resolve_s3_config(env=env)
    assert_no_secret(info.value, SECRET)


def test_static_credentials_never_expire(tmp_path: Path) -> None:
    env = make_env(tmp_path, credentials=CREDS)
    assert resolve_s3_config(env=env).expires_at is None
    assert resolve_s3_config(access_key_id="A", secret_access_key="B").expires_at is None
