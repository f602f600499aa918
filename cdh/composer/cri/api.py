"""The CRI v1 messages the composer reads, as tables for cdh.composer.cri.protowire.

The same messages, with the same names and numbers, are in cri.proto beside this file
(tests/unit/test_cri_api.py keeps the two in step). The messages only the test harness
sends are in tests/support/kubelet_api.py.
"""

from __future__ import annotations

from cdh.composer.cri.protowire import (
    BOOL,
    INT32,
    INT64,
    MAP,
    STRING,
    UINT32,
    UINT64,
    Enum,
    Message,
)
from cdh.composer.cri.protowire import field as f

RUNTIME_SERVICE = "/runtime.v1.RuntimeService/"
IMAGE_SERVICE = "/runtime.v1.ImageService/"

NamespaceMode = Enum("NamespaceMode", "POD", "CONTAINER", "NODE", "TARGET")
PodSandboxState = Enum("PodSandboxState", "SANDBOX_READY", "SANDBOX_NOTREADY")
ContainerState = Enum("ContainerState", "CONTAINER_CREATED", "CONTAINER_RUNNING", "CONTAINER_EXITED",
                      "CONTAINER_UNKNOWN")
MountPropagation = Enum("MountPropagation", "PROPAGATION_PRIVATE", "PROPAGATION_HOST_TO_CONTAINER",
                        "PROPAGATION_BIDIRECTIONAL")

VersionRequest = Message("VersionRequest", f(1, "version", STRING))
VersionResponse = Message("VersionResponse", f(1, "version", STRING), f(2, "runtimeName", STRING),
                          f(3, "runtimeVersion", STRING), f(4, "runtimeApiVersion", STRING))

PodSandboxMetadata = Message("PodSandboxMetadata", f(1, "name", STRING), f(2, "uid", STRING),
                             f(3, "namespace", STRING), f(4, "attempt", UINT32))
ContainerMetadata = Message("ContainerMetadata", f(1, "name", STRING), f(2, "attempt", UINT32))
ImageSpec = Message("ImageSpec", f(1, "image", STRING), f(2, "annotations", MAP))
NamespaceOption = Message("NamespaceOption", f(1, "network", NamespaceMode), f(2, "pid", NamespaceMode),
                          f(3, "ipc", NamespaceMode), f(4, "targetId", STRING))
Int64Value = Message("Int64Value", f(1, "value", INT64))
Mount = Message("Mount", f(1, "containerPath", STRING), f(2, "hostPath", STRING), f(3, "readonly", BOOL),
                f(4, "selinuxRelabel", BOOL), f(5, "propagation", MountPropagation))

# ---------------------------------------------------------------- pod sandboxes
PodSandboxStatusRequest = Message("PodSandboxStatusRequest", f(1, "podSandboxId", STRING),
                                  f(2, "verbose", BOOL))
PodIP = Message("PodIP", f(1, "ip", STRING))
PodSandboxNetworkStatus = Message("PodSandboxNetworkStatus", f(1, "ip", STRING),
                                  f(2, "additionalIps", PodIP, repeated=True))
Namespace = Message("Namespace", f(2, "options", NamespaceOption))
LinuxPodSandboxStatus = Message("LinuxPodSandboxStatus", f(1, "namespaces", Namespace))
PodSandboxStatus = Message(
    "PodSandboxStatus", f(1, "id", STRING), f(2, "metadata", PodSandboxMetadata),
    f(3, "state", PodSandboxState), f(4, "createdAt", INT64), f(5, "network", PodSandboxNetworkStatus),
    f(6, "linux", LinuxPodSandboxStatus), f(7, "labels", MAP), f(8, "annotations", MAP),
    f(9, "runtimeHandler", STRING))
PodSandboxStatusResponse = Message("PodSandboxStatusResponse", f(1, "status", PodSandboxStatus),
                                   f(2, "info", MAP))
PodSandboxStateValue = Message("PodSandboxStateValue", f(1, "state", PodSandboxState))
PodSandboxFilter = Message("PodSandboxFilter", f(1, "id", STRING), f(2, "state", PodSandboxStateValue),
                           f(3, "labelSelector", MAP))
ListPodSandboxRequest = Message("ListPodSandboxRequest", f(1, "filter", PodSandboxFilter))
PodSandbox = Message(
    "PodSandbox", f(1, "id", STRING), f(2, "metadata", PodSandboxMetadata), f(3, "state", PodSandboxState),
    f(4, "createdAt", INT64), f(5, "labels", MAP), f(6, "annotations", MAP), f(7, "runtimeHandler", STRING))
ListPodSandboxResponse = Message("ListPodSandboxResponse", f(1, "items", PodSandbox, repeated=True))

# ---------------------------------------------------------------- containers
ContainerStateValue = Message("ContainerStateValue", f(1, "state", ContainerState))
ContainerFilter = Message("ContainerFilter", f(1, "id", STRING), f(2, "state", ContainerStateValue),
                          f(3, "podSandboxId", STRING), f(4, "labelSelector", MAP))
ListContainersRequest = Message("ListContainersRequest", f(1, "filter", ContainerFilter))
Container = Message(
    "Container", f(1, "id", STRING), f(2, "podSandboxId", STRING), f(3, "metadata", ContainerMetadata),
    f(4, "image", ImageSpec), f(5, "imageRef", STRING), f(6, "state", ContainerState),
    f(7, "createdAt", INT64), f(8, "labels", MAP), f(9, "annotations", MAP), f(10, "imageId", STRING))
ListContainersResponse = Message("ListContainersResponse", f(1, "containers", Container, repeated=True))
ContainerStatusRequest = Message("ContainerStatusRequest", f(1, "containerId", STRING),
                                 f(2, "verbose", BOOL))
ContainerStatus = Message(
    "ContainerStatus", f(1, "id", STRING), f(2, "metadata", ContainerMetadata), f(3, "state", ContainerState),
    f(4, "createdAt", INT64), f(5, "startedAt", INT64), f(6, "finishedAt", INT64), f(7, "exitCode", INT32),
    f(8, "image", ImageSpec), f(9, "imageRef", STRING), f(10, "reason", STRING), f(11, "message", STRING),
    f(12, "labels", MAP), f(13, "annotations", MAP), f(14, "mounts", Mount, repeated=True),
    f(15, "logPath", STRING), f(17, "imageId", STRING))
ContainerStatusResponse = Message("ContainerStatusResponse", f(1, "status", ContainerStatus),
                                  f(2, "info", MAP))

# ---------------------------------------------------------------- images
Image = Message(
    "Image", f(1, "id", STRING), f(2, "repoTags", STRING, repeated=True),
    f(3, "repoDigests", STRING, repeated=True), f(4, "size", UINT64), f(5, "uid", Int64Value),
    f(6, "username", STRING), f(7, "spec", ImageSpec), f(8, "pinned", BOOL))
ImageStatusRequest = Message("ImageStatusRequest", f(1, "image", ImageSpec), f(2, "verbose", BOOL))
ImageStatusResponse = Message("ImageStatusResponse", f(1, "image", Image), f(2, "info", MAP))
