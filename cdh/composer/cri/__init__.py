"""Container runtime metadata for the composer: CRI v1 over gRPC first, crictl as the fallback.

- ``sources``: one ``Link`` per crash that asks the runtime's socket (``grpc``), else crictl
  (``crictl``), and fills the same crictl-shaped records either way.
- ``grpc``: the CRI calls and socket discovery; ``h2``: unary gRPC over HTTP/2 on a unix
  socket; ``hpack``: its header codec; ``protowire`` + ``api``: a protobuf codec and the few
  CRI messages used (``cri.proto`` is their source of truth); ``logtail``: the end of a
  container's log file in the CRI log format. Stdlib only (see ``grpc`` for why).
"""
