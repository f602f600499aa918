"""CDH_ROUTES_FILE (cdh/routes.py): the file read, checked as a whole, and namespaces matched."""

from __future__ import annotations

import textwrap

import pytest

from cdh import agecrypt, routes
from cdh.config import ConfigError, load
from tests.support.projected import Volume

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"  # age's own spec example


@pytest.fixture
def creds(tmp_path):
    """A mounted Secret, as the kubelet lays it out (files are symlinks into ..data)."""
    d = tmp_path / "secret-a"
    Volume(d, 0o400).update({"access-key": "AKIATEAMA\n", "secret-key": "team-a-secret\n"})
    return d


def table(text: str) -> routes.RouteTable:
    return routes.parse(textwrap.dedent(text), "routes.yaml")


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        table(text)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_a_whole_file(creds):
    t = table(f"""
        routes:
          - name: team-a
            namespaces: [team-a, "team-a-*"]
            destination: s3://team-a-cores/cores/a/
            endpoint: https://s3.example.com
            credentials: {creds}
            recipients: [{RECIPIENT}]
            key_prefix: "{{namespace}}/{{date}}/"
            sse: sse-kms
            sse_kms_key_id: alias/team-a
            storage_class: STANDARD_IA
          - name: team-b
            namespaces: team-b
            destination: s3://team-b-cores
        default: keep
        unknown: drop
        """)
    a, b = t.routes
    assert (a.name, a.namespaces, a.bucket, a.prefix) == ("team-a", ("team-a", "team-a-*"), "team-a-cores",
                                                          "cores/a/")
    assert a.endpoint == "https://s3.example.com" and a.key_prefix == "{namespace}/{date}/"
    assert (a.sse, a.sse_kms_key_id, a.storage_class) == ("aws:kms", "alias/team-a", "STANDARD_IA")
    assert a.credentials.access_key == "AKIATEAMA" and a.credentials.secret_key == "team-a-secret"
    assert a.recipients == (RECIPIENT,) and a.encrypted and a.line == 3
    assert (b.bucket, b.prefix, b.credentials, b.recipients) == ("team-b-cores", "", None, ())
    assert (t.default, t.unknown) == ("keep", "drop")


def test_secrets_never_show(creds):
    t = table(f"""
        routes:
          - {{name: a, namespaces: [a], destination: "s3://b", credentials: {creds}}}
        """)
    shown = repr(t) + "\n".join(t.describe())
    assert "team-a-secret" not in shown and "AKIATEAMA" not in shown and str(creds) in shown


@pytest.mark.parametrize(("namespace", "want"), [
    ("team-a", "team-a"), ("team-a-dev", "team-a"), ("team-ab", "main"),
    ("team-b", "team-b"), ("team-b-x", "main"), ("shop", "shared"), ("kube-system", "main"),
])
def test_first_match_wins(namespace, want):
    t = table("""
        routes:
          - {name: team-a, namespaces: [team-a, "team-a-*"], destination: "s3://a"}
          - {name: team-b, namespaces: [team-b], destination: "s3://b"}
          - {name: shared, namespaces: [shop, team-a, team-b], destination: "s3://c"}
        """)
    assert t.choose(namespace).name == want


def test_an_earlier_glob_shadows_a_later_route():
    t = table("""
        routes:
          - {name: all-teams, namespaces: ["team-*"], destination: "s3://a"}
          - {name: team-b, namespaces: [team-b], destination: "s3://b"}
        """)
    assert t.choose("team-b").name == "all-teams"


@pytest.mark.parametrize(("default", "unknown", "ns", "want"), [
    (None, None, "x", ("upload", "main")),
    ("keep", None, "x", ("keep", "keep")),
    ("drop", None, "x", ("drop", "drop")),
    ("keep", None, None, ("keep", "keep")),     # unknown follows default
    ("main", "keep", None, ("keep", "keep")),   # a crash whose namespace the composer could not learn
    ("main", "keep", "", ("keep", "keep")),
    ("drop", "main", None, ("upload", "main")),
])
def test_fallbacks(default, unknown, ns, want):
    text = "routes: []\n" + (f"default: {default}\n" if default else "") + (f"unknown: {unknown}\n" if unknown
                                                                            else "")
    c = table(text).choose(ns)
    assert (c.action, c.name) == want and c.route is None
    if c.action != "upload" or ns is None:
        assert "CDH_ROUTES_FILE" in c.why


def test_no_file_and_an_empty_file_send_everything_to_main():
    assert routes.load(load([{"CDH_S3_BUCKET": "b"}])) is routes.NONE
    assert routes.NONE.choose("anything").name == "main"
    assert table("").choose("x").name == "main"


@pytest.mark.parametrize(("text", "says"), [
    ("routes: [", "routes.yaml:1:10: not valid YAML"),
    ("routes:\n  - name: a\n    namespaces: [a]\n    destinaton: s3://b\n",
     "routes.yaml:4: routes[0].destinaton: 'destinaton' is not known here (did you mean destination?)"),
    ("routes:\n  - name: a\n    namespaces: [Team-A]\n    destination: s3://b\n",
     "routes.yaml:3: routes[0].namespaces[0]: 'Team-A' is not a namespace name or glob"),
    ("routes:\n  - name: a\n    namespaces: [a]\n    destination: s3://b\n    recipients: [age1xyz]\n",
     "routes.yaml:5: routes[0].recipients[0]: 'age1xyz' is not an age X25519 recipient"),
    ("routes:\n  - &x\n    name: a\n    namespaces: [a]\n    destination: s3://b\n  - *x\n",
     "anchors and aliases are not allowed"),
    ("default: maybe\n", "routes.yaml:1: default: one of main, keep, drop, not 'maybe'"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 's3://b'}\n"
     "  - {name: a, namespaces: [b], destination: 's3://c'}\n",
     "routes.yaml:3: routes[1].name: 'a' names two"),
    ("routes:\n  - name: a\n    name: b\n    namespaces: [a]\n    destination: s3://b\n",
     "routes.yaml:3: routes[0].name: given twice"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 'ftp://b'}\n",
     "routes[0].destination: 'ftp://b' is not valid: s3://bucket[/prefix], gs://bucket[/prefix] or "),
    ("routes:\n  - {name: a, namespaces: [a], destination: 'azblob://Team_A'}\n",
     "is not an Azure container name"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 'gs://b-c', sse: AES256}\n",
     "routes.yaml:2: routes[0].sse: only for s3:// destinations, not gs://"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 'azblob://b-c', region: eu}\n",
     "routes[0].region: only for s3:// destinations, not azblob://"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 's3://b', account: teama}\n",
     "routes[0].account: only for azblob:// destinations, not s3://"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 'azblob://b-c', account: Team_A}\n",
     "routes[0].account: 'Team_A' is not valid: a storage account name"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 's3://b/../c'}\n", "a plain path"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 's3://b', sse_kms_key_id: k}\n",
     "sse is not aws:kms"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 's3://b', key_prefix: '{secret}/'}\n",
     "routes[0].key_prefix: '{secret}/' is not valid: a template using only"),
    ("routes:\n  - {name: main, namespaces: [a], destination: 's3://b'}\n", "is not a route name"),
    ("routes:\n  - {name: a, namespaces: [a]}\n", "routes.yaml:2: routes[0]: destination: is missing"),
    ("routes:\n  - {name: a, namespaces: [], destination: 's3://b'}\n", "namespaces: is missing"),
    ("- a\n", "routes.yaml:1: the file is a mapping"),
    ("routes: {a: 1}\n", "routes.yaml:1: routes: a list of routes"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 's3://b', credentials: /nonexistent/team-a}\n",
     "routes.yaml:2: routes[0].credentials: /nonexistent/team-a: no such directory (is the Secret mounted?)"),
    ("routes:\n  - {name: a, namespaces: [a], destination: 's3://b', credentials: relative/dir}\n",
     "the absolute path of a directory"),
])
def test_a_bad_file_is_refused_with_one_line_naming_the_place(text, says):
    assert says in refused(text)


def test_a_secret_key_given_as_recipient_is_refused_without_echoing_it():
    identity = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
    msg = refused(f"routes:\n  - {{name: a, namespaces: [a], destination: 's3://b', "
                  f"recipients: [{identity}]}}\n")
    assert "routes[0].recipients[0]: this is an age identity" in msg and identity not in msg


def test_a_credentials_directory_needs_both_keys(tmp_path):
    d = tmp_path / "half"
    d.mkdir()
    (d / "access-key").write_text("AKIA")
    msg = refused(f"routes:\n  - {{name: a, namespaces: [a], destination: 's3://b', credentials: {d}}}\n")
    assert f"{d} has no secret-key file" in msg
    (d / "secret-key").write_text("\n")
    assert "is empty" in refused(f"routes:\n  - {{name: a, namespaces: [a], destination: 's3://b', "
                                 f"credentials: {d}}}\n")
    (d / "secret-key").write_text("s\n")
    (d / "session-token").write_text("tok\n")
    c = table(f"routes:\n  - {{name: a, namespaces: [a], destination: 's3://b', credentials: {d}}}\n")
    assert c.routes[0].credentials.session_token == "tok"


def test_load_names_the_setting_and_refuses_big_files(tmp_path):
    path = tmp_path / "routes.yaml"
    settings = load([{"CDH_S3_BUCKET": "b", "CDH_ROUTES_FILE": str(path)}])
    with pytest.raises(ConfigError, match=f"CDH_ROUTES_FILE {path}: cannot read the file"):
        routes.load(settings)
    path.write_text("routes:\n  - {name: a, namespaces: [a], destination: 's3://b', bogus: 1}\n")
    with pytest.raises(ConfigError, match=f"^CDH_ROUTES_FILE {path}:2: routes\\[0\\].bogus"):
        routes.load(settings)
    path.write_text("#" * (routes.MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigError, match="bigger than"):
        routes.load(settings)
    path.write_text("default: drop\n")
    assert routes.load(settings).default == "drop"


def test_recipients_are_deduplicated_and_described_by_fingerprint():
    t = table(f"routes:\n  - {{name: a, namespaces: [a], destination: 's3://b', "
              f"recipients: [{RECIPIENT}, {RECIPIENT}]}}\n")
    assert t.routes[0].recipients == (RECIPIENT,)
    assert agecrypt.fingerprint(RECIPIENT) in t.describe()[0]


# ---------------------------------------------------------------- gs:// and azblob:// routes

AZ_KEY = "dGVhbS1jLWFjY291bnQta2V5"  # base64, as an account key is


def secret(tmp_path, name: str, files: dict[str, str]):
    d = tmp_path / name
    Volume(d, 0o400).update(files)
    return d


def kind_table(tmp_path, settings_env: dict, routes_text: str):
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(routes_text))
    settings = load([{"CDH_S3_BUCKET": "b", "CDH_ROUTES_FILE": str(path), **settings_env}])
    return routes.load(settings), settings


def test_a_gs_route_with_its_key_file_and_one_with_the_platforms_credentials(tmp_path):
    key = secret(tmp_path, "team-c", {"key.json": '{"type": "service_account", "private_key": "x"}'})
    t, settings = kind_table(tmp_path, {"CDH_GCS_CREDENTIALS_FILE": "/etc/main/key.json"}, f"""
        routes:
          - {{name: team-c, namespaces: [team-c], destination: "gs://team-c-cores/c/", credentials: {key}}}
          - {{name: team-d, namespaces: [team-d], destination: "gs://team-d-cores"}}
        """)
    c, d = (routes.destination_of(r, settings) for r in t.routes)
    assert (c.kind, c.bucket, c.prefix, c.name) == ("gs", "team-c-cores", "c/", "team-c")
    assert c.gcs.credentials_file == f"{key}/key.json" and c.s3 is None and c.azure is None
    assert d.gcs.credentials_file == "" and not d.gcs.anonymous  # ADC: never the main key file
    assert t.routes[0].url == "gs://team-c-cores/c/"
    assert "gs://team-c-cores/c/ (keys from" in t.describe()[0]


def test_a_gs_routes_rotated_key_file_is_another_destination(tmp_path):
    """The agent keeps the store of a destination a reload left equal (cdh/agent/stores.py), and
    google-auth read key.json when that store was built: a rotated key must make the route's differ."""
    text = """
        routes:
          - {name: team-c, namespaces: [team-c], destination: "gs://team-c-cores", credentials: %s}
        """
    volume = Volume(tmp_path / "team-c", 0o400)
    volume.update({"key.json": '{"type": "service_account", "private_key_id": "one"}'})
    t, settings = kind_table(tmp_path, {}, text % (tmp_path / "team-c"))
    before = routes.destination_of(t.routes[0], settings)
    assert routes.destination_of(t.routes[0], settings) == before
    volume.update({"key.json": '{"type": "service_account", "private_key_id": "two"}'})
    t, settings = kind_table(tmp_path, {}, text % (tmp_path / "team-c"))
    after = routes.destination_of(t.routes[0], settings)
    assert after != before and after.gcs.credentials_file == before.gcs.credentials_file


def test_a_gs_route_reaches_the_emulator_the_settings_name(tmp_path):
    t, settings = kind_table(tmp_path, {"CDH_GCS_EMULATOR_HOST": "127.0.0.1:4443"}, """
        routes:
          - {name: team-c, namespaces: [team-c], destination: "gs://team-c-cores"}
          - {name: team-d, namespaces: [team-d], destination: "gs://team-d-cores",
             endpoint: "https://gcs.example.com"}
        """)
    c, d = (routes.destination_of(r, settings) for r in t.routes)
    assert c.gcs.anonymous and c.gcs.endpoint == "http://127.0.0.1:4443"
    assert not d.gcs.anonymous and d.gcs.endpoint == "https://gcs.example.com"


def test_azblob_routes_take_their_own_account_and_credential(tmp_path):
    key = secret(tmp_path, "team-c", {"account-key": AZ_KEY + "\n"})
    sas = secret(tmp_path, "team-d", {"sas": "?sv=2022-11-02&sig=abc\n"})
    conn = secret(tmp_path, "team-e", {"connection-string": "UseDevelopmentStorage=true"})
    t, settings = kind_table(tmp_path, {"CDH_AZURE_ACCOUNT": "platform", "CDH_AZURE_ACCOUNT_KEY": AZ_KEY,
                                        "CDH_AZURE_ENDPOINT": "https://platform.blob.private.example"}, f"""
        routes:
          - {{name: team-c, namespaces: [team-c], destination: "azblob://cores/c", account: teamc,
             credentials: {key}}}
          - {{name: team-d, namespaces: [team-d], destination: "azblob://team-d", credentials: {sas}}}
          - {{name: team-e, namespaces: [team-e], destination: "azblob://team-e", credentials: {conn}}}
          - {{name: team-f, namespaces: [team-f], destination: "azblob://team-f"}}
        """)
    c, d, e, f = (routes.destination_of(r, settings).azure for r in t.routes)
    assert (c.account, c.endpoint, c.account_key, c.sas) == ("teamc", "https://teamc.blob.core.windows.net",
                                                             AZ_KEY, "")
    # the main account (and its endpoint), the route's own SAS, never the main account key
    assert (d.account, d.endpoint, d.account_key, d.sas) == (
        "platform", "https://platform.blob.private.example", "", "sv=2022-11-02&sig=abc")
    assert e.account == "devstoreaccount1" and e.emulator and e.checksum == "md5" and e.account_key
    assert (f.account, f.account_key, f.sas, f.credential) == ("platform", "", "", "Entra ID token")
    shown = repr(t) + "\n".join(t.describe())
    assert AZ_KEY not in shown and "sig=abc" not in shown


def test_an_azblob_route_with_no_account_anywhere_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError) as err:
        kind_table(tmp_path, {}, """
            routes:
              - {name: team-a, namespaces: [a], destination: "s3://a"}
              - {name: team-c, namespaces: [c], destination: "azblob://cores"}
            """)
    assert str(err.value).startswith(f"CDH_ROUTES_FILE {tmp_path}/routes.yaml:4: routes[1]: ")
    assert "storage account" in str(err.value)


@pytest.mark.parametrize(("kind", "files", "says"), [
    ("azblob", {"account-key": AZ_KEY, "sas": "sv=x"}, "holds account-key and sas of connection-string, "
                                                        "account-key, sas: give one"),
    ("azblob", {"access-key": "AKIA"}, "holds none of connection-string, account-key, sas"),
    ("azblob", {"connection-string": "AccountName"}, "Key=Value pairs"),
    ("azblob", {"account-key": "not base64!"}, "account-key=<hidden> is not valid: a base64 account key"),
    ("gs", {"access-key": "AKIA"}, "has no key.json file"),
    ("gs", {"key.json": "private_key: -----BEGIN"}, "key.json is not a Google credentials file"),
])
def test_a_credentials_directory_holds_what_its_kind_needs(tmp_path, kind, files, says):
    d = secret(tmp_path, "s", files)
    with pytest.raises(ConfigError) as err:
        kind_table(tmp_path, {"CDH_AZURE_ACCOUNT": "platform"}, f"""
            routes:
              - {{name: a, namespaces: [a], destination: "{kind}://cores", credentials: {d}}}
            """)
    assert says in str(err.value) and "BEGIN" not in str(err.value) and AZ_KEY not in str(err.value)
