"""The composer with a crictl stub: right metadata when crictl works, the core always kept when not."""

from __future__ import annotations

import pytest

from tests.support.composer import fake_proc, run_composer, unzip_test
from tests.support.cri import FakeNode, cgroup_v2_systemd

CORE = b"\x7fELF\x02\x01\x01" + bytes(100_000) + b"end of core"


@pytest.fixture
def node(tmp_path):
    """Two pods named web-0 in different namespaces, like a StatefulSet deployed twice."""
    n = FakeNode()
    n.shop = n.add_pod("web-0", namespace="shop", labels={"app": "web", "info.coredump.owner": "team-a"})
    n.blog = n.add_pod("web-0", namespace="blog", labels={"app": "web"})
    n.shop_app = n.add_container(n.shop, "app", logs=["started", ["stderr", "segfault soon"]])
    n.shop_sidecar = n.add_container(n.shop, "envoy", image="docker.io/envoyproxy/envoy:v1.30.1")
    n.blog_app = n.add_container(n.blog, "app", image="docker.io/library/wordpress:6.5",
                                 logs=["blog says hi"])
    n.stub = n.install(tmp_path / "bin")
    return n


def compose(tmp_path, node, cgroup: str, env: dict | None = None, core: bytes = CORE, **kw):
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    proc_root = fake_proc(tmp_path, cgroup=cgroup)
    result = run_composer(host, core=core, proc_root=proc_root,
                          env={"CDH_CRICTL_PATH": str(node.stub.dir), **(env or {})}, **kw)
    return result


def assert_core_kept(result, core: bytes = CORE):
    assert result.rc == 0, result.stderr
    assert result.read(".core") == core
    assert not result.parts
    unzip_test(result.zip_path)


# ---------------------------------------------------------------- crictl works


def test_cgroup_identifies_the_container_and_everything_is_collected(tmp_path, node):
    node.scenario["warn"] = True  # an unconfigured crictl warns on every call: not a failure
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"CDH_CORE_EVENTS": "true"})
    assert_core_kept(r)
    info = r.dump_info
    assert info["pod_found_by"] == "cgroup"
    assert (info["namespace"], info["podname"], info["container"]) == ("shop", "web-0", "app")
    assert info["container_id"] == node.shop_app["id"] and info["pod_id"] == node.shop["id"]
    assert info["pod_uid"] == node.shop["metadata"]["uid"]
    assert info["image"] == "docker.io/library/nginx:1.27"
    assert info["image_digest"] == node.scenario["images"][0]["repoDigests"][0].split("@")[1]
    assert info["metadata_errors"] == []
    assert r.json("-pod-info.json") == node.shop                      # the `pods` item, as IBM
    assert r.json("-runtime-info.json")["status"]["id"] == node.shop["id"]
    ps = r.json("-ps-info.json")["containers"]
    assert [c["id"] for c in ps] == [node.shop_sidecar["id"], node.shop_app["id"]]  # newest first
    # per container i, in ps order: the log tail and the image item (IBM's image-info shape)
    assert r.read("-1.log") == b"started\nsegfault soon\n"  # crictl's own warning is not in it
    assert r.read("-0.log") == b""
    assert r.json("-0-image-info.json")["repoTags"] == ["docker.io/envoyproxy/envoy:v1.30.1"]
    assert r.json("-1-image-info.json")["repoDigests"][0].startswith("docker.io/library/nginx@sha256:")
    event = (r.host_dir / "events" / f"{info['uuid']}-event.json")
    import json

    ev = json.loads(event.read_text())
    assert ev["key"] == r.zip_path.name and ev["namespace"] == "shop" and ev["podname"] == "web-0"
    assert ev["labels"] == {"info.coredump.owner": "team-a"}
    assert len(ev["image_list"]) == 2 and ev["pid"] == "7" and ev["signal"] == "11"


def test_the_right_pod_when_two_share_a_name(tmp_path, node):
    r = compose(tmp_path, node, cgroup_v2_systemd(node.blog, node.blog_app["id"]))
    assert_core_kept(r)
    assert (r.dump_info["namespace"], r.dump_info["pod_found_by"]) == ("blog", "cgroup")
    assert r.json("-pod-info.json")["id"] == node.blog["id"]
    assert b"blog says hi" in r.read("-0.log")
    assert node.stub.commands()[0] == "inspect"  # never a name lookup when the cgroup knows


def test_hostname_fallback_refuses_to_guess_between_namespaces(tmp_path, node):
    r = compose(tmp_path, node, "0::/\n")  # no container id (hostname is web-0)
    assert_core_kept(r)
    info = r.dump_info
    assert info["pod_found_by"] == "none" and info["namespace"] is None and info["podname"] is None
    assert any("not guessing" in e and "blog" in e and "shop" in e for e in info["metadata_errors"])
    assert not any(n.endswith("-pod-info.json") for n in r.entries)


def test_hostname_fallback_takes_only_an_exact_name(tmp_path):
    n = FakeNode()
    n.add_pod("web-01", namespace="a")      # `--name web-0` matches these too (regex)
    n.add_pod("myweb-0", namespace="b")
    target = n.add_pod("web-0", namespace="c")
    n.add_container(target, "app")
    n.stub = n.install(tmp_path / "bin")
    r = compose(tmp_path, n, "0::/\n")
    assert_core_kept(r)
    info = r.dump_info
    assert (info["pod_found_by"], info["namespace"], info["pod_id"]) == ("hostname", "c", target["id"])
    assert info["container"] is None  # the pod is known, which container crashed is not
    assert r.json("-pod-info.json")["metadata"]["name"] == "web-0"


def test_pause_process_gives_the_sandbox(tmp_path, node):
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop["id"]))
    assert_core_kept(r)
    info = r.dump_info
    assert (info["pod_found_by"], info["pod_id"], info["namespace"]) == ("cgroup", node.shop["id"], "shop")
    assert info["container"] is None and info["container_id"] is None
    assert info["metadata_errors"] == []


def test_cri_o_inspect_without_sandbox_id_uses_ps(tmp_path, node):
    node.scenario["inspect_without_sandbox"] = True
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]))
    assert_core_kept(r)
    assert r.dump_info["pod_id"] == node.shop["id"]
    assert ["ps", "-a", "--id", node.shop_app["id"], "-o", "json"] in commands(node)


def test_image_listing_is_the_fallback_when_inspecti_fails(tmp_path, node):
    node.fault("inspecti", mode="exit", stderr='time="x" level=fatal msg="unknown command"')
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"COMP_CRIO_IMAGE_CMD": "images"})
    assert_core_kept(r)
    assert r.json("-1-image-info.json")["repoTags"] == ["docker.io/library/nginx:1.27"]
    assert "images" in node.stub.commands()


def test_crictl_config_and_endpoint_are_passed(tmp_path, node):
    host = tmp_path / "host"
    host.mkdir()
    (host / "crictl.yaml").write_text("runtime-endpoint: unix:///run/containerd/containerd.sock\n")
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"CDH_CRI_ENDPOINT": "unix:///run/crio/crio.sock"})
    assert_core_kept(r)
    for call in node.stub.calls():
        assert call["flags"] == {"-c": str(host / "crictl.yaml"), "-r": "unix:///run/crio/crio.sock"}
        assert set(call["env"]) <= {"PATH", "HOME", "LC_CTYPE"}  # nothing of ours leaks to crictl


def test_children_never_hold_the_core_pipe_nor_dump_core(tmp_path, node):
    import resource

    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]))
    assert_core_kept(r)
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    for call in node.stub.calls():
        assert call["stdin"] == "/dev/null"
        # RLIMIT_CORE 1: the kernel's mark of a core helper; a crash is not piped back to us
        assert call["rlimit_core"] == ([0, 0] if hard == 0 else [1, 1])


def test_log_tail_is_bounded_in_lines_and_bytes(tmp_path, node):
    node.scenario["logs"][node.shop_app["id"]] = [["stdout", f"line {i:05d}"] for i in range(5000)]
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"COMP_LOG_LENGTH": "100", "CDH_LOG_MAX_BYTES": "500"})
    log = r.read("-1.log")
    assert len(log) <= 500 and log.endswith(b"line 04999\n")
    assert any(c[:2] == ["logs", "--tail=100"] for c in commands(node))


def test_ignore_cri_makes_no_calls(tmp_path, node):
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"CDH_IGNORE_CRI": "true"})
    assert_core_kept(r)
    assert node.stub.calls() == []
    names = {n[len(r.name):] for n in r.entries}
    proc_files = ("cmdline", "status", "maps", "limits", "cgroup", "auxv")
    assert names == {".core", "-dump-info.json", *(f"-proc/{f}" for f in proc_files)}
    assert r.dump_info["container_id"] == node.shop_app["id"]  # the cgroup still tells


# ---------------------------------------------------------------- crictl misbehaves


def test_hanging_crictl_costs_one_timeout_and_keeps_the_core(tmp_path, node):
    node.fault("*", mode="hang")
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"CDH_CRI_TIMEOUT": "1s"})
    assert_core_kept(r)
    errors = r.dump_info["metadata_errors"]
    assert any("timed out" in e for e in errors)
    assert len(node.stub.calls()) == 1  # the runtime is hung: no call after the first timeout
    assert r.dump_info["container_id"] == node.shop_app["id"] and r.dump_info["pod_found_by"] == "none"


@pytest.mark.parametrize(("fault", "expected"), [
    ({"mode": "exit", "code": 1, "stderr": 'time="2024-06-10T06:13:20Z" level=fatal msg="validate service '
      'connection: rpc error: code = Unavailable desc = connection error"'}, "code = Unavailable"),
    ({"mode": "garbage"}, "not JSON"),
    ({"mode": "empty"}, "nothing found"),
    ({"mode": "huge", "mib": 20}, "dropped"),
], ids=["exit-1", "garbage", "empty", "huge"])
def test_failing_crictl_costs_metadata_never_the_core(tmp_path, node, fault, expected):
    node.fault("*", **fault)
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]))
    assert_core_kept(r)
    info = r.dump_info
    assert info["pod_found_by"] == "none" and info["namespace"] is None
    assert any(expected in e for e in info["metadata_errors"]), info["metadata_errors"]


def test_one_failing_command_loses_only_its_own_entry(tmp_path, node):
    node.fault("ps", mode="huge", mib=20)
    node.fault("logs", mode="warn", lines=5)
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]))
    assert_core_kept(r)
    suffixes = {n[len(r.name):] for n in r.entries}
    assert {"-pod-info.json", "-runtime-info.json"} <= suffixes and "-ps-info.json" not in suffixes
    assert r.dump_info["namespace"] == "shop"
    assert any("crictl ps" in e for e in r.dump_info["metadata_errors"])


def commands(node) -> list[list[str]]:
    """Each crictl call's command and arguments, without the global flags before them."""
    return [c["argv"][c["argv"].index(c["cmd"]):] for c in node.stub.calls()]


def test_missing_crictl(tmp_path, node):
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"CDH_CRICTL_PATH": str(tmp_path / "nowhere")})
    assert_core_kept(r)
    [error] = r.dump_info["metadata_errors"]
    assert error.startswith("no container runtime answered (") and "code = Unavailable" in error
    assert error.endswith("crictl was not found (CDH_CRICTL_PATH)")


# ---------------------------------------------------------------- pod selector and pod names


def test_selector_match_captures(tmp_path, node):
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"COMP_POD_SELECTOR_LABEL": "app=web"})
    assert_core_kept(r)


def test_selector_mismatch_skips_without_a_zip(tmp_path, node):
    r = compose(tmp_path, node, cgroup_v2_systemd(node.blog, node.blog_app["id"]),
                env={"CDH_POD_SELECTOR": "info.coredump.owner"})
    assert r.rc == 0 and r.zips == [] and r.parts == []
    skipped = [line for line in r.log if line["event"] == "compose.skipped"]
    assert len(skipped) == 1 and skipped[0]["namespace"] == "blog"


def test_selector_with_a_failed_lookup_still_captures(tmp_path, node):
    node.fault("*", mode="exit")
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.blog, node.blog_app["id"]),
                env={"CDH_POD_SELECTOR": "info.coredump.owner"})
    assert_core_kept(r)


def test_selector_with_a_hanging_runtime_still_captures(tmp_path, node):
    node.fault("*", mode="hang")
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.blog, node.blog_app["id"]),
                env={"CDH_POD_SELECTOR": "info.coredump.owner", "CDH_CRI_TIMEOUT": "1s"})
    assert_core_kept(r)
    assert len(node.stub.calls()) == 1  # hung once, never asked again


def test_selector_lookup_cut_short_captures_and_completes_metadata_later(tmp_path, node):
    # Each call sleeps 1.5 s with a 2.5 s CRI timeout: the pre-stream step (one timeout in all)
    # needs two calls, 3 s at the very least, so it is always cut short and the core captured
    # although this pod does not match; after stdin is closed every call succeeds, with 1 s to
    # spare for the stub's own start on a loaded machine.
    node.fault("*", mode="slow", seconds=1.5)
    node.save()
    r = compose(tmp_path, node, cgroup_v2_systemd(node.blog, node.blog_app["id"]),
                env={"CDH_POD_SELECTOR": "info.coredump.owner", "CDH_CRI_TIMEOUT": "2.5s"})
    assert_core_kept(r)
    assert r.dump_info["namespace"] == "blog" and r.dump_info["metadata_errors"] == []


def test_template_with_pod_variables(tmp_path, node):
    r = compose(tmp_path, node, cgroup_v2_systemd(node.shop, node.shop_app["id"]),
                env={"CDH_FILENAME_TEMPLATE": "{namespace}-{podname}-{container}-{uuid}"})
    assert_core_kept(r)
    assert r.zip_path.name.startswith("shop-web-0-app-")
    assert r.dump_info["dump_file"] == f"{r.name}.core"


def test_composer_stays_lean(tmp_path, node):
    """A whole run (selector, crictl, events) imports none of the heavy modules (README "Start-up")."""
    import re
    import subprocess
    import sys

    from tests.support.composer import KERNEL_ARGS, composer_env

    host = tmp_path / "host"
    host.mkdir()
    env = composer_env(host, {"CDH_CRICTL_PATH": str(node.stub.dir), "CDH_CORE_EVENTS": "true",
                              "CDH_POD_SELECTOR": "app"},
                       fake_proc(tmp_path, cgroup=cgroup_v2_systemd(node.shop, node.shop_app["id"])))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "cdh", "compose", *KERNEL_ARGS,
                          "-P=4242"], input=CORE, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = set(re.findall(r"\|\s+(\S+)$", out.stderr.decode(), re.M))
    assert "cdh.composer.podmeta" in imported  # the run did reach crictl
    heavy = {"typing", "dataclasses", "argparse", "logging", "asyncio", "subprocess", "uuid", "inspect",
             "orjson", "aiobotocore", "botocore", "uvloop", "cdh.agent", "zipfile", "shutil"}
    assert imported.isdisjoint(heavy), sorted(imported & heavy)
