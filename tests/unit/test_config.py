"""Settings: canonical names, IBM aliases, layering, and one clear line per bad value."""

from __future__ import annotations

import re

import pytest

from cdh import config
from cdh.config import ConfigError, load


def test_defaults_derive_from_host_dir():
    s = load([{"CDH_HOST_DIR": "/srv/cdh"}])
    assert s.core_dir == "/srv/cdh/cores"
    assert s.event_dir == "/srv/cdh/events"
    assert s.compression == "deflate"
    assert s.composer_timeout_s == 600


@pytest.mark.parametrize(
    ("env", "attr", "expected"),
    [
        ({"COMP_COMPRESSION": "false"}, "compression", "none"),
        ({"COMP_COMPRESSION": "true"}, "compression", "deflate"),
        ({"INTERVAL": "90000"}, "interval_s", 90.0),          # IBM: milliseconds, any length
        ({"CDH_INTERVAL": "1h30m"}, "interval_s", 5400.0),
        ({"COMP_LOG_LEVEL": "Warn"}, "composer_log_level", "warning"),
        ({"S3_BUCKET_NAME": "b"}, "s3_bucket", "b"),
        ({"COMP_POD_SELECTOR_LABEL": "app=web"}, "pod_selector", ("app", "web")),
        ({"COMP_POD_SELECTOR_LABEL": "example.com/dump"}, "pod_selector", ("example.com/dump", None)),
        ({"CDH_PART_SIZE": "64MiB"}, "part_size_bytes", 64 << 20),
        ({"S3_ENDPOINT": "storage.googleapis.com"}, "s3_endpoint", "https://storage.googleapis.com"),
        ({"SCHEDULE": "*/30 * * * * *"}, "schedule", "*/30 * * * * *"),
    ],
)
def test_ibm_aliases_and_units(env, attr, expected):
    value = getattr(load([env]), attr)
    assert (str(value) if attr == "schedule" else value) == expected


def test_canonical_name_wins_over_alias_in_the_same_layer():
    assert load([{"CDH_CORE_DIR": "/a", "CORE_DIR": "/b"}]).core_dir == "/a"


def test_later_layer_wins():
    assert load([{"CDH_LOG_LINES": "5"}, {"COMP_LOG_LENGTH": "7"}]).log_lines == 7


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CDH_COMPRESSION": "gzip"}, "CDH_COMPRESSION='gzip' is not valid: one of deflate, none, zstd"),
        ({"COMP_COMPRESSION": "maybe"}, "COMP_COMPRESSION='maybe' is not valid: true or false"),
        ({"CDH_COMPRESSON": "none"}, "CDH_COMPRESSON is not a cdh setting (did you mean CDH_COMPRESSION?)"),
        ({"CDH_LOG_LINES": "-1"}, "CDH_LOG_LINES='-1' is not valid: an integer from 0 to 4294967295"),
        ({"CDH_PART_SIZE": "1MiB"}, "CDH_PART_SIZE='1MiB' is not valid: a size in bytes such as 64MiB"),
        ({"CDH_HOST_DIR": "relative"}, "CDH_HOST_DIR='relative' is not valid: an absolute path"),
        ({"INTERVAL": "soon"}, "INTERVAL='soon' is not valid: milliseconds"),
        ({"CDH_S3_ACCESS_KEY": "AKIA"}, "CDH_S3_SECRET_KEY is not set"),
        ({"CDH_FILENAME_TEMPLATE": "{uuid}-{evil}"}, "CDH_FILENAME_TEMPLATE='{uuid}-{evil}' is not valid"),
        ({"CDH_FILENAME_TEMPLATE": "{uuid"}, "CDH_FILENAME_TEMPLATE='{uuid' is not valid"),
        ({"COMP_POD_SELECTOR_LABEL": "bad key!"}, "COMP_POD_SELECTOR_LABEL='bad key!' is not valid"),
        ({"SCHEDULE": "every day"}, "SCHEDULE='every day' is not valid: IBM's cron: 6 fields"),
        ({"CDH_SCHEDULE": "every day"}, "CDH_SCHEDULE='every day' is not valid: a cron expression"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError) as err:
        load([env])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_secret_values_are_never_shown_in_errors(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n")
    s = load([{"CDH_S3_ACCESS_KEY": "AKIAEXAMPLE", "CDH_S3_SECRET_KEY_FILE": str(secret)}])
    assert s.s3_secret_key == "s3cr3t-value"
    assert "s3cr3t-value" in s.secrets
    with pytest.raises(ConfigError) as err:
        load([{"CDH_LOG_LINES_FILE": str(secret)}])
    assert "s3cr3t" not in str(err.value)


def test_key_files_absent_from_an_existing_directory_mean_no_static_keys(tmp_path):
    """An optional Secret that was not created (IRSA, Pod Identity, Workload Identity) is an empty
    directory: the keys are unset, with one note; the files are still named, to be watched."""
    keys = tmp_path / "s3"
    keys.mkdir()
    env = {"CDH_S3_ACCESS_KEY_FILE": str(keys / "access-key"),
           "CDH_S3_SECRET_KEY_FILE": str(keys / "secret-key")}
    s = load([env])
    assert (s.s3_access_key, s.s3_secret_key) == ("", "")
    access, secret = str(keys / "access-key"), str(keys / "secret-key")
    assert [n for n in s.notes if "no such file" in n] == [  # one line for both
        f"CDH_S3_ACCESS_KEY_FILE={access!r}, CDH_S3_SECRET_KEY_FILE={secret!r}: no such file, so "
        "CDH_S3_ACCESS_KEY, CDH_S3_SECRET_KEY not set (an optional Secret not created?); "
        "the credential chain is used"]
    assert s.files == {"s3_access_key": str(keys / "access-key"), "s3_secret_key": str(keys / "secret-key")}
    (keys / "access-key").write_text("AKIAEXAMPLE")
    with pytest.raises(ConfigError, match="static keys need both"):  # one without the other: an error
        load([env])


def test_a_key_file_in_a_missing_directory_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load([{"CDH_S3_SECRET_KEY_FILE": str(tmp_path / "nowhere" / "secret-key")}])
    assert str(err.value) == (f"CDH_S3_SECRET_KEY_FILE={str(tmp_path / 'nowhere' / 'secret-key')!r} is not "
                              "valid: cannot read the file (No such file or directory)")


@pytest.mark.parametrize("raw, shown", [("0.0.0.0", "0.0.0.0"), ("127.0.0.1", "127.0.0.1"), ("::", "::"),
                                        ("[fd00::1]", "fd00::1"), (" 10.1.2.3 ", "10.1.2.3")])
def test_metrics_address_is_an_ip(raw, shown):
    assert load([{"CDH_METRICS_ADDRESS": raw}]).metrics_address == shown


def test_metrics_address_rejects_names():
    with pytest.raises(ConfigError, match=r"CDH_METRICS_ADDRESS='localhost' is not valid: an IP address"):
        load([{"CDH_METRICS_ADDRESS": "localhost"}])


def test_composer_scope_does_not_parse_agent_settings():
    # A cron typo in the agent's settings must never stop the composer.
    s = load([{"CDH_SCHEDULE": "nonsense"}], scope="composer")
    assert not hasattr(s, "schedule")


def test_ignored_ibm_settings_leave_a_note():
    s = load([{"VENDOR": "rhel7"}])
    assert any(n.startswith("VENDOR is ignored") for n in s.notes)


def test_env_file_roundtrip(tmp_path):
    s = load([{"CDH_HOST_DIR": "/h", "COMP_FILENAME_TEMPLATE": '{uuid}-"q"$x`y`-{pid}',
               "COMP_POD_SELECTOR_LABEL": "app=web"}])
    text = config.render_env(s)
    back = load([config.parse_env_text(text)], scope="composer")
    assert back.filename_template == s.filename_template
    assert back.pod_selector == ("app", "web")
    assert back.core_dir == "/h/cores"


def test_env_file_empty_values():
    assert config.parse_env_text("A=\nB=''\nC= \n") == {"A": "", "B": "", "C": ""}


@pytest.mark.parametrize("line", ["KEY", "KEY='unterminated", "1KEY=x"])
def test_env_file_errors_name_file_and_line(line):
    with pytest.raises(ConfigError, match=r"^f.env:2: "):
        config.parse_env_text("# comment\n" + line + "\n", "f.env")


def test_from_environment_overlays_the_config_file(tmp_path):
    f = tmp_path / "cdh.env"
    f.write_text("export CDH_LOG_LINES=42\nCDH_S3_BUCKET='from-file'\n")
    s = config.from_environment(environ={"CDH_CONFIG_FILE": str(f), "CDH_S3_BUCKET": "from-env"})
    assert (s.log_lines, s.s3_bucket) == (42, "from-file")


def test_tooling_variables_are_not_settings():
    load([{"CDH_REQUIRE_KERNEL": "1", "CDH_TEST_KEEP": "1"}])


@pytest.mark.parametrize("name", ["CDH_HOST_DIR", "CDH_CORE_DIR", "CDH_EVENT_DIR", "CDH_CRICTL_PATH",
                                  "CDH_RUNTIME_DIR", "HOST_DIR", "CORE_DIR"])
def test_what_root_writes_or_runs_comes_from_the_environment_only(tmp_path, name):
    """A ConfigMap editor is not root on every node: these names in CDH_CONFIG_FILE are one line, and
    the same names in the environment are fine."""
    f = tmp_path / "cdh.env"
    f.write_text(f"CDH_LOG_LINES=42\n{name}=/tmp/x\n")
    with pytest.raises(ConfigError, match=rf"^{name} in {f} is not allowed: .*environment only$"):
        config.from_environment(environ={"CDH_CONFIG_FILE": str(f)})
    assert config.from_environment(environ={name: "/srv/x"}).raw


@pytest.mark.parametrize("name", ["CDH_ZIP_FILE_MODE", "CDH_EVENT_FILE_MODE"])
@pytest.mark.parametrize("value", ["0666", "0620", "0602", "0755", "0400", "4644"])
def test_file_modes_never_let_others_write_or_run(name, value):
    """A config editor must not make cores (a process's memory) or event files writable by any node
    user before they are uploaded or read: write and execute bits are for the owner alone."""
    with pytest.raises(ConfigError, match=rf"^{name}='{value}' is not valid: an octal mode"):
        load([{name: value}])
    assert load([{name: "0640"}]).values[name.removeprefix("CDH_").lower()] == 0o640


@pytest.mark.parametrize("value", ["unix:///run/c.sock\nCDH_COMPRESSION=none", "a\rb", "a\0b"])
def test_a_value_is_one_line(value):
    with pytest.raises(ConfigError, match=r"^CDH_CRI_ENDPOINT=.* is not valid: one line"):
        load([{"CDH_CRI_ENDPOINT": value}])


def test_surrounding_white_space_is_dropped_before_composer_env_is_written():
    s = load([{"CDH_CRI_TIMEOUT": " 5s\n", "CDH_POD_SELECTOR": "app=web\n"}])
    assert (s.raw["cri_timeout_s"], s.pod_selector) == ("5s", ("app", "web"))
    assert all(line.count('"') == 2 for line in config.render_env(s).splitlines()[1:])


def test_render_env_refuses_a_line_break_that_got_past_load():
    s = load([{"CDH_CRI_ENDPOINT": "x"}])
    s.raw["cri_endpoint"] = "x\nCDH_COMPRESSION=none"
    with pytest.raises(ConfigError, match="CDH_CRI_ENDPOINT holds a line break"):
        config.render_env(s)


def test_env_files_split_at_newlines_only():
    """U+2028 or \\x1e inside a value is part of it (str.splitlines would start a line there)."""
    assert config.parse_env_text('A="x\u2028B=1"\nC="y\x1eD"\r\n') == {"A": "x\u2028B=1", "C": "y\x1eD"}


def test_composer_env_keeps_every_good_line(tmp_path):
    """The composer's lenient read: each bad line (not KEY=VALUE, not UTF-8, an open quote) is
    reported by number and skipped; the strict read (the agent's ConfigMap) refuses the file."""
    f = tmp_path / "composer.env"
    f.write_bytes(b'A=1\nnot a setting\n# caf\xe9\nB="2\nC="3"\n')
    errors: list[str] = []
    assert config.read_env_file(str(f), errors) == {"A": "1", "C": "3"}
    assert errors == [f"{f}:2: not KEY=VALUE", f"{f}:3: not UTF-8", f"{f}:4: unterminated quote in B"]
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.read_env_file(str(f))


def test_an_env_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "composer.env")
    with pytest.raises(ConfigError, match="not a regular file"):
        config.read_env_file(str(tmp_path / "composer.env"), [])


def test_the_platforms_own_names_are_read_and_cdh_names_win(tmp_path):
    s = config.load([{"AZURE_STORAGE_ACCOUNT": "fromaz", "STORAGE_EMULATOR_HOST": "127.0.0.1:4443",
                      "GOOGLE_APPLICATION_CREDENTIALS": "/etc/sa.json"}])
    assert (s.azure_account, s.gcs_emulator_host, s.gcs_credentials_file) == (
        "fromaz", "http://127.0.0.1:4443", "/etc/sa.json")
    assert s.sources["azure_account"] == "AZURE_STORAGE_ACCOUNT"
    s = config.load([{"AZURE_STORAGE_ACCOUNT": "fromaz", "CDH_AZURE_ACCOUNT": "fromcdh"}])
    assert s.azure_account == "fromcdh"
    sas = tmp_path / "sas"
    sas.write_text("sv=2025-01-05&sig=abc\n")
    s = config.load([{"CDH_AZURE_SAS_FILE": str(sas)}])  # a mounted Secret
    assert s.azure_sas == "sv=2025-01-05&sig=abc" and s.azure_sas in s.secrets
    assert any("Also read from AZURE_STORAGE_ACCOUNT" in doc for *_, doc in config.describe())


@pytest.mark.parametrize(("value", "message"), [
    ("gcs://cores", "CDH_DESTINATION='gcs://cores' is not valid: s3://bucket[/prefix], gs://bucket[/prefix] "
                    "or azblob://container[/prefix]"),
    ("gs://c", "'c' is not a Cloud Storage bucket name"),
    ("s3://b/a//b", "the prefix is a plain path"),
])
def test_destination_urls_are_checked(value, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load([{"CDH_DESTINATION": value}])
    assert config.load([{"CDH_DESTINATION": "gs://cores/a/b/"}]).destination == "gs://cores/a/b/"
