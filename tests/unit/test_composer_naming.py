"""Zip names: the template, sanitising, and (property) nothing escapes CORE_DIR."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from cdh.composer import naming
from cdh.config.table import DEFAULT_FILENAME_TEMPLATE, FILENAME_VARIABLES

VALUES = {"uuid": "0b4c1f6e-2d8a-4e5b-9c7d-1a2b3c4d5e6f", "timestamp": 1718000000, "hostname": "web-0",
          "exe_name": "nginx", "pid": 7, "signal": 11}


def test_default_template_like_ibm():
    name, error = naming.render(DEFAULT_FILENAME_TEMPLATE, VALUES)
    assert error is None
    assert name == "0b4c1f6e-2d8a-4e5b-9c7d-1a2b3c4d5e6f-dump-1718000000-web-0-nginx-7-11"


def test_values_are_sanitised():
    name, _ = naming.render("{exe_name}-{pathname}", {"exe_name": "../../evil", "pathname": "/usr/bin/a b"})
    assert "/" not in name and ".." not in name and " " not in name
    assert name.endswith("_usr_bin_a_b")


def test_template_text_is_sanitised_too():
    name, error = naming.render("{podname}/../{uuid}", {"podname": "p", "uuid": "u"})
    assert error is None and "/" not in name and ".." not in name


def test_unknown_variable_falls_back_to_default_with_an_error():
    name, error = naming.render("{uuid}-{password}", VALUES)
    assert error and "password" in error and "default" in error
    assert name == naming.render(DEFAULT_FILENAME_TEMPLATE, VALUES)[0]


def test_unbalanced_braces_fall_back():
    _, error = naming.render("{uuid", VALUES)
    assert error and "braces" in error


def test_unknown_values_are_empty_and_empty_names_are_never_returned():
    assert naming.render("{namespace}-{podname}", {})[0] == "-"
    assert naming.render("{podname}", {})[0] == "core"
    assert naming.render("{podname}", {"podname": "..."})[0] == "___"


def test_leading_dot_and_length_cap():
    assert naming.safe_name(".hidden") == "_hidden"
    long = naming.safe_name("a" * 1000)
    assert len(long) == naming.MAX_NAME
    assert len(f".{long}.zip.part".encode()) <= 255
    assert len(f"{long}-999-image-info.json".encode()) <= 255


def test_needs_pod():
    assert not naming.needs_pod(DEFAULT_FILENAME_TEMPLATE)
    assert naming.needs_pod("{namespace}-{uuid}")
    assert naming.needs_pod("{container}")


# ---------------------------------------------------------------- properties

any_text = st.one_of(st.none(), st.integers(), st.text(max_size=300),
                     st.sampled_from(["..", ".", "/", "../../etc/passwd", "\0", "a/../../b", "...."]))
templates = st.one_of(
    st.lists(st.one_of(st.sampled_from(sorted(FILENAME_VARIABLES)).map(lambda v: "{" + v + "}"),
                       st.text(max_size=20)), max_size=8).map("".join),
    st.text(max_size=60),
)


def _assert_safe(name: str, core_dir: str) -> None:
    assert name and "/" not in name and ".." not in name and "\0" not in name
    assert not name.startswith(".") and not name.endswith(".")
    assert len(name) <= naming.MAX_NAME
    for candidate in (f"{name}.zip", f".{name}.zip.part", f"{name}.core", f"{name}-proc/status"):
        path = os.path.normpath(os.path.join(core_dir, candidate))
        assert path.startswith(core_dir + os.sep)
        assert len(os.path.basename(path).encode()) <= 255


@settings(max_examples=500, deadline=None)
@given(template=templates, values=st.dictionaries(st.sampled_from(sorted(FILENAME_VARIABLES)), any_text))
def test_no_template_and_no_values_escape_core_dir(template, values):
    name, _ = naming.render(template, values)
    _assert_safe(name, "/var/mnt/core-dump-handler/cores")


@settings(max_examples=300, deadline=None)
@given(raw=st.text())
def test_safe_name_of_anything(raw):
    _assert_safe(naming.safe_name(raw), "/cores")
