"""Destinations (cdh/destination.py): what a store is built from."""

from __future__ import annotations

import re

import pytest

from cdh import destination
from cdh.config import ConfigError, load


def test_the_destination_from_the_settings_keeps_its_secrets_out_of_its_repr():
    dest = destination.from_settings(load([{
        "CDH_HOST_DIR": "/tmp/h", "S3_BUCKET_NAME": "cores", "CDH_S3_KEY_PREFIX": "{node}/",
        "CDH_S3_ENDPOINT": "http://127.0.0.1:9000", "CDH_S3_ACCESS_KEY": "AKIDSECRETID",
        "CDH_S3_SECRET_KEY": "very-secret"}]))
    assert (dest.kind, dest.bucket, dest.key_prefix_template) == ("s3", "cores", "{node}/")
    assert dest.url("a/b.zip") == "s3://cores/a/b.zip"
    assert dest.object_url("a b.zip") == "http://127.0.0.1:9000/cores/a%20b.zip"
    assert "very-secret" not in repr(dest) and "AKIDSECRETID" not in repr(dest)


def settings(**env):
    return load([{"CDH_HOST_DIR": "/tmp/h", **env}])


AZURITE_CS = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
              "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
              "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")


def test_an_s3_url_takes_the_s3_settings_and_its_prefix_comes_before_the_template():
    dest = destination.from_settings(settings(CDH_DESTINATION="s3://cores/prod/eu",
                                              CDH_S3_KEY_PREFIX="{node}/", CDH_S3_REGION="eu-west-1"))
    assert (dest.kind, dest.bucket, dest.prefix, dest.key_prefix_template) == ("s3", "cores", "prod/eu/",
                                                                                "prod/eu/{node}/")
    assert dest.s3 is not None and dest.s3.region == "eu-west-1" and dest.azure is None
    same = destination.from_settings(settings(CDH_DESTINATION="s3://cores", S3_BUCKET_NAME="cores"))
    assert same.bucket == "cores"  # IBM's bucket name naming the same bucket is no conflict


def test_azure_from_the_account_name_alone_uses_entra_id_and_crc64():
    dest = destination.from_settings(settings(CDH_DESTINATION="azblob://cores/aks-1",
                                              AZURE_STORAGE_ACCOUNT="mystore"))
    az = dest.azure
    assert az is not None and dest.s3 is None
    assert (az.account, az.endpoint, az.credential, az.checksum, az.emulator) == (
        "mystore", "https://mystore.blob.core.windows.net", "Entra ID token", "crc64", False)
    assert dest.object_url("aks-1/a.zip") == "https://mystore.blob.core.windows.net/cores/aks-1/a.zip"
    assert dest.describe() == "azblob://cores/ at https://mystore.blob.core.windows.net"


def test_azure_connection_strings_keys_and_sas():
    azurite = destination.from_settings(settings(CDH_DESTINATION="azblob://cores",
                                                 AZURE_STORAGE_CONNECTION_STRING=AZURITE_CS)).azure
    assert azurite is not None and azurite.emulator and azurite.checksum == "md5"  # Azurite refuses crc64
    assert azurite.credential == "account key" and azurite.endpoint.endswith(":10000/devstoreaccount1")
    dev = destination.from_settings(settings(CDH_DESTINATION="azblob://cores",
                                             CDH_AZURE_CONNECTION_STRING="UseDevelopmentStorage=true")).azure
    assert dev is not None and dev.account == "devstoreaccount1" and dev.account_key == azurite.account_key
    china = destination.from_settings(settings(
        CDH_DESTINATION="azblob://cores", CDH_AZURE_CHECKSUM="md5",
        CDH_AZURE_CONNECTION_STRING="AccountName=acct1;SharedAccessSignature=?sv=x&sig=y;"
                                    "EndpointSuffix=core.chinacloudapi.cn")).azure
    assert china is not None and (china.endpoint, china.sas, china.credential, china.checksum) == (
        "https://acct1.blob.core.chinacloudapi.cn", "sv=x&sig=y", "SAS", "md5")
    assert "sig=y" not in repr(china) and "Eby8" not in repr(azurite)


@pytest.mark.parametrize(("env", "message"), [
    ({"CDH_AZURE_ACCOUNT": "acct1", "CDH_AZURE_ACCOUNT_KEY": "not base64!"},
     "CDH_AZURE_ACCOUNT_KEY=<hidden> is not valid: a base64 account key"),
    ({"CDH_AZURE_CONNECTION_STRING": "garbage"}, "CDH_AZURE_CONNECTION_STRING=<hidden> is not valid"),
    ({}, "needs a storage account"),
    ({"AZURE_STORAGE_ACCOUNT": "Bad-Name"}, "AZURE_STORAGE_ACCOUNT='Bad-Name' is not valid"),
])
def test_azure_settings_that_do_not_add_up(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        destination.from_settings(settings(CDH_DESTINATION="azblob://cores", **env))


def test_cloud_storage_emulator_and_credentials():
    emulated = destination.from_settings(settings(CDH_DESTINATION="gs://cores/gke",
                                                  STORAGE_EMULATOR_HOST="127.0.0.1:4443"))
    assert emulated.gcs is not None and emulated.gcs.anonymous
    assert (emulated.gcs.endpoint, emulated.endpoint) == ("http://127.0.0.1:4443", "http://127.0.0.1:4443")
    assert emulated.object_url("gke/a.zip") == "gs://cores/gke/a.zip"
    real = destination.from_settings(settings(CDH_DESTINATION="gs://cores",
                                              GOOGLE_APPLICATION_CREDENTIALS="/var/run/secrets/sa.json"))
    assert real.gcs is not None and not real.gcs.anonymous and real.endpoint is None
    assert (real.gcs.endpoint, real.gcs.credentials_file) == ("https://storage.googleapis.com",
                                                              "/var/run/secrets/sa.json")
    adc = destination.from_settings(settings(CDH_DESTINATION="gs://cores")).gcs
    assert adc is not None and adc.credential == "Application Default Credentials"


def test_a_new_key_in_the_same_cloud_storage_credentials_file_is_another_destination(tmp_path):
    """A reload keeps the store of an equal destination (cdh/agent/stores.py); google-auth read the key
    file when that store was built, so a rotated key must make the destination differ."""
    key = tmp_path / "sa.json"
    key.write_text('{"type": "service_account", "private_key_id": "one"}')
    env = {"CDH_DESTINATION": "gs://cores", "CDH_GCS_CREDENTIALS_FILE": str(key)}
    before, again = destination.from_settings(settings(**env)), destination.from_settings(settings(**env))
    assert before == again
    key.write_text('{"type": "service_account", "private_key_id": "two"}')
    after = destination.from_settings(settings(**env))
    assert after != before and after.gcs.credentials_file == before.gcs.credentials_file
    assert "private_key" not in repr(after)
