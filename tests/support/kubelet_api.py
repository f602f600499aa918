"""The CRI v1 messages only the test harness sends (acting as kubelet), as protowire tables.

Their source of truth is cdh/composer/cri/cri.proto (the messages marked "harness");
tests/unit/test_cri_api.py checks these tables against it.
"""

from __future__ import annotations

from cdh.composer.cri import api as c
from cdh.composer.cri.protowire import BOOL, BYTES, INT32, INT64, MAP, STRING, Enum, Message
from cdh.composer.cri.protowire import field as f

DNSConfig = Message("DNSConfig", f(1, "servers", STRING, repeated=True),
                    f(2, "searches", STRING, repeated=True), f(3, "options", STRING, repeated=True))
LinuxSandboxSecurityContext = Message(
    "LinuxSandboxSecurityContext", f(1, "namespaceOptions", c.NamespaceOption),
    f(3, "runAsUser", c.Int64Value), f(6, "privileged", BOOL))
LinuxPodSandboxConfig = Message("LinuxPodSandboxConfig", f(1, "cgroupParent", STRING),
                                f(2, "securityContext", LinuxSandboxSecurityContext))
PodSandboxConfig = Message(
    "PodSandboxConfig", f(1, "metadata", c.PodSandboxMetadata), f(2, "hostname", STRING),
    f(3, "logDirectory", STRING), f(4, "dnsConfig", DNSConfig), f(6, "labels", MAP), f(7, "annotations", MAP),
    f(8, "linux", LinuxPodSandboxConfig))
RunPodSandboxRequest = Message("RunPodSandboxRequest", f(1, "config", PodSandboxConfig),
                               f(2, "runtimeHandler", STRING))
RunPodSandboxResponse = Message("RunPodSandboxResponse", f(1, "podSandboxId", STRING))
StopPodSandboxRequest = Message("StopPodSandboxRequest", f(1, "podSandboxId", STRING))
StopPodSandboxResponse = Message("StopPodSandboxResponse")
RemovePodSandboxRequest = Message("RemovePodSandboxRequest", f(1, "podSandboxId", STRING))
RemovePodSandboxResponse = Message("RemovePodSandboxResponse")

KeyValue = Message("KeyValue", f(1, "key", STRING), f(2, "value", STRING))
Capability = Message("Capability", f(1, "addCapabilities", STRING, repeated=True),
                     f(2, "dropCapabilities", STRING, repeated=True))
ProfileType = Enum("ProfileType", "RuntimeDefault", "Unconfined", "Localhost")
SecurityProfile = Message("SecurityProfile", f(1, "profileType", ProfileType), f(2, "localhostRef", STRING))
LinuxContainerSecurityContext = Message(
    "LinuxContainerSecurityContext", f(1, "capabilities", Capability), f(2, "privileged", BOOL),
    f(3, "namespaceOptions", c.NamespaceOption), f(5, "runAsUser", c.Int64Value),
    f(7, "readonlyRootfs", BOOL), f(11, "noNewPrivs", BOOL), f(13, "maskedPaths", STRING, repeated=True),
    f(14, "readonlyPaths", STRING, repeated=True), f(15, "seccomp", SecurityProfile))
LinuxContainerResources = Message(
    "LinuxContainerResources", f(1, "cpuPeriod", INT64), f(2, "cpuQuota", INT64), f(3, "cpuShares", INT64),
    f(4, "memoryLimitInBytes", INT64), f(5, "oomScoreAdj", INT64))
LinuxContainerConfig = Message("LinuxContainerConfig", f(1, "resources", LinuxContainerResources),
                               f(2, "securityContext", LinuxContainerSecurityContext))
ContainerConfig = Message(
    "ContainerConfig", f(1, "metadata", c.ContainerMetadata), f(2, "image", c.ImageSpec),
    f(3, "command", STRING, repeated=True), f(4, "args", STRING, repeated=True), f(5, "workingDir", STRING),
    f(6, "envs", KeyValue, repeated=True), f(7, "mounts", c.Mount, repeated=True), f(9, "labels", MAP),
    f(10, "annotations", MAP), f(11, "logPath", STRING), f(15, "linux", LinuxContainerConfig))
CreateContainerRequest = Message("CreateContainerRequest", f(1, "podSandboxId", STRING),
                                 f(2, "config", ContainerConfig), f(3, "sandboxConfig", PodSandboxConfig))
CreateContainerResponse = Message("CreateContainerResponse", f(1, "containerId", STRING))
StartContainerRequest = Message("StartContainerRequest", f(1, "containerId", STRING))
StartContainerResponse = Message("StartContainerResponse")

ExecSyncRequest = Message("ExecSyncRequest", f(1, "containerId", STRING), f(2, "cmd", STRING, repeated=True),
                          f(3, "timeout", INT64))
ExecSyncResponse = Message("ExecSyncResponse", f(1, "stdout", BYTES), f(2, "stderr", BYTES),
                           f(3, "exitCode", INT32))
StopContainerRequest = Message("StopContainerRequest", f(1, "containerId", STRING), f(2, "timeout", INT64))
StopContainerResponse = Message("StopContainerResponse")
RemoveContainerRequest = Message("RemoveContainerRequest", f(1, "containerId", STRING))
RemoveContainerResponse = Message("RemoveContainerResponse")
