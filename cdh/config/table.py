"""The settings table: one row per setting, with IBM aliases, the platforms' own names, and defaults."""

from __future__ import annotations

import os

from cdh.config import ibm
from cdh.config.values import (
    KiB,
    MiB,
    abs_path,
    choice,
    cron,
    destination_url,
    duration,
    emulator_url,
    endpoint_url,
    file_mode,
    int_range,
    ip_address,
    label_selector,
    optional,
    parse_bool,
    path_list,
    rate,
    region,
    secret,
    size,
    size_or_percent,
    template,
    text,
)

TYPE_CHECKING = False  # typing costs the composer ~6 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

DEFAULT_HOST_DIR = "/var/mnt/core-dump-handler"
DEFAULT_FILENAME_TEMPLATE = "{uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}"
# The variables a filename template may use (IBM's set plus the pod's identity).
FILENAME_VARIABLES = frozenset(
    {"uuid", "timestamp", "hostname", "exe_name", "pid", "signal", "limit_size",
     "pathname", "directory", "namespace", "podname", "container"}
)
# The variables an S3 key prefix template may use.
KEY_PREFIX_VARIABLES = frozenset(
    {"node", "namespace", "pod", "container", "exe_name", "signal", "uuid", "signature",
     "date", "year", "month", "day", "hour"}
)


class Spec:
    """One setting. A plain class: dataclasses and typing cost the composer ~15 ms per crash."""

    __slots__ = ("aliases", "also", "attr", "default", "doc", "env_only", "name", "parse", "scope", "secret")

    def __init__(self, name: str, attr: str, parse: Callable[[str], Any],
                 default: str | Callable[[Mapping[str, Any]], str], doc: str,
                 aliases: tuple[tuple[str, Callable[[str], str] | None], ...] = (),
                 scope: str = "agent", secret: bool = False, also: tuple[str, ...] = (),
                 env_only: bool = False) -> None:
        self.name = name          # canonical env name
        self.attr = attr          # attribute on Settings
        self.parse = parse
        self.default = default
        self.doc = doc
        self.aliases = aliases    # IBM names, each with a value converter or None
        self.also = also          # the platform's own names (its SDKs and tools read them), read as aliases
        self.scope = scope        # "host": both; "composer": also in composer.env; "agent": agent only
        self.secret = secret
        # Decides where root writes or what it runs on the node: taken from the DaemonSet's environment
        # only, never from CDH_CONFIG_FILE (a ConfigMap that a config editor, not a cluster admin, edits).
        self.env_only = env_only


class Derived:
    """A default computed from other settings; ``shown`` is how the docs print it."""

    __slots__ = ("fn", "shown")

    def __init__(self, shown: str, fn: Callable[[Mapping[str, Any]], str]) -> None:
        self.shown = shown
        self.fn = fn

    def __call__(self, values: Mapping[str, Any]) -> str:
        return self.fn(values)


def _under_host(sub: str) -> Derived:
    return Derived(f"CDH_HOST_DIR/{sub}", lambda v: os.path.join(v["host_dir"], sub))


CRICTL_DIRS = ("/usr/local/bin", "/usr/bin", "/home/kubernetes/bin", "/opt/bin",
               "/var/lib/rancher/k3s/data/current/bin")


SPECS: tuple[Spec, ...] = (
    # host layout, shared by agent and composer
    Spec("CDH_HOST_DIR", "host_dir", abs_path, DEFAULT_HOST_DIR,
         "Where the composer, its runtime, settings, log and sysctl backups live on the node.",
         (("HOST_DIR", None),), scope="host", env_only=True),
    Spec("CDH_CORE_DIR", "core_dir", abs_path, _under_host("cores"),
         "Where finished zips are written and watched.", (("CORE_DIR", None),), scope="host", env_only=True),
    Spec("CDH_EVENT_DIR", "event_dir", abs_path, _under_host("events"),
         "Where event files go when CDH_CORE_EVENTS is on.", (("COMP_CORE_EVENT_DIR", None),),
         scope="host", env_only=True),
    # composer
    Spec("CDH_COMPRESSION", "compression", choice("deflate", "none", "zstd", aliases={"stored": "none"}),
         "deflate", "Compression of the core inside the zip.",
         (("COMP_COMPRESSION", ibm.compression),), scope="composer"),
    Spec("CDH_FILENAME_TEMPLATE", "filename_template", template(FILENAME_VARIABLES),
         DEFAULT_FILENAME_TEMPLATE, "Zip name template; values are sanitised to [A-Za-z0-9._-].",
         (("COMP_FILENAME_TEMPLATE", ibm.filename_template(FILENAME_VARIABLES)),), scope="composer"),
    Spec("CDH_LOG_LINES", "log_lines", int_range(0, ibm.U32_MAX), "500",
         "Container log lines to include per container (CDH_LOG_MAX_BYTES caps their bytes).",
         (("COMP_LOG_LENGTH", ibm.log_length),), scope="composer"),
    Spec("CDH_LOG_MAX_BYTES", "log_max_bytes", size(0), "1MiB",
         "Cap on the container log bytes included per container.", scope="composer"),
    Spec("CDH_POD_SELECTOR", "pod_selector", label_selector, "",
         "Only capture pods with this label: key or key=value.",
         (("COMP_POD_SELECTOR_LABEL", None),), scope="composer"),
    Spec("CDH_COMPOSER_TIMEOUT", "composer_timeout_s", duration(0), "600s",
         "Deadline of one composer run; then the zip is finished with what it has and marked.",
         (("COMP_TIMEOUT", ibm.timeout),), scope="composer"),
    Spec("CDH_CRI_TIMEOUT", "cri_timeout_s", duration(0), "5s",
         "Timeout of each container runtime call.", scope="composer"),
    Spec("CDH_IGNORE_CRI", "ignore_cri", parse_bool, "false",
         "Never ask the container runtime: no pod metadata, the pod selector unused.", scope="composer"),
    Spec("CDH_MINIMAL_ZIP", "minimal_zip", parse_bool, "false",
         "The zip holds only the core and dump-info; the pod is still looked up for the selector, the "
         "name, dump-info and the event (IBM's COMP_IGNORE_CRIO).",
         (("COMP_IGNORE_CRIO", None),), scope="composer"),
    Spec("CDH_CRI_IMAGE_CMD", "cri_image_cmd", choice("img", "images"), "img",
         "crictl image listing command (IBM setting; cdh asks for the one image with inspecti first).",
         (("COMP_CRIO_IMAGE_CMD", ibm.image_cmd),), scope="composer"),
    Spec("CDH_CRI_ENDPOINT", "cri_endpoint", text, "",
         "The container runtime socket, the only one asked, e.g. unix:///run/containerd/containerd.sock "
         "(empty: the usual sockets).", scope="composer"),
    Spec("CDH_CRI_ENDPOINT_HINT", "cri_endpoint_hint", text, "",
         "A runtime socket asked first, then the usual sockets; also what crictl.yaml names (IBM's "
         "CRIO_ENDPOINT).", (("CRIO_ENDPOINT", None),), scope="composer"),
    Spec("CDH_CRICTL_PATH", "crictl_path", path_list,
         Derived(":".join(("CDH_HOST_DIR", *CRICTL_DIRS)), lambda v: ":".join((v["host_dir"], *CRICTL_DIRS))),
         "Where the composer looks for crictl (used when no CRI socket answers): directories or files; "
         "a crictl that root does not own, or that others could write, is never run.",
         scope="composer", env_only=True),
    Spec("CDH_STACK_TRACE", "stack_trace", parse_bool, "true",
         "Unwind the crashed process's threads (after it is released) for dump-info's stack trace and "
         "signature.", scope="composer"),
    Spec("CDH_STACK_BUDGET", "stack_budget_s", duration(0), "2s",
         "Time the stack trace may take after the process is released (naming functions may take as "
         "long again); threads and frames past it are left out, the crashing thread comes first.",
         scope="composer"),
    Spec("CDH_PROC_FILES", "proc_files", parse_bool, "true",
         "Put the crashing process's /proc files into the zip as <name>-proc/ (false: IBM's entries only).",
         scope="composer"),
    Spec("CDH_INCLUDE_PROC_ENVIRON", "include_proc_environ", parse_bool, "false",
         "Also capture /proc/PID/environ of the crashing process (may hold secrets: opt-in).",
         scope="composer"),
    Spec("CDH_CONTAINER_PROC_FILES", "container_proc_files", parse_bool, "false",
         "Per container i, its main process's auxv, cmdline, environ, maps and status as <name>-<i>-proc/ "
         "(IBM's COMP_INCLUDE_PROC_INFO; environ may hold secrets).",
         (("COMP_INCLUDE_PROC_INFO", None),), scope="composer"),
    Spec("CDH_EXITED_CONTAINERS", "exited_containers", parse_bool, "true",
         "Include the pod's exited containers (their logs tell why it restarts) in ps-info and the "
         "per-container entries (false: running ones only, as IBM).", scope="composer"),
    Spec("CDH_CORE_EVENTS", "core_events", parse_bool, "false",
         "Write one event JSON per finished zip into CDH_EVENT_DIR.", (("COMP_CORE_EVENTS", None),),
         scope="composer"),
    Spec("CDH_ZIP_FILE_MODE", "zip_file_mode", file_mode, "0600",
         "Mode of finished zips, e.g. 0644 for an uploader of your own running as another user "
         "(CDH_CORE_DIR then opens to the same readers; IBM's zips were 0644).", scope="composer"),
    Spec("CDH_EVENT_FILE_MODE", "event_file_mode", file_mode, "0600",
         "Mode of event files, e.g. 0644 for a sidecar running as another user (CDH_EVENT_DIR then "
         "opens to the same readers).", scope="composer"),
    Spec("CDH_RATE_LIMIT", "rate_limit", rate, "5/10m",
         "At most this many cores per container (pod and executable) in a sliding window, e.g. 5/10m; "
         "more are skipped with a compose.rate_limited log line (off: no limit).", scope="composer"),
    Spec("CDH_MAX_USE", "max_use", size_or_percent(allow_off=True), "25%",
         "Cap on the bytes in CDH_CORE_DIR (size or % of its filesystem); a new core is cut short "
         "at it, and only uploaded leftovers are ever deleted (off: no cap).", scope="composer"),
    Spec("CDH_KEEP_FREE", "keep_free", size_or_percent(allow_off=True), "10%",
         "Free space kept on CDH_CORE_DIR's filesystem (size or %; 10% is the kubelet's default "
         "eviction threshold); a new core is cut short at it.", scope="composer"),
    Spec("CDH_COMPOSER_LOG_LEVEL", "composer_log_level",
         choice("debug", "info", "warning", "error", "off", aliases={"warn": "warning"}), "info",
         "Composer log level (off: no log; the agent's capture metrics then stay at 0).",
         (("COMP_LOG_LEVEL", ibm.log_level),), scope="composer"),
    Spec("CDH_COMPOSER_LOG_MAX_BYTES", "composer_log_max_bytes", size(4 * KiB), "4MiB",
         "The composer log is rotated at this size (two files kept).", scope="composer"),
    # host setup
    Spec("CDH_SUID_DUMPABLE", "suid_dumpable", int_range(0, 2), "2", "fs.suid_dumpable.",
         (("SUID_DUMPABLE", None),)),
    Spec("CDH_CORE_PIPE_LIMIT", "core_pipe_limit", int_range(1, 1 << 20), "128",
         "kernel.core_pipe_limit: crashes handled at once (must be > 0 so /proc stays readable)."),
    Spec("CDH_DEPLOY_CRICTL_CONFIG", "deploy_crictl_config", parse_bool, "false",
         "Write HOST_DIR/crictl.yaml pointing at CDH_CRI_ENDPOINT (else CDH_CRI_ENDPOINT_HINT).",
         (("DEPLOY_CRIO_CONFIG", None),)),
    Spec("CDH_RUNTIME_DIR", "runtime_dir", optional(abs_path), "",
         "The runtime (laid out by packaging/pyruntime.py) whose host part `cdh install` copies into "
         "HOST_DIR/runtime/ (empty: the one the agent runs on, /opt/cdh/runtime in the image).",
         env_only=True),
    Spec("CDH_UNINSTALL_ON_STOP", "uninstall_on_stop", parse_bool, "false",
         "Restore the host (sysctls, composer) when the agent (or `cdh host`) stops."),
    Spec("CDH_MANAGE_HOST", "manage_host", parse_bool, "true",
         "`cdh agent` sets up the host itself: installs the composer and the sysctls at start, rewrites "
         "composer.env on reload, restores at stop (false: `cdh host` does, in the DaemonSet's privileged "
         "container; the agent only uploads)."),
    # agent
    Spec("CDH_CONFIG_FILE", "config_file", optional(abs_path), "",
         "An env-file (mounted ConfigMap) overlaid on the environment; reloaded on SIGHUP and change."),
    Spec("CDH_ROUTES_FILE", "routes_file", optional(abs_path), "",
         "A YAML file (mounted ConfigMap) routing namespaces to their own destinations, credentials and "
         "age recipients (README \"Routes\"); reloaded with the config. Empty: every zip to CDH_DESTINATION "
         "(or CDH_S3_BUCKET)."),
    Spec("CDH_LOG_LEVEL", "log_level", choice("debug", "info", "warning", "error",
                                               aliases={"warn": "warning"}), "info", "Agent log level."),
    Spec("CDH_NODE_NAME", "node_name", text, Derived("the host name", lambda v: os.uname().nodename),
         "This node's name (set from the downward API's spec.nodeName)."),
    Spec("CDH_USE_INOTIFY", "use_inotify", parse_bool, "true", "Upload zips as soon as they appear.",
         (("USE_INOTIFY", None),)),
    Spec("CDH_INTERVAL", "interval_s", optional(duration(0)), "",
         "Also sweep CDH_CORE_DIR at this interval (30s, 5m, 1h ...).", (("INTERVAL", ibm.interval),)),
    Spec("CDH_SCHEDULE", "schedule", cron, "",
         "Also sweep on this cron schedule: 5 fields, or 6 with seconds first (IBM's SCHEDULE keeps IBM's "
         "cron).", (("SCHEDULE", ibm.schedule),)),
    Spec("CDH_DESTINATION", "destination", destination_url, "",
         "Where zips go: s3://bucket[/prefix], gs://bucket[/prefix] or azblob://container[/prefix] "
         "(empty: s3://CDH_S3_BUCKET). CDH_S3_KEY_PREFIX applies after the prefix, for every kind."),
    Spec("CDH_S3_BUCKET", "s3_bucket", text, "", "S3 bucket, when CDH_DESTINATION is not set.",
         (("S3_BUCKET_NAME", None),)),
    Spec("CDH_S3_REGION", "s3_region", region, "",
         "Bucket region, the one requests are signed for (empty: botocore's default chain). IBM's "
         "S3_REGION may name a host instead: it becomes the endpoint.", (("S3_REGION", None),)),
    Spec("CDH_S3_ENDPOINT", "s3_endpoint", endpoint_url, "",
         "Custom S3 endpoint URL (GCS, IBM COS, MinIO, Ceph ...).", (("S3_ENDPOINT", None),)),
    Spec("CDH_S3_ACCESS_KEY", "s3_access_key", secret, "",
         "Static access key id (empty: botocore's credential chain: IRSA, Pod Identity, instance role ...).",
         (("S3_ACCESS_KEY", None),), secret=True),
    Spec("CDH_S3_SECRET_KEY", "s3_secret_key", secret, "", "Static secret access key.",
         (("S3_SECRET", None),), secret=True),
    Spec("CDH_S3_SESSION_TOKEN", "s3_session_token", secret, "", "Session token for temporary keys.",
         secret=True),
    Spec("CDH_S3_ADDRESSING", "s3_addressing", choice("auto", "path", "virtual"), "auto",
         "Bucket addressing style."),
    Spec("CDH_S3_KEY_PREFIX", "s3_key_prefix", template(KEY_PREFIX_VARIABLES), "",
         "Object key prefix template, e.g. {namespace}/ (the listing layout adds the day itself; "
         "{date} suits plain)."),
    Spec("CDH_KEY_LAYOUT", "key_layout", choice("listing", "plain"), "listing",
         "Object names after the prefix: listing = <date>/<time>~<signal, signature, namespace, pod, "
         "container, exe, node, uuid, image, top frame>~<zip name> (cdh ls and --group read them from the "
         "listing: fast at any size); plain = <zip name>, as IBM's agent names objects (the default with "
         "IBM's S3_BUCKET_NAME)."),
    Spec("CDH_S3_SSE", "s3_sse", choice("none", "AES256", "aws:kms", aliases={"sse-s3": "AES256",
                                                                             "sse-kms": "aws:kms"}),
         "none", "Server-side encryption."),
    Spec("CDH_S3_SSE_KMS_KEY_ID", "s3_sse_kms_key_id", text, "", "KMS key id for CDH_S3_SSE=aws:kms."),
    Spec("CDH_S3_STORAGE_CLASS", "s3_storage_class", text, "", "Storage class of uploaded objects."),
    Spec("CDH_S3_CA_BUNDLE", "s3_ca_bundle", optional(abs_path), "", "CA bundle for the S3 endpoint."),
    Spec("CDH_S3_VERIFY_TLS", "s3_verify_tls", parse_bool, "true", "Verify the S3 endpoint's certificate."),
    Spec("CDH_AZURE_ACCOUNT", "azure_account", text, "",
         "Storage account of an azblob:// destination (empty: the connection string's).",
         also=("AZURE_STORAGE_ACCOUNT",)),
    Spec("CDH_AZURE_CONNECTION_STRING", "azure_connection_string", secret, "",
         "Connection string (AccountKey or SharedAccessSignature; Azurite's works too).",
         also=("AZURE_STORAGE_CONNECTION_STRING",), secret=True),
    Spec("CDH_AZURE_ACCOUNT_KEY", "azure_account_key", secret, "",
         "Storage account key (Shared Key).", also=("AZURE_STORAGE_KEY",), secret=True),
    Spec("CDH_AZURE_SAS", "azure_sas", secret, "",
         "SAS token; the agent needs r, c, w and d on the container (ls and sweep: l too).",
         also=("AZURE_STORAGE_SAS_TOKEN",), secret=True),
    Spec("CDH_AZURE_ENDPOINT", "azure_endpoint", endpoint_url, "",
         "Blob service URL (empty: https://ACCOUNT.blob.core.windows.net): sovereign clouds, private "
         "endpoints. With no key, SAS or connection string: Entra ID tokens (Workload Identity, "
         "managed identity, a service principal from AZURE_CLIENT_*)."),
    Spec("CDH_AZURE_CHECKSUM", "azure_checksum", choice("auto", "crc64", "md5"), "auto",
         "Checksum of each block, verified by the service: crc64 (x-ms-content-crc64) or md5 "
         "(Content-MD5, about 30x the CPU); auto: md5 on Azurite (it refuses crc64), else crc64."),
    Spec("CDH_GCS_CREDENTIALS_FILE", "gcs_credentials_file", optional(abs_path), "",
         "Service account key or workload identity federation file of a gs:// destination (empty: "
         "Application Default Credentials: GKE Workload Identity, the metadata server).",
         also=("GOOGLE_APPLICATION_CREDENTIALS",)),
    Spec("CDH_GCS_ENDPOINT", "gcs_endpoint", endpoint_url, "",
         "Cloud Storage JSON API URL (empty: https://storage.googleapis.com): private endpoints."),
    Spec("CDH_GCS_EMULATOR_HOST", "gcs_emulator_host", emulator_url, "",
         "A Cloud Storage emulator (fake-gcs-server): host:port or URL; no credentials are sent.",
         also=("STORAGE_EMULATOR_HOST",)),
    Spec("CDH_MULTIPART_THRESHOLD", "multipart_threshold_bytes", size(5 * MiB), "64MiB",
         "Files at least this big are uploaded in parts."),
    Spec("CDH_PART_SIZE", "part_size_bytes", size(5 * MiB), "16MiB",
         "Smallest part size; grows so any file fits in 10,000 parts. Parts stream from disk: "
         "the size costs no memory."),
    Spec("CDH_UPLOAD_CONCURRENCY", "upload_concurrency", int_range(1, 64), "2", "Files uploaded at once."),
    Spec("CDH_PART_CONCURRENCY", "part_concurrency", int_range(1, 64), "8",
         "Parts (and single PUTs) in flight across all files; each holds at most 2 MiB of the file."),
    Spec("CDH_RETRY_MIN", "retry_min_s", duration(0), "2s", "First retry delay after a failed upload."),
    Spec("CDH_RETRY_MAX", "retry_max_s", duration(0), "5m", "Longest retry delay (backoff cap)."),
    Spec("CDH_GRACE_PERIOD", "grace_period_s", duration(0), "60s",
         "On SIGTERM, how long in-flight uploads may finish."),
    Spec("CDH_METRICS_PORT", "metrics_port", int_range(0, 65535), "9102",
         "Port of /metrics, /healthz and /readyz (0: off)."),
    Spec("CDH_METRICS_ADDRESS", "metrics_address", ip_address, "0.0.0.0",
         "Address /metrics, /healthz and /readyz listen on (0.0.0.0: every interface; the pod's IP under "
         "hostNetwork; 127.0.0.1 behind a proxy)."),
    Spec("CDH_CHECK_INTERVAL", "check_interval_s", duration(0), "30s",
         "How often the agent re-checks kernel.core_pattern (cdh_core_pattern_ours, /readyz, a log line "
         "when it changes) and, while the bucket is unreachable, the bucket."),
    Spec("CDH_K8S_EVENTS", "k8s_events", parse_bool, "false",
         "Post Kubernetes Events (CoreDumpCaptured, CoreDumpUploaded) on the crashed pod, with the pod's "
         "service account (RBAC: create events.k8s.io events)."),
)

# IBM settings that cdh accepts but does not need, with the reason shown once at start.
IGNORED: dict[str, str] = {
    "VENDOR": "one bundled runtime fits every node; VENDOR is not needed",
    "LOCAL_BIN": "cdh writes /proc/sys directly and needs no sysctl binary",
    "DEPLOY_CRIO_EXE": "cdh does not copy a crictl; install one on the node or use CDH_CRICTL_PATH",
    "EVENT_DIR": "IBM's agent never read it either; event files go to COMP_CORE_EVENT_DIR (CDH_EVENT_DIR)",
}

BY_NAME: dict[str, Spec] = {s.name: s for s in SPECS}
BY_ALIAS: dict[str, tuple[Spec, Callable[[str], str] | None]] = {
    a: (s, conv) for s in SPECS for a, conv in (*s.aliases, *((n, None) for n in s.also))
}
SECRET_FILE_SUFFIX = "_FILE"
