"""The agent environment the IBM Core Dump Handler's Helm chart (v9.0.0) renders, per values file.

Written for these tests from what rendering the chart with Helm shows (not copied from it): the
variable names and values of the agent container's ``env:``, as Kubernetes sets them. The chart
renders an unset ``interval``/``schedule`` (and an empty pod selector) as ``value:`` with nothing,
which Kubernetes sets as an empty variable; numbers of a million and more arrive in Helm's float
notation (``3.6e+06``); the S3 variables come from the chart's Secret (``XXX`` by default) and are
absent with ``manageStoreSecret: false``.
"""

from __future__ import annotations

DEFAULT_TEMPLATE = "{uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}"
DOUBLE_BRACE_TEMPLATE = "{{uuid}}-dump-{{timestamp}}-{{hostname}}-{{exe_name}}-{{pid}}-{{signal}}"
S3_FROM_SECRET = {"S3_ACCESS_KEY": "XXX", "S3_SECRET": "XXX", "S3_BUCKET_NAME": "XXX", "S3_REGION": "XXX"}


def rendered(**changes: str | None) -> dict[str, str]:
    """values.yaml's environment with ``changes`` (None removes a variable)."""
    env = {
        "COMP_FILENAME_TEMPLATE": DEFAULT_TEMPLATE, "COMP_LOG_LENGTH": "500", "COMP_LOG_LEVEL": "Warn",
        "COMP_IGNORE_CRIO": "false", "COMP_INCLUDE_PROC_INFO": "false", "COMP_CRIO_IMAGE_CMD": "img",
        "COMP_POD_SELECTOR_LABEL": "", "COMP_TIMEOUT": "600", "COMP_COMPRESSION": "true",
        "COMP_CORE_EVENTS": "false", "COMP_CORE_EVENT_DIR": "/var/mnt/core-dump-handler/events",
        "DEPLOY_CRIO_CONFIG": "false", "CRIO_ENDPOINT": "unix:///run/containerd/containerd.sock",
        "HOST_DIR": "/var/mnt/core-dump-handler", "CORE_DIR": "/var/mnt/core-dump-handler/cores",
        "EVENT_DIR": "/var/mnt/core-dump-handler/events", "SUID_DUMPABLE": "2", "DEPLOY_CRIO_EXE": "false",
        **S3_FROM_SECRET,
        "VENDOR": "default", "INTERVAL": "", "SCHEDULE": "", "USE_INOTIFY": "true",
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


OPENSHIFT_DIRS = {"HOST_DIR": "/mnt/core-dump-handler", "CORE_DIR": "/mnt/core-dump-handler/cores"}
NO_S3 = dict.fromkeys(S3_FROM_SECRET)

# One environment per values file of the chart, plus what its users set with --set / extraEnvVars.
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "values.yaml": rendered(),
    "values.aws.yaml": rendered(DEPLOY_CRIO_EXE="true", VENDOR="rhel7"),
    "values.aws.sts.yaml": rendered(DEPLOY_CRIO_EXE="true", VENDOR="rhel7"),
    # as EKS runs it: the role's webhook adds the token file (and AWS_ROLE_ARN, botocore's own names)
    "values.aws.sts.yaml on EKS (IRSA)": rendered(
        DEPLOY_CRIO_EXE="true", VENDOR="rhel7",
        AWS_WEB_IDENTITY_TOKEN_FILE="/var/run/secrets/eks.amazonaws.com/serviceaccount/token"),
    "values.aws.bottlerocket.yaml": rendered(DEPLOY_CRIO_CONFIG="true", CRIO_ENDPOINT="unix:///run/dockershim.sock",
                                             DEPLOY_CRIO_EXE="true"),
    "values.do.yaml": rendered(DEPLOY_CRIO_CONFIG="true"),
    "values.gke-cos.yaml": rendered(HOST_DIR="/home/kubernetes/bin", CORE_DIR="/home/kubernetes/cores"),
    "values.ibm.yaml": rendered(VENDOR="rhel7"),
    "values.minikube.yaml": rendered(COMP_LOG_LEVEL="Debug", COMP_CORE_EVENTS="true",
                                     DEPLOY_CRIO_CONFIG="true", CRIO_ENDPOINT="unix:///var/run/cri-dockerd.sock",
                                     DEPLOY_CRIO_EXE="true"),
    "values.openshift.yaml": rendered(COMP_CRIO_IMAGE_CMD="images", **OPENSHIFT_DIRS),
    "values.roks.yaml": rendered(VENDOR="rhel7", **OPENSHIFT_DIRS),
    "ci/inotify-manage-store.yaml": rendered(COMP_FILENAME_TEMPLATE=DOUBLE_BRACE_TEMPLATE),
    "ci/tolerations.yaml": rendered(COMP_FILENAME_TEMPLATE=DOUBLE_BRACE_TEMPLATE),
    # the chart's schema allows interval or schedule only with useINotify nulled: USE_INOTIFY renders empty
    "ci/interval-manage-store.yaml": rendered(COMP_FILENAME_TEMPLATE=DOUBLE_BRACE_TEMPLATE, INTERVAL="60000",
                                              USE_INOTIFY=""),
    "ci/schedule-no-manage-store.yaml": rendered(COMP_FILENAME_TEMPLATE=DOUBLE_BRACE_TEMPLATE,
                                                 SCHEDULE="1/60 * * * * *", USE_INOTIFY="", **NO_S3),
    "--set daemonset.interval=3600000": rendered(INTERVAL="3.6e+06", USE_INOTIFY=""),
    "--set composer.logLength=2000000": rendered(COMP_LOG_LENGTH="2e+06"),
    "--set daemonset.schedule with a year": rendered(SCHEDULE="0 0 */6 * * * 2025-2099", USE_INOTIFY=""),
    "--set composer.podSelectorLabel=example.com/dump": rendered(COMP_POD_SELECTOR_LABEL="example.com/dump"),
    "--set daemonset.s3Region=<IBM COS host>": rendered(
        S3_REGION="s3.eu-de.cloud-object-storage.appdomain.cloud"),
    "extraEnvVars S3_ENDPOINT (GCS, the FAQ)": {**rendered(S3_REGION="auto"),
                                                "S3_ENDPOINT": "https://storage.googleapis.com"},
    "IBM's own-uploader FAQ (IBM #48)": rendered(USE_INOTIFY="false", **NO_S3),
}
