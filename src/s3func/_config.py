"""Credential, region, endpoint and addressing-style resolution.

S3 settings come from, in order of precedence:

* **Credentials**: the ``access_key_id``/``secret_access_key``/``session_token`` arguments;
  then ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` (or the legacy
  ``AWS_SECURITY_TOKEN``), skipped when ``profile=`` is passed in code; then the profile: static
  keys in the shared credentials file, its ``credential_process``, static keys in the config
  file.
* **Profile**: the ``profile`` argument, ``AWS_PROFILE``, ``AWS_DEFAULT_PROFILE``, ``default``.
  A named profile that exists in neither file is an error only when credentials have to come
  from it; settings such as the region are simply absent then.
* **Region**: argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region``,
  ``us-east-1``.
* **Endpoint**: argument, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the ``s3`` block of
  the ``[services NAME]`` section named by the profile's ``services`` key, the profile's
  ``endpoint_url``, none (AWS). ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` (or the profile's
  ``ignore_configure_endpoint_urls = true``) disables every source but the argument.
* **Addressing style**: argument, the profile's nested ``s3 = / addressing_style = ...``,
  ``auto``.

Settings other than credentials are read from the config file only, as the AWS tools document.
The files are parsed lazily and only when a value is still missing; when keys, region and
endpoint are all passed as arguments (and ``profile`` is not) no file is touched at all and the
addressing style is the argument or ``auto``. Passing keys as arguments never reads the shared
credentials file, so a stray ``AWS_PROFILE`` cannot break code that configures itself.

B2 credentials come from the ``key_id``/``key`` arguments, then ``B2_APPLICATION_KEY_ID`` and
``B2_APPLICATION_KEY``.

No secret, session token or ``credential_process`` output ever appears in a message or repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from .errors import ConfigurationError
from .models import FrozenValue

if TYPE_CHECKING:
    import configparser

__all__ = [
    "DEFAULT_REGION",
    "AddressingStyle",
    "B2Credentials",
    "S3Config",
    "describe",
    "resolve_b2_credentials",
    "resolve_s3_config",
    "validate_endpoint_url",
]

AddressingStyle = Literal["auto", "path", "virtual"]
"""How bucket names are put into request URLs (``auto`` lets the S3 layer decide)."""

DEFAULT_REGION = "us-east-1"
"""The region used when no argument, variable or profile names one."""

_ADDRESSING_STYLES: tuple[AddressingStyle, ...] = ("auto", "path", "virtual")
_CREDENTIAL_PROCESS_TIMEOUT = 300.0
_PARSER_DEFAULT_SECTION = "\x00no-default-section\x00"
_UNSUPPORTED_PROFILE_KEYS = {
    "role_arn": "assume-role (role_arn)",
    "sso_session": "IAM Identity Center (sso_session)",
    "sso_start_url": "IAM Identity Center (sso_start_url)",
    "web_identity_token_file": "web identity (web_identity_token_file)",
    "login_session": "console login (login_session)",
}


# --------------------------------------------------------------------------- results


class S3Config(FrozenValue):
    """Everything needed to sign and address S3 requests.

    Usually built by :func:`resolve_s3_config`; constructing it directly validates the values
    the same way. The secret key and session token are left out of the repr.

    Attributes:
        access_key_id: The access key id.
        secret_access_key: The secret access key (never shown).
        session_token: The session token of temporary credentials, or ``None`` (never shown).
        region: The signing region.
        endpoint_url: The normalized custom endpoint (``scheme://host[:port][/base]``, no
            trailing slash), or ``None`` for AWS.
        addressing_style: ``"auto"``, ``"path"`` or ``"virtual"``.
        source: Where the credentials came from, e.g. ``"arguments"``, ``"environment"``,
            ``"shared credentials file (profile 'work')"``, ``"credential_process (profile
            'work')"`` or ``"config file (profile 'work')"``.
        expires_at: When temporary credentials expire (seconds since the epoch), as a
            ``credential_process`` reported it; ``None`` when they do not expire.
    """

    __slots__ = (
        "access_key_id",
        "addressing_style",
        "endpoint_url",
        "expires_at",
        "region",
        "secret_access_key",
        "session_token",
        "source",
    )
    _hidden = frozenset({"secret_access_key", "session_token"})

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    region: str
    endpoint_url: str | None
    addressing_style: AddressingStyle
    source: str
    expires_at: float | None

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        region: str = DEFAULT_REGION,
        endpoint_url: str | None = None,
        addressing_style: AddressingStyle = "auto",
        source: str = "arguments",
        expires_at: float | None = None,
    ) -> None:
        _check_nonempty(access_key_id, "access_key_id")
        _check_nonempty(secret_access_key, "secret_access_key")
        if session_token is not None:
            _check_nonempty(session_token, "session_token")
        _check_region(region, "region")
        _check_style(addressing_style, "addressing_style")
        if endpoint_url is not None:
            endpoint_url = _normalize_endpoint(endpoint_url, "endpoint_url")
        self._init_field("access_key_id", access_key_id)
        self._init_field("secret_access_key", secret_access_key)
        self._init_field("session_token", session_token)
        self._init_field("region", region)
        self._init_field("endpoint_url", endpoint_url)
        self._init_field("addressing_style", addressing_style)
        self._init_field("source", source)
        self._init_field("expires_at", expires_at)


class B2Credentials(FrozenValue):
    """A Backblaze B2 application key.

    Attributes:
        key_id: The application key id.
        key: The application key (never shown).
        source: ``"arguments"`` or ``"environment"``.
    """

    __slots__ = ("key", "key_id", "source")
    _hidden = frozenset({"key"})

    key_id: str
    key: str
    source: str

    def __init__(self, key_id: str, key: str, source: str = "arguments") -> None:
        _check_nonempty(key_id, "key_id")
        _check_nonempty(key, "key")
        self._init_field("key_id", key_id)
        self._init_field("key", key)
        self._init_field("source", source)


def describe(config: S3Config | B2Credentials) -> str:
    """Return a one-line, secret-free summary of a resolved configuration.

    The access key id is masked down to its last four characters.

    Args:
        config: A result of :func:`resolve_s3_config` or :func:`resolve_b2_credentials`.

    Returns:
        For example ``"credentials from environment (access key ****WXYZ, with session
        token); region eu-west-1; endpoint https://s3.example.com; addressing style path"``.
    """
    if isinstance(config, B2Credentials):
        return f"B2 credentials from {config.source} (key id {_mask(config.key_id)})"
    token = ", with session token" if config.session_token else ""
    endpoint = config.endpoint_url or "AWS default"
    return (
        f"credentials from {config.source} (access key {_mask(config.access_key_id)}{token}); "
        f"region {config.region}; endpoint {endpoint}; "
        f"addressing style {config.addressing_style}"
    )


# --------------------------------------------------------------------------- resolution


def resolve_s3_config(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    addressing_style: str | None = None,
    env: Mapping[str, str] | None = None,
) -> S3Config:
    """Resolve S3 credentials, region, endpoint and addressing style.

    See the module docstring for the precedence rules.

    Args:
        access_key_id: Access key id; must be passed together with ``secret_access_key``.
        secret_access_key: Secret access key.
        session_token: Session token for temporary credentials (only with explicit keys).
        region: Signing region.
        endpoint_url: Custom endpoint, ``http://`` or ``https://``, optionally with a base path.
        profile: Profile of the shared files. Passing it skips the ``AWS_*`` key variables.
        addressing_style: ``"auto"``, ``"path"`` or ``"virtual"``.
        env: The environment to read instead of :data:`os.environ` (also used to expand ``~``
            in file paths through ``HOME``/``USERPROFILE``).

    Returns:
        The resolved, validated configuration.

    Raises:
        ConfigurationError: An argument, variable or file value is invalid; a profile needed
            for credentials does not exist; a ``credential_process`` failed; or no
            credentials were found (the message lists the sources tried).
    """
    if env is None:
        import os

        env = os.environ

    explicit = _explicit_keys(access_key_id, secret_access_key, session_token)
    if profile is not None and (not isinstance(profile, str) or not profile.strip()):
        raise ConfigurationError("profile must be a non-empty string")
    if region is not None:
        _check_region(region, "the region argument")
    if endpoint_url is not None:
        endpoint_url = _normalize_endpoint(endpoint_url, "the endpoint_url argument")
    style = (
        _check_style(addressing_style, "the addressing_style argument")
        if addressing_style is not None
        else None
    )

    # Everything given in code: touch no file (a profile could only add an addressing style).
    if (
        explicit is not None
        and region is not None
        and endpoint_url is not None
        and (profile is None or style is not None)
    ):
        return S3Config(
            access_key_id=explicit[0],
            secret_access_key=explicit[1],
            session_token=explicit[2],
            region=region,
            endpoint_url=endpoint_url,
            addressing_style=style or "auto",
            source="arguments",
        )

    prof = _Profile(env, profile)

    expires_at: float | None = None
    if explicit is not None:
        key_id, secret, token = explicit
        source = "arguments"
    else:
        key_id, secret, token, source, expires_at = _credentials_from_env_or_profile(env, prof)

    if region is None:
        region = _region_from(env, prof)
    if endpoint_url is None:
        endpoint_url = _endpoint_from(env, prof)
    if style is None:
        style = _style_from(prof)

    return S3Config(
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token,
        region=region,
        endpoint_url=endpoint_url,
        addressing_style=style,
        source=source,
        expires_at=expires_at,
    )


def resolve_b2_credentials(
    *,
    key_id: str | None = None,
    key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> B2Credentials:
    """Resolve a B2 application key from arguments or ``B2_APPLICATION_KEY_ID``/``_KEY``.

    Args:
        key_id: Application key id; must be passed together with ``key``.
        key: Application key.
        env: The environment to read instead of :data:`os.environ`.

    Returns:
        The credentials and where they came from.

    Raises:
        ConfigurationError: Only one half of a key was given, or none was found.
    """
    if key_id is not None or key is not None:
        if key_id is None or key is None:
            missing = "key" if key is None else "key_id"
            raise ConfigurationError(
                f"key_id and key must be passed together (missing {missing} argument)"
            )
        return B2Credentials(key_id=key_id, key=key, source="arguments")
    if env is None:
        import os

        env = os.environ
    env_id = _env(env, "B2_APPLICATION_KEY_ID")
    env_key = _env(env, "B2_APPLICATION_KEY")
    if env_id is not None and env_key is not None:
        return B2Credentials(key_id=env_id, key=env_key, source="environment")
    if env_id is not None or env_key is not None:
        missing = "B2_APPLICATION_KEY" if env_key is None else "B2_APPLICATION_KEY_ID"
        raise ConfigurationError(
            f"incomplete B2 credentials in the environment: {missing} is not set"
        )
    raise ConfigurationError(
        "no B2 credentials found; tried the key_id/key arguments (not given) and the "
        "environment variables B2_APPLICATION_KEY_ID/B2_APPLICATION_KEY (not set)"
    )


def validate_endpoint_url(url: str) -> tuple[str, str, int, str]:
    """Check an endpoint URL and split it into its parts.

    Only ``http`` and ``https`` URLs with a host are accepted; user info, queries and
    fragments are rejected. A path is allowed and returned as the base path, without its
    trailing slash.

    Args:
        url: For example ``"https://s3.us-west-004.backblazeb2.com"`` or
            ``"http://localhost:9000/gateway/"``.

    Returns:
        ``(scheme, host, port, base_path)``: the lower-case scheme; the lower-case host, with
        brackets for IPv6 literals (``"[::1]"``), as it appears in a URL or ``Host`` header;
        the port (default 443 or 80); and the base path (``""`` or e.g. ``"/gateway"``).

    Raises:
        ConfigurationError: The URL is not a usable endpoint.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("endpoint URL must be a non-empty string")
    text = url.strip()
    shown = _safe_url(text)
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ConfigurationError(f"endpoint URL {shown!r} contains whitespace or control chars")
    if "@" in text:
        raise ConfigurationError(
            f"endpoint URL {shown!r} must not contain user info (user:password@) or '@'"
        )

    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConfigurationError(f"endpoint URL {shown!r} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(f"endpoint URL {shown!r} must start with http:// or https://")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ConfigurationError(f"endpoint URL {shown!r} must not have a query or fragment")
    hostname = parts.hostname
    if not hostname:
        raise ConfigurationError(f"endpoint URL {shown!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"endpoint URL {shown!r} has an invalid port") from None
    if port == 0:
        raise ConfigurationError(f"endpoint URL {shown!r} has an invalid port")
    if ":" in hostname:
        import ipaddress

        try:
            ipaddress.IPv6Address(hostname.split("%", 1)[0])
        except ValueError:
            raise ConfigurationError(f"endpoint URL {shown!r} has an invalid host") from None
        host = f"[{hostname}]"
    else:
        import re

        if not re.fullmatch(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?", hostname):
            raise ConfigurationError(
                f"endpoint URL {shown!r} has an invalid host (internationalized names must "
                "be given in their xn-- form)"
            )
        host = hostname
    if port is None:
        port = 443 if scheme == "https" else 80
    base_path = parts.path.rstrip("/")
    return scheme, host, port, base_path


# --------------------------------------------------------------------------- helpers


def _check_nonempty(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string")


def _check_region(value: object, where: str) -> None:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        shown = repr(value) if isinstance(value, str) else type(value).__name__
        raise ConfigurationError(
            f"invalid region {shown} from {where}: expected a name like 'us-east-1'"
        )


def _check_style(value: object, where: str) -> AddressingStyle:
    if isinstance(value, str):
        lowered = value.strip().lower()
        for style in _ADDRESSING_STYLES:
            if lowered == style:
                return style
    shown = repr(value) if isinstance(value, str) else type(value).__name__
    raise ConfigurationError(
        f"invalid addressing style {shown} from {where}: expected 'auto', 'path' or 'virtual'"
    )


def _normalize_endpoint(url: str, where: str) -> str:
    try:
        scheme, host, port, base_path = validate_endpoint_url(url)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc.message} (from {where})") from None
    default_port = 443 if scheme == "https" else 80
    netloc = host if port == default_port else f"{host}:{port}"
    return f"{scheme}://{netloc}{base_path}"


def _safe_url(text: str) -> str:
    """Return ``text`` for messages, masking everything up to the last ``@``.

    Secret keys may contain ``/``, so a ``user:secret@`` part cannot be located by URL rules;
    masking through the last ``@`` is the safe choice.
    """
    at = text.rfind("@")
    if at < 0:
        return text
    scheme_end = text.find("//")
    start = scheme_end + 2 if 0 <= scheme_end < at else 0
    return f"{text[:start]}***@{text[at + 1 :]}"


def _mask(value: str) -> str:
    return f"****{value[-4:]}" if len(value) >= 12 else "****"


def _env(env: Mapping[str, str], name: str) -> str | None:
    """Return an environment value, treating empty or blank values as unset."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _explicit_keys(
    access_key_id: str | None, secret_access_key: str | None, session_token: str | None
) -> tuple[str, str, str | None] | None:
    if access_key_id is None and secret_access_key is None:
        if session_token is not None:
            raise ConfigurationError(
                "session_token was passed without access_key_id and secret_access_key"
            )
        return None
    if access_key_id is None or secret_access_key is None:
        missing = "secret_access_key" if secret_access_key is None else "access_key_id"
        raise ConfigurationError(
            "access_key_id and secret_access_key must be passed together "
            f"(missing {missing} argument)"
        )
    _check_nonempty(access_key_id, "the access_key_id argument")
    _check_nonempty(secret_access_key, "the secret_access_key argument")
    if session_token is not None:
        _check_nonempty(session_token, "the session_token argument")
    return access_key_id, secret_access_key, session_token


def _expand_home(path: str, env: Mapping[str, str]) -> str:
    if path == "~" or path.startswith(("~/", "~\\")):
        home = _env(env, "HOME") or _env(env, "USERPROFILE")
        if home:
            return home + path[1:]
    if path.startswith("~"):
        import os.path

        return os.path.expanduser(path)
    return path


# --------------------------------------------------------------------------- shared files


def _new_parser() -> configparser.RawConfigParser:
    import configparser

    return configparser.RawConfigParser(
        default_section=_PARSER_DEFAULT_SECTION,
        strict=False,
        interpolation=None,
        inline_comment_prefixes=("#", ";"),
    )


def _read_ini(path: str, kind: str) -> dict[str, dict[str, str]] | None:
    """Parse one shared file into ``{section: {key: raw value}}``; missing file -> ``None``."""
    import configparser

    parser = _new_parser()
    failure: str | None = None
    try:
        with open(path, encoding="utf-8-sig") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        failure = "it is a directory"
    except PermissionError:
        failure = "permission denied"
    except UnicodeDecodeError:
        failure = "it is not valid UTF-8"
    except configparser.MissingSectionHeaderError as exc:  # before its base, ParsingError
        failure = f"line {exc.lineno} comes before any [section] header"
    except configparser.ParsingError as exc:
        lines = ", ".join(str(number) for number, _ in exc.errors[:5])
        failure = f"syntax error on line {lines}"
    except configparser.Error as exc:
        failure = f"syntax error ({type(exc).__name__})"
    except OSError as exc:
        failure = exc.strerror or type(exc).__name__
    if failure is not None:
        # Raised outside the ``except`` blocks so the parser error, whose text may quote a
        # line holding a secret, is not kept as ``__context__``.
        raise ConfigurationError(f"cannot read {kind} {path!r}: {failure}")
    return {name: dict(parser.items(name)) for name in parser.sections()}


def _parse_nested(raw: str, where: str) -> dict[str, str]:
    """Parse an indented ``key = value`` block (the value of ``s3 =`` in the config file)."""
    lines = raw.split("\n")
    if lines[0].strip():
        raise ConfigurationError(
            f"{where} must be a nested block ('s3 =' followed by indented 'key = value' lines)"
        )
    values: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                f"{where}: nested line {number} is not of the form 'key = value'"
            )
        values[key.strip().lower()] = value.strip()
    return values


class _Profile:
    """The selected profile of the shared credentials and config files, read on demand."""

    def __init__(self, env: Mapping[str, str], explicit: str | None) -> None:
        self.explicit = explicit is not None
        if explicit is not None:
            self.name, self.origin = explicit.strip(), "the profile argument"
        elif (name := _env(env, "AWS_PROFILE")) is not None:
            self.name, self.origin = name, "AWS_PROFILE"
        elif (name := _env(env, "AWS_DEFAULT_PROFILE")) is not None:
            self.name, self.origin = name, "AWS_DEFAULT_PROFILE"
        else:
            self.name, self.origin = "default", "default"
        self.credentials_path = _expand_home(
            _env(env, "AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", env
        )
        self.config_path = _expand_home(_env(env, "AWS_CONFIG_FILE") or "~/.aws/config", env)
        self._credentials: dict[str, dict[str, str]] | None = None
        self._config: dict[str, dict[str, str]] | None = None
        self.credentials_exists = False
        self.config_exists = False

    @property
    def label(self) -> str:
        return f"profile {self.name!r}"

    def credentials_file(self) -> dict[str, dict[str, str]]:
        if self._credentials is None:
            parsed = _read_ini(self.credentials_path, "shared credentials file")
            self.credentials_exists = parsed is not None
            self._credentials = parsed or {}
        return self._credentials

    def config_file(self) -> dict[str, dict[str, str]]:
        if self._config is None:
            parsed = _read_ini(self.config_path, "config file")
            self.config_exists = parsed is not None
            self._config = parsed or {}
        return self._config

    def absence(self, exists: bool, section: dict[str, str] | None) -> str:
        """Describe why a file gave no keys, for the "no credentials" message."""
        if not exists:
            return "file does not exist"
        if section is None:
            return f"no {self.label}"
        return f"no keys in {self.label}"

    def credentials_section(self) -> dict[str, str] | None:
        return self.credentials_file().get(self.name)

    def config_section(self) -> dict[str, str] | None:
        sections = self.config_file()
        found: dict[str, str] | None = None
        if self.name == "default" and "default" in sections:
            found = dict(sections["default"])
        for section, values in sections.items():
            words = section.split(None, 1)
            if len(words) == 2 and words[0] == "profile" and words[1].strip() == self.name:
                found = {**(found or {}), **values}
        return found

    def setting(self, key: str) -> str | None:
        section = self.config_section()
        if section is None:
            return None
        value = section.get(key)
        if value is None or not value.strip():
            return None
        return value.strip()

    def nested(self, key: str) -> dict[str, str]:
        section = self.config_section()
        if section is None or key not in section:
            return {}
        return _parse_nested(
            section[key], f"{key!r} in {self.label} of config file {self.config_path!r}"
        )

    def services_s3(self) -> dict[str, str]:
        name = self.setting("services")
        if name is None:
            return {}
        for section, values in self.config_file().items():
            words = section.split(None, 1)
            if len(words) == 2 and words[0] == "services" and words[1].strip() == name:
                if "s3" not in values:
                    return {}
                return _parse_nested(
                    values["s3"],
                    f"'s3' in [services {name}] of config file {self.config_path!r}",
                )
        raise ConfigurationError(
            f"{self.label} in config file {self.config_path!r} refers to services section "
            f"{name!r}, which does not exist"
        )

    def require(self) -> None:
        """Raise if a named profile exists in neither file (``default`` may be absent)."""
        if self.name == "default":
            return
        if self.credentials_section() is None and self.config_section() is None:
            raise ConfigurationError(
                f"{self.label} (from {self.origin}) was not found in the shared credentials "
                f"file {self.credentials_path!r} or the config file {self.config_path!r}"
            )


def _static_keys(section: dict[str, str] | None, where: str) -> tuple[str, str, str | None] | None:
    if section is None:
        return None
    key_id = (section.get("aws_access_key_id") or "").strip()
    secret = (section.get("aws_secret_access_key") or "").strip()
    if not key_id and not secret:
        return None
    if not key_id or not secret:
        present, missing = (
            ("aws_access_key_id", "aws_secret_access_key")
            if key_id
            else ("aws_secret_access_key", "aws_access_key_id")
        )
        raise ConfigurationError(f"{where} has {present} but no {missing}")
    token = (section.get("aws_session_token") or section.get("aws_security_token") or "").strip()
    return key_id, secret, token or None


def _credentials_from_env_or_profile(
    env: Mapping[str, str], prof: _Profile
) -> tuple[str, str, str | None, str, float | None]:
    """Key id, secret, token, where they came from, and when they expire (or ``None``)."""
    tried = ["the access_key_id/secret_access_key arguments (not given)"]
    if prof.explicit:
        tried.append(
            "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(skipped because profile= was passed)"
        )
    else:
        key_id = _env(env, "AWS_ACCESS_KEY_ID")
        secret = _env(env, "AWS_SECRET_ACCESS_KEY")
        if key_id is not None and secret is not None:
            token = _env(env, "AWS_SESSION_TOKEN") or _env(env, "AWS_SECURITY_TOKEN")
            return key_id, secret, token, "environment", None
        if key_id is not None or secret is not None:
            missing = "AWS_SECRET_ACCESS_KEY" if secret is None else "AWS_ACCESS_KEY_ID"
            raise ConfigurationError(
                f"incomplete credentials in the environment: {missing} is not set"
            )
        tried.append("environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (not set)")

    prof.require()
    label = prof.label
    cred_section = prof.credentials_section()
    keys = _static_keys(
        cred_section, f"{label} in shared credentials file {prof.credentials_path!r}"
    )
    if keys is not None:
        return (*keys, f"shared credentials file ({label})", None)
    tried.append(
        f"shared credentials file {prof.credentials_path!r} "
        f"({prof.absence(prof.credentials_exists, cred_section)})"
    )

    config_section = prof.config_section()
    process = (cred_section or {}).get("credential_process") or (config_section or {}).get(
        "credential_process"
    )
    if process is not None and process.strip():
        key_id, secret, token, expires = _run_credential_process(process.strip(), label)
        return key_id, secret, token, f"credential_process ({label})", expires
    tried.append(f"credential_process ({label}: not configured)")

    keys = _static_keys(config_section, f"{label} in config file {prof.config_path!r}")
    if keys is not None:
        return (*keys, f"config file ({label})", None)
    tried.append(
        f"static keys in config file {prof.config_path!r} "
        f"({prof.absence(prof.config_exists, config_section)})"
    )

    hints: list[str] = []
    merged = {**(config_section or {}), **(cred_section or {})}
    unsupported = [text for key, text in _UNSUPPORTED_PROFILE_KEYS.items() if key in merged]
    if unsupported:
        hints.append(
            f"{label} uses {', '.join(unsupported)}, which s3func does not support; use "
            "credential_process instead, e.g. 'credential_process = aws configure "
            f"export-credentials --profile {prof.name} --format process' in another profile"
        )
    for var, what in (
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "web identity"),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "container"),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "container"),
    ):
        if _env(env, var) is not None:
            hints.append(f"{var} is set, but s3func does not fetch {what} credentials")
    hints.append("instance metadata (IMDS) is never queried")
    raise ConfigurationError(
        "no S3 credentials found; tried, in order: "
        + "; ".join(tried)
        + ". Note: "
        + "; ".join(hints)
    )


def _run_credential_process(
    command: str, label: str
) -> tuple[str, str, str | None, float | None]:
    """Run a ``credential_process`` command and parse its Version 1 JSON output.

    Returns the key id, secret, session token and the ``Expiration`` (seconds since the
    epoch; ``None`` when the output has none: the credentials do not expire).

    The command runs without a shell; its stderr goes to ours (so prompts and diagnostics
    stay visible), and neither its output nor its arguments ever reach a message.
    """
    import json
    import os
    import shlex
    import subprocess

    where = f"credential_process of {label}"
    try:
        argv = shlex.split(command, posix=os.name != "nt")
    except ValueError:
        raise ConfigurationError(f"{where} is not a valid command line") from None
    if not argv:
        raise ConfigurationError(f"{where} is empty")

    failure: str | None = None
    stdout = b""
    try:
        completed = subprocess.run(
            argv, stdout=subprocess.PIPE, timeout=_CREDENTIAL_PROCESS_TIMEOUT, check=False
        )
    except FileNotFoundError:
        failure = f"program {argv[0]!r} was not found"
    except PermissionError:
        failure = f"program {argv[0]!r} is not executable"
    except subprocess.TimeoutExpired:
        failure = f"did not finish within {_CREDENTIAL_PROCESS_TIMEOUT:g} s"
    except OSError as exc:
        failure = f"could not be started ({exc.strerror or type(exc).__name__})"
    else:
        if completed.returncode != 0:
            failure = f"exited with status {completed.returncode}"
        stdout = completed.stdout
    if failure is not None:
        raise ConfigurationError(f"{where} failed: {failure}")

    data: object = None
    try:
        data = json.loads(stdout)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        failure = "did not print a JSON object on stdout"
    if failure is not None:
        # Raised outside the ``except`` block: JSONDecodeError keeps the whole output.
        raise ConfigurationError(f"{where} {failure}")
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where} did not print a JSON object on stdout")
    version = data.get("Version")
    if version != 1 or isinstance(version, bool):
        raise ConfigurationError(f"{where} printed an unsupported Version (expected 1)")
    key_id = data.get("AccessKeyId")
    secret = data.get("SecretAccessKey")
    token = data.get("SessionToken")
    for name, value in (("AccessKeyId", key_id), ("SecretAccessKey", secret)):
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{where} printed no {name}")
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigurationError(f"{where} printed an invalid SessionToken")
    assert isinstance(key_id, str) and isinstance(secret, str)  # narrowed above
    return key_id, secret, token, _expiration(data.get("Expiration"), where)


def _expiration(value: object, where: str) -> float | None:
    """Parse a credential ``Expiration`` (ISO 8601, e.g. ``2026-11-21T12:00:00Z``)."""
    if value is None:
        return None
    import datetime as dt

    when = None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"  # fromisoformat takes "Z" only from Python 3.11
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            when = None
    if when is None:
        raise ConfigurationError(f"{where} printed an Expiration that is not an ISO 8601 time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _region_from(env: Mapping[str, str], prof: _Profile) -> str:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = _env(env, var)
        if value is not None:
            _check_region(value, var)
            return value
    value = prof.setting("region")
    if value is not None:
        _check_region(value, f"{prof.label} in config file {prof.config_path!r}")
        return value
    return DEFAULT_REGION


def _endpoint_from(env: Mapping[str, str], prof: _Profile) -> str | None:
    ignore = env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
    if ignore is not None and ignore.strip():
        if _is_true(ignore):
            return None
    elif _is_true(prof.setting("ignore_configure_endpoint_urls")):
        return None
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = _env(env, var)
        if value is not None:
            return _normalize_endpoint(value, var)
    where = f"config file {prof.config_path!r}"
    value = prof.services_s3().get("endpoint_url")
    if value:
        return _normalize_endpoint(value, f"the services section of {prof.label} in {where}")
    value = prof.setting("endpoint_url")
    if value is not None:
        return _normalize_endpoint(value, f"{prof.label} in {where}")
    return None


def _style_from(prof: _Profile) -> AddressingStyle:
    value = prof.nested("s3").get("addressing_style")
    if not value:
        return "auto"
    return _check_style(value, f"{prof.label} in config file {prof.config_path!r}")
