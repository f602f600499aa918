"""`cdh doctor`'s CRI check against a running containerd (the `node` fixture, tests/runtime/conftest.py):
it asks the runtime's socket as the composer does, and says why when nothing answers."""

from __future__ import annotations

from cdh.config import load
from cdh.doctor import Node
from cdh.doctor.node import check_cri


def test_the_runtime_socket_answers_with_the_nodes_pods(node, tmp_path):
    node.kubelet.run_pod("web-0", "shop")
    settings = load([{"CDH_HOST_DIR": str(tmp_path), "CDH_CRI_ENDPOINT": node.containerd.endpoint,
                      "CDH_CRICTL_PATH": str(tmp_path)}])
    check = check_cri(settings, Node("/"))
    assert check.status == "pass", check.detail
    assert check.detail.startswith(f"{node.containerd.endpoint} answers (containerd ")
    assert "1 pods on this node" in check.detail


def test_no_socket_and_no_crictl_fails_with_both_reasons(node, tmp_path):
    settings = load([{"CDH_HOST_DIR": str(tmp_path), "CDH_CRI_ENDPOINT": f"unix://{tmp_path}/gone.sock",
                      "CDH_CRICTL_PATH": str(tmp_path)}])
    check = check_cri(settings, Node("/"))
    assert check.status == "fail" and "gone.sock" in check.detail and "no crictl" in check.detail
    assert "CDH_CRI_ENDPOINT" in check.hint
