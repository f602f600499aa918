"""IBM's values with IBM's meaning (cdh/config/ibm.py): what its chart renders, converted, and said."""

from __future__ import annotations

import pytest

from cdh.agent import configload
from cdh.config import ConfigError, load


def one(env: dict, attr: str):
    s = load([env])
    return getattr(s, attr), s.notes


@pytest.mark.parametrize(("env", "attr", "expected"), [
    # the chart renders unset interval/schedule as set-but-empty variables
    ({"INTERVAL": ""}, "interval_s", None),
    ({"SCHEDULE": ""}, "schedule", None),
    ({"INTERVAL": "3.6e+06"}, "interval_s", 3600.0),        # Helm's float notation of 3600000
    ({"INTERVAL": "60000"}, "interval_s", 60.0),
    ({"COMP_LOG_LEVEL": "Trace"}, "composer_log_level", "debug"),
    ({"COMP_LOG_LEVEL": "OFF"}, "composer_log_level", "off"),
    ({"COMP_LOG_LEVEL": "warn"}, "composer_log_level", "warning"),
    ({"COMP_LOG_LEVEL": "Error"}, "composer_log_level", "error"),
    ({"COMP_LOG_LEVEL": "verbose"}, "composer_log_level", "debug"),  # unparsable: IBM used Debug
    ({"COMP_LOG_LEVEL": "warning"}, "composer_log_level", "debug"),  # ... this too, in IBM's parser
    ({"COMP_LOG_LEVEL": ""}, "composer_log_level", "debug"),
    ({"COMP_LOG_LENGTH": "4294967295"}, "log_lines", 4294967295),    # any u32
    ({"COMP_LOG_LENGTH": "2e+06"}, "log_lines", 2_000_000),
    ({"COMP_TIMEOUT": "0"}, "composer_timeout_s", 600.0),
    ({"COMP_TIMEOUT": "120"}, "composer_timeout_s", 120.0),
    ({"COMP_CRIO_IMAGE_CMD": "IMAGES"}, "cri_image_cmd", "images"),
    ({"COMP_CRIO_IMAGE_CMD": "podman"}, "cri_image_cmd", "img"),
    ({"COMP_FILENAME_TEMPLATE": "{{uuid}}-dump-{{timestamp}}-{{hostname}}-{{exe_name}}-{{pid}}-{{signal}}"},
     "filename_template", "{uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}"),
    ({"COMP_FILENAME_TEMPLATE": "{ namespace }-{pid|unescaped}"}, "filename_template", "{namespace}-{pid}"),
    ({"COMP_FILENAME_TEMPLATE": "{flavour}-{uuid}"}, "filename_template", "{uuid}"),  # IBM: a bare uuid
    ({"COMP_FILENAME_TEMPLATE": "{uuid"}, "filename_template", "{uuid}"),
    ({"COMP_IGNORE_CRIO": "true"}, "minimal_zip", True),
    ({"COMP_IGNORE_CRIO": "true"}, "ignore_cri", False),
    ({"COMP_INCLUDE_PROC_INFO": "true"}, "container_proc_files", True),
    ({"COMP_INCLUDE_PROC_INFO": "true"}, "include_proc_environ", False),
    ({"CRIO_ENDPOINT": "unix:///run/crio/crio.sock"}, "cri_endpoint_hint", "unix:///run/crio/crio.sock"),
    ({"CRIO_ENDPOINT": "unix:///run/crio/crio.sock"}, "cri_endpoint", ""),
])
def test_ibm_values_with_ibms_meaning(env, attr, expected):
    value, _ = one(env, attr)
    assert value == expected


@pytest.mark.parametrize(("env", "note"), [
    ({"INTERVAL": "3.6e+06"}, "every 3600 s"),
    ({"INTERVAL": "60000"}, "once a minute"),
    ({"INTERVAL": "500"}, "under 1000"),
    ({"COMP_LOG_LEVEL": "verbose"}, "IBM's composer used Debug"),
    ({"COMP_LOG_LENGTH": "2e+06"}, "read as 2000000"),
    ({"COMP_TIMEOUT": "0"}, "cdh uses 600s"),
    ({"COMP_FILENAME_TEMPLATE": "{{uuid}}"}, "named every zip <uuid>.zip"),
    ({"EVENT_DIR": "/var/mnt/core-dump-handler/events"}, "EVENT_DIR is ignored"),
    ({"USE_INOTIFY": "true", "INTERVAL": "60000"}, "IBM's agent then only swept on the schedule"),
    ({"CDH_LOG_LINES": "9", "COMP_LOG_LENGTH": "7"}, "COMP_LOG_LENGTH is overridden by CDH_LOG_LINES"),
])
def test_differences_are_said(env, note):
    assert any(note in n for n in load([env]).notes), load([env]).notes


@pytest.mark.parametrize(("region", "endpoint", "signing", "note"), [
    ("eu-west-1", None, "eu-west-1", None),
    ("eu-south-2", None, "eu-south-2", None),         # IBM's library did not know it; botocore does
    ("us-south", None, "us-south", None),             # a store's own region name
    ("s3.eu-de.cloud-object-storage.appdomain.cloud", "https://s3.eu-de.cloud-object-storage.appdomain.cloud",
     "eu-de", "a host"),
    ("s3.direct.us-south.cloud-object-storage.appdomain.cloud",
     "https://s3.direct.us-south.cloud-object-storage.appdomain.cloud", "us-south", "a host"),
    ("s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com", "eu-west-1", "a host"),
    ("minio.storage.svc:9000", "https://minio.storage.svc:9000", "us-east-1", "a host"),
    ("http://minio.storage.svc:9000", "http://minio.storage.svc:9000", "us-east-1", "a host"),
    ("127.0.0.1:9000", "https://127.0.0.1:9000", "us-east-1", "a host"),
    ("nyc3", "https://nyc3.digitaloceanspaces.com", "nyc3", "another provider"),
    ("wa-eu-central-1", "https://s3.eu-central-1.wasabisys.com", "eu-central-1", "another provider"),
])
def test_s3_region_may_name_a_host(region, endpoint, signing, note):
    s = load([{"S3_REGION": region}])
    assert (s.s3_endpoint, s.s3_region) == (endpoint, signing)
    said = [n for n in s.notes if n.startswith("S3_REGION=")]
    assert (note in said[0]) if note else not said
    if endpoint:
        assert s.sources["s3_endpoint"] == "S3_REGION" and s.s3_addressing == "path"  # IBM's style


def test_s3_endpoint_wins_over_a_host_in_s3_region():
    s = load([{"S3_REGION": "s3.us-south.cloud-object-storage.appdomain.cloud",
               "S3_ENDPOINT": "https://s3.private.us-south.cloud-object-storage.appdomain.cloud"}])
    assert s.s3_endpoint == "https://s3.private.us-south.cloud-object-storage.appdomain.cloud"
    assert s.s3_region == "us-south"


@pytest.mark.parametrize(("env", "message"), [
    ({"CDH_S3_REGION": "minio:9000"}, "CDH_S3_REGION='minio:9000' is not valid: a region name"),
    ({"S3_REGION": "ftp://x"}, "S3_REGION='ftp://x' is not valid: a region name, or a host"),
    ({"S3_REGION": "https://a b"}, "S3_REGION='https://a b' is not valid"),
    ({"COMP_LOG_LENGTH": "4294967296"}, "COMP_LOG_LENGTH='4294967296' is not valid: an integer from 0 to"),
    ({"INTERVAL": "0"}, "INTERVAL='0' is not valid: milliseconds"),
])
def test_bad_values_are_one_line(env, message):
    with pytest.raises(ConfigError) as err:
        load([env])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_no_bucket_and_no_trigger_keeps_cores_on_the_node():
    # IBM #48, the FAQ's "own uploader": no interval, no schedule, inotify off, no S3 variables
    idle = load([{"USE_INOTIFY": "false", "INTERVAL": "", "SCHEDULE": ""}])
    assert configload.check(idle) is idle
    with pytest.raises(ConfigError, match="CDH_S3_BUCKET is not set"):
        configload.check(load([{"USE_INOTIFY": "true"}]))
    with pytest.raises(ConfigError, match="CDH_S3_BUCKET is not set"):
        configload.check(idle, need_bucket=True)  # `cdh sweep` always needs one


@pytest.mark.parametrize(("env", "keys", "note"), [
    # IRSA: IBM's agent used the role whatever its keys said (the chart's placeholders are often left)
    ({"S3_ACCESS_KEY": "XXX", "S3_SECRET": "XXX", "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token"}, ("", ""),
     "S3_ACCESS_KEY and S3_SECRET not used: AWS_WEB_IDENTITY_TOKEN_FILE is set"),
    # one key alone: IBM's agent used the credential chain
    ({"S3_ACCESS_KEY": "AKIA1"}, ("", ""), "S3_ACCESS_KEY not used: S3_SECRET is not set"),
    ({"S3_ACCESS_KEY": "", "S3_SECRET": "s"}, ("", ""), "S3_SECRET not used: S3_ACCESS_KEY is not set"),
    ({"S3_ACCESS_KEY": "AKIA1", "S3_SECRET": "s"}, ("AKIA1", "s"), None),
    ({"S3_ACCESS_KEY": "AKIA1", "S3_SECRET": "s", "AWS_WEB_IDENTITY_TOKEN_FILE": ""}, ("AKIA1", "s"), None),
    # cdh's names keep cdh's rule: static keys win over the role
    ({"CDH_S3_ACCESS_KEY": "AKIA1", "CDH_S3_SECRET_KEY": "s", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"},
     ("AKIA1", "s"), None),
])
def test_ibm_keys_mean_what_they_meant_to_ibms_agent(env, keys, note):
    s = load([env])
    assert (s.s3_access_key, s.s3_secret_key) == keys
    said = [n for n in s.notes if "not used" in n]
    assert len(said) == (note is not None) and all(n.startswith(note) for n in said)
    assert not any(secret in n for n in s.notes for secret in ("AKIA1", "XXX"))


def test_a_lone_cdh_key_is_still_an_error():
    with pytest.raises(ConfigError, match="CDH_S3_SECRET_KEY is not set: static keys need both"):
        load([{"CDH_S3_ACCESS_KEY": "AKIA1"}])
